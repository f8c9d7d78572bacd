// The builder's chunk workers (chunk-worker.ts, on storage's WorkerPool): each chunk goes to
// the least busy worker and its digest, zero test and compressed bytes come back. A build
// cannot do without a chunk, so the first worker death fails the jobs it held and retires the
// pool: what was queued and whatever is sent afterwards fails too.
import { availableParallelism } from 'node:os';
import { OndineError } from '../errors.js';
import { JobLostError, WorkerPool } from '../storage/worker-pool.js';

export interface ChunkJob {
  data: ArrayBuffer;
  length: number;
  compressor: number;
  level: number | undefined;
  digester: number;
}

export interface ChunkJobResult {
  zero: boolean;
  digest: string;
  /** The bytes to store: compressed, or the raw chunk sent back when compression did not shrink it. */
  stored: ArrayBuffer | null;
  storedLength: number;
  compressed: boolean;
  /** Worker time: zero test and digest, then compression (with the copy of its output). */
  digestMs: number;
  compressMs: number;
}

export class ChunkPool {
  private readonly pool: WorkerPool<ChunkJob, ChunkJobResult>;

  constructor(size = availableParallelism()) {
    this.pool = new WorkerPool(new URL('./chunk-worker.js', import.meta.url), { size, maxDeaths: 1 });
  }

  get size(): number {
    return this.pool.size;
  }

  /** Transfers `data` (its ArrayBuffer must be owned by this chunk alone). */
  run(data: Buffer, compressor: number, level: number | undefined, digester: number): Promise<ChunkJobResult> {
    const ab = data.byteOffset === 0 && data.buffer.byteLength === data.length ? data.buffer as ArrayBuffer : new Uint8Array(data).buffer;
    const job: ChunkJob = { data: ab, length: data.length, compressor, level, digester };
    return this.pool.run(() => ({ payload: job, transfer: [ab] })).catch((err: unknown) => {
      const why = err instanceof JobLostError
        ? (err.reason === 'died' ? `chunk worker ${err.worker} died${err.why}` : err.reason === 'retired' ? `chunk workers unavailable: one died${err.why}` : 'chunk pool closed')
        : `chunk worker: ${(err as Error).message}`;
      throw new OndineError('ONDINE_ERR_BUILD', undefined, why);
    });
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** Test hook: ends worker `index` as a crash would. */
  killWorkerForTest(index: number): Promise<void> {
    return this.pool.killWorkerForTest(index);
  }
}
