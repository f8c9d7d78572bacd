// The builder's chunk workers (chunk-worker.ts, on storage's WorkerPool): each chunk's digest,
// zero test and compressed bytes are computed on a worker. Small chunks (most files of a real
// tree) travel in batches: their buffers are cut from a shared arena, and one message carries
// an arena's chunks to a worker and one brings back all their results, instead of a message
// each way per chunk (a layer of 45 000 small files paid seconds of postMessage and GC for
// that). A build cannot do without a chunk, so the first worker death fails the jobs it held
// and retires the pool: what was queued and whatever is sent afterwards fails too.
import { availableParallelism } from 'node:os';
import { OndineError } from '../errors.js';
import { JobLostError, WorkerPool } from '../storage/worker-pool.js';

/** One chunk of a batch: where its bytes are in the batch's buffer. */
export interface ChunkPart {
  offset: number;
  length: number;
}

export interface ChunkJob {
  data: ArrayBuffer;
  parts: ChunkPart[];
  compressor: number;
  level: number | undefined;
  digester: number;
}

export interface ChunkJobResult {
  zero: boolean;
  digest: string;
  /**
   * The bytes to store, at storedOffset: compressed, or the raw chunk when compression did not
   * shrink it. Several chunks of a batch share one buffer.
   */
  stored: ArrayBuffer | null;
  storedOffset: number;
  storedLength: number;
  compressed: boolean;
  /** Worker time: zero test and digest, then compression (with the copy of its output). */
  digestMs: number;
  compressMs: number;
}

export interface ChunkBatchResult {
  /** Every part's stored bytes, one after another (null when no part stored any). */
  stored: ArrayBuffer | null;
  results: Array<Omit<ChunkJobResult, 'stored'>>;
}

/** Chunks up to this size are batched; larger ones go alone, in a buffer of their own. */
export const SMALL_CHUNK = 256 << 10;
/** A batch's buffer; it goes to a worker once full, or at the end of the event-loop turn. */
const ARENA_BYTES = 1 << 20;
const ARENA_MAX_PARTS = 1024;

interface Waiter {
  part: ChunkPart;
  resolve: (r: ChunkJobResult) => void;
  reject: (err: unknown) => void;
}

/** An arena: chunk buffers cut from one ArrayBuffer, sent together once none is being filled. */
interface Arena {
  ab: ArrayBuffer;
  used: number;
  /** Buffers handed out by alloc() and neither run() nor released yet. */
  open: number;
  /** No more buffers are cut from it; it is sent as soon as `open` is 0. */
  sealed: boolean;
  waiters: Waiter[];
  codec: { compressor: number; level: number | undefined; digester: number } | undefined;
}

export class ChunkPool {
  private readonly pool: WorkerPool<ChunkJob, ChunkBatchResult>;
  private readonly arenas = new Map<ArrayBuffer, Arena>();
  private current: Arena | undefined;
  private tick: NodeJS.Immediate | undefined;

  constructor(size = availableParallelism()) {
    this.pool = new WorkerPool(new URL('./chunk-worker.js', import.meta.url), { size, maxDeaths: 1 });
  }

  get size(): number {
    return this.pool.size;
  }

  /**
   * A buffer for a chunk of `length` bytes, to fill and then hand to run() (or to release() if
   * it will not be). Small ones are cut from the current arena; a batch waits while any buffer
   * cut from it is still being filled, so every one must reach run() or release().
   */
  alloc(length: number): Buffer {
    if (length > SMALL_CHUNK) return Buffer.allocUnsafeSlow(length); // own ArrayBuffer: transferred, never copied
    let a = this.current;
    if (!a || a.sealed || a.used + length > a.ab.byteLength || a.waiters.length + a.open >= ARENA_MAX_PARTS) {
      if (a) this.seal(a);
      a = { ab: Buffer.allocUnsafeSlow(ARENA_BYTES).buffer as ArrayBuffer, used: 0, open: 0, sealed: false, waiters: [], codec: undefined };
      this.arenas.set(a.ab, a);
      this.current = a;
    }
    const buf = Buffer.from(a.ab, a.used, length);
    a.used += length;
    a.open++;
    return buf;
  }

  /** A buffer from alloc() that will not be run (its file failed): its batch may go without it. */
  release(buf: Buffer): void {
    const a = this.arenas.get(buf.buffer as ArrayBuffer);
    if (!a) return;
    a.open--;
    this.maybeSend(a);
  }

  /**
   * Digest, zero test and compression of one chunk. A buffer from alloc() goes as it is; any
   * other is sent alone (transferred when its ArrayBuffer is its own) or, when small, copied
   * into a batch.
   */
  run(data: Buffer, compressor: number, level: number | undefined, digester: number): Promise<ChunkJobResult> {
    let a = this.arenas.get(data.buffer as ArrayBuffer);
    if (!a && data.length <= SMALL_CHUNK) {
      const copy = this.alloc(data.length);
      data.copy(copy);
      a = this.arenas.get(copy.buffer as ArrayBuffer)!;
      data = copy;
    }
    if (!a) return this.sendAlone(data, compressor, level, digester);
    const arena = a;
    const codec = { compressor, level, digester };
    if (arena.codec && (arena.codec.compressor !== compressor || arena.codec.level !== level || arena.codec.digester !== digester)) {
      // One codec per batch (a build has one): a chunk for another goes alone, copied out first.
      const alone = Buffer.from(new Uint8Array(data));
      arena.open--;
      this.maybeSend(arena);
      return this.sendAlone(alone, compressor, level, digester);
    }
    arena.codec = codec;
    return new Promise<ChunkJobResult>((resolve, reject) => {
      arena.waiters.push({ part: { offset: data.byteOffset, length: data.length }, resolve, reject });
      arena.open--;
      this.maybeSend(arena);
      // Whatever is batched goes at the end of this event-loop turn at the latest.
      this.tick ??= setImmediate(() => {
        this.tick = undefined;
        if (this.current) this.seal(this.current);
      });
    });
  }

  /** One chunk in a message of its own (transferred when its ArrayBuffer is its own, else copied). */
  private sendAlone(data: Buffer, compressor: number, level: number | undefined, digester: number): Promise<ChunkJobResult> {
    const own = data.byteOffset === 0 && data.buffer.byteLength === data.length;
    const ab = own ? data.buffer as ArrayBuffer : new Uint8Array(data).buffer;
    const job: ChunkJob = { data: ab, parts: [{ offset: 0, length: data.length }], compressor, level, digester };
    return this.send(job).then((b) => ({ ...b.results[0]!, stored: b.stored }));
  }

  private seal(a: Arena): void {
    a.sealed = true;
    if (this.current === a) this.current = undefined;
    this.maybeSend(a);
  }

  private maybeSend(a: Arena): void {
    if (!a.sealed || a.open > 0) return;
    this.arenas.delete(a.ab);
    if (a.waiters.length === 0) return;
    const waiters = a.waiters;
    const job: ChunkJob = { data: a.ab, parts: waiters.map((w) => w.part), ...a.codec! };
    this.send(job).then((b) => {
      waiters.forEach((w, i) => w.resolve({ ...b.results[i]!, stored: b.stored }));
    }, (err: unknown) => {
      for (const w of waiters) w.reject(err);
    });
  }

  private send(job: ChunkJob): Promise<ChunkBatchResult> {
    return this.pool.run(() => ({ payload: job, transfer: [job.data] })).catch((err: unknown) => {
      const why = err instanceof JobLostError
        ? (err.reason === 'died' ? `chunk worker ${err.worker} died${err.why}` : err.reason === 'retired' ? `chunk workers unavailable: one died${err.why}` : 'chunk pool closed')
        : `chunk worker: ${(err as Error).message}`;
      throw new OndineError('ONDINE_ERR_BUILD', undefined, why);
    });
  }

  close(): Promise<void> {
    if (this.tick) clearImmediate(this.tick);
    this.tick = undefined;
    // Batches still waiting for a buffer to be filled fail: nothing will finish them now.
    for (const a of this.arenas.values()) {
      for (const w of a.waiters) w.reject(new OndineError('ONDINE_ERR_BUILD', undefined, 'chunk pool closed'));
    }
    this.arenas.clear();
    this.current = undefined;
    return this.pool.close();
  }

  /** Test hook: ends worker `index` as a crash would. */
  killWorkerForTest(index: number): Promise<void> {
    return this.pool.killWorkerForTest(index);
  }
}
