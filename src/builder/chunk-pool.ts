// A fixed pool of chunk workers. Jobs go to the least busy worker; results come back by id.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { OndineError } from '../errors.js';

export interface ChunkJob {
  id: number;
  data: ArrayBuffer;
  length: number;
  compressor: number;
  level: number | undefined;
  digester: number;
}

export interface ChunkJobResult {
  id: number;
  zero: boolean;
  digest: string;
  /** The bytes to store: compressed, or the raw chunk sent back when compression did not shrink it. */
  stored: ArrayBuffer | null;
  storedLength: number;
  compressed: boolean;
  error?: string;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve: (r: ChunkJobResult) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private broken: Error | undefined;
  private closing = false;

  constructor(size = availableParallelism()) {
    const url = new URL('./chunk-worker.js', import.meta.url);
    for (let i = 0; i < Math.max(1, size); i++) {
      const worker = new Worker(url);
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (r: ChunkJobResult) => {
        slot.busy--;
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if (r.error) p.reject(new OndineError('ONDINE_ERR_BUILD', 5, `chunk worker: ${r.error}`));
        else p.resolve(r);
      });
      // A dead worker would leave every job sent to it pending forever (a build that hangs):
      // from then on the pool refuses work, and what was in flight fails.
      const broken = (err: Error) => {
        this.broken ??= err;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      };
      worker.on('error', broken);
      worker.on('exit', (code) => {
        if (!this.closing) broken(new OndineError('ONDINE_ERR_BUILD', 5, `chunk worker exited unexpectedly (code ${code})`));
      });
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /** Transfers `data` (its ArrayBuffer must be owned by this chunk alone). */
  run(data: Buffer, compressor: number, level: number | undefined, digester: number): Promise<ChunkJobResult> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const ab = data.byteOffset === 0 && data.buffer.byteLength === data.length ? data.buffer as ArrayBuffer : new Uint8Array(data).buffer;
      const job: ChunkJob = { id, data: ab, length: data.length, compressor, level, digester };
      slot.worker.postMessage(job, [ab]);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
