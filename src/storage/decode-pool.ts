// The decode pool: worker threads (decode-worker.ts, on a WorkerPool) that decompress and
// verify chunks, so a cold fill uses more than one core. Each worker holds at most
// `perWorker` jobs. A worker that dies fails only the chunks it held and is replaced; once
// workers keep dying the pool retires and decodes on the calling thread instead. It knows
// chunks only as decode specs and bytes.
import { availableParallelism } from 'node:os';
import { DecodeWorkerError } from '../errors.js';
import { decodeChunk, type ChunkDecodeSpec } from './chunk-decode.js';
import { JobLostError, WorkerPool } from './worker-pool.js';

/** One job for decode-worker.ts. */
export interface DecodeJob {
  spec: ChunkDecodeSpec;
  /** The chunk's compressed bytes, whole (transferred). */
  compressed: ArrayBuffer;
}

export interface DecodePoolOptions {
  /** Worker threads (default: defaultDecodeThreads()); at least 1. */
  size?: number;
  /** Jobs sent to one worker at a time (default 2: one decoding, the next already waiting). */
  perWorker?: number;
  /** Told when a worker dies unexpectedly, and when the pool retires (for the daemon's log). */
  onWorkerExit?: (err: DecodeWorkerError) => void;
  /** Test hook: the worker's module (default decode-worker.js beside this one). */
  workerUrl?: URL;
}

/**
 * None on two cores or fewer, else min(4, cores): decoding beyond four threads starves the
 * main thread's I/O, and on two cores the pool loses. There the reader, the kernel and the
 * fetch already use the second core, and a chunk's round trip to a worker costs more than its
 * decode saves: the decode ceiling measured 488 MB/s with two threads against 737 on the main
 * thread alone, and a CRI container reading 35 MB cold took 0.77-0.81 s against 0.96-1.00 s
 * with the pool (interleaved; BENCHMARKS.md, host read and CRI).
 */
export function defaultDecodeThreads(cores = availableParallelism()): number {
  return cores <= 2 ? 0 : Math.min(4, cores);
}

export class DecodePool {
  private readonly pool: WorkerPool<DecodeJob, ArrayBuffer>;

  constructor(opts: DecodePoolOptions = {}) {
    const report = opts.onWorkerExit;
    this.pool = new WorkerPool(opts.workerUrl ?? new URL('./decode-worker.js', import.meta.url), {
      size: opts.size ?? defaultDecodeThreads(),
      perWorker: opts.perWorker ?? 2,
      onWorkerDeath: (d) => report?.(new DecodeWorkerError(`decode worker ${d.worker} died${d.why}; ${d.failed} chunk(s) in flight failed`)),
      onRetire: (r) => report?.(new DecodeWorkerError(`decode workers died ${r.deaths} times in a row${r.why}`)),
    });
  }

  get size(): number {
    return this.pool.size;
  }

  /** False once closed, or once workers kept dying (decode() then runs on this thread). */
  get usable(): boolean {
    return !this.pool.closed && !this.pool.retired;
  }

  /**
   * Decompresses and verifies one chunk on a worker (on this thread once the workers failed for
   * good); resolves with the verified bytes or rejects with the error decodeChunk would have
   * thrown. Rejects with DecodeWorkerError when the worker holding the job dies, or the pool
   * is closed. `compressed` is copied when the job is sent: the caller may reuse it once this
   * settles.
   */
  decode(spec: ChunkDecodeSpec, compressed: Uint8Array): Promise<Buffer> {
    if (this.pool.closed) return Promise.reject(new DecodeWorkerError('decode pool is closed'));
    if (this.pool.retired) return decodeHere(spec, compressed);
    const job = this.pool.run(() => {
      // A copy of the chunk's bytes alone: structured cloning a view copies its whole buffer (a
      // source read of many chunks), and transferring that would take it from its other chunks.
      const own = new Uint8Array(compressed.length);
      own.set(compressed);
      return { payload: { spec, compressed: own.buffer }, transfer: [own.buffer] };
    });
    return job.then((data) => Buffer.from(data), (err: unknown) => {
      if (!(err instanceof JobLostError)) throw err;
      // Queued when the workers gave up: the job never left this thread, so it runs here.
      if (err.reason === 'retired') return decodeHere(spec, compressed);
      const what = `chunk ${spec.chunkIndex} of blob ${spec.blobId}`;
      throw new DecodeWorkerError(err.reason === 'died' ? `${what}: decode worker ${err.worker} died${err.why}` : `${what}: decode pool closed`);
    });
  }

  /** Terminates the workers; queued and in-flight jobs fail. */
  close(): Promise<void> {
    return this.pool.close();
  }

  /** Test hook: ends worker `index` as a crash would (its jobs fail; a new worker takes over). */
  killWorkerForTest(index: number): Promise<void> {
    return this.pool.killWorkerForTest(index);
  }
}

/** The calling thread's decode, a job per turn of the event loop. */
function decodeHere(spec: ChunkDecodeSpec, compressed: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      try {
        resolve(decodeChunk(spec, compressed));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}
