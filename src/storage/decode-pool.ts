// A small pool of worker threads that decompress and verify chunks (decode-worker.ts), so a
// cold fill uses more than one core. Owns the workers and a FIFO of jobs; each worker holds at
// most `perWorker` jobs, so memory in flight stays bounded however much is queued. Workers
// start on first use, never keep the process alive while idle, and a worker that dies fails
// only the jobs it held and is replaced. It knows chunks only as decode specs and bytes.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DecodeWorkerError } from '../errors.js';
import { decodeChunk, type ChunkDecodeSpec } from './chunk-decode.js';
import { fromWire, type DecodeRequest, type DecodeResponse } from './decode-wire.js';

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

/** min(4, cores), at least 1: decoding beyond four threads starves the main thread's I/O. */
export function defaultDecodeThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** Workers that die in a row without finishing a job before the pool gives up on threads. */
const MAX_CONSECUTIVE_DEATHS = 3;

interface Job {
  id: number;
  spec: ChunkDecodeSpec;
  compressed: Uint8Array | undefined;
  resolve: (data: Buffer) => void;
  reject: (err: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  jobs: Map<number, Job>;
  lastError: Error | undefined;
}

export class DecodePool {
  private readonly slots: Slot[];
  private readonly perWorker: number;
  private queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private deaths = 0;
  private broken: DecodeWorkerError | undefined;

  constructor(private readonly opts: DecodePoolOptions = {}) {
    const size = Math.max(1, Math.floor(opts.size ?? defaultDecodeThreads()));
    this.perWorker = Math.max(1, Math.floor(opts.perWorker ?? 2));
    this.slots = Array.from({ length: size }, (_, index) => ({ index, worker: undefined, jobs: new Map(), lastError: undefined }));
  }

  get size(): number {
    return this.slots.length;
  }

  /** False once closed, or once workers kept dying (decode() then runs on this thread). */
  get usable(): boolean {
    return !this.closed && this.broken === undefined;
  }

  /**
   * Decompresses and verifies one chunk on a worker (on this thread once the workers failed for
   * good); resolves with the verified bytes or rejects with the error decodeChunk would have
   * thrown. Rejects with DecodeWorkerError when the worker holding the job dies, or the pool
   * is closed. `compressed` is copied when the job is sent: the caller may reuse it once this
   * settles.
   */
  decode(spec: ChunkDecodeSpec, compressed: Uint8Array): Promise<Buffer> {
    if (this.closed) return Promise.reject(new DecodeWorkerError('decode pool is closed'));
    return new Promise<Buffer>((resolve, reject) => {
      const job: Job = { id: this.nextId++, spec, compressed, resolve, reject };
      if (this.broken) {
        this.decodeHere(job);
        return;
      }
      this.queue.push(job);
      this.pump();
    });
  }

  /** Terminates the workers; queued and in-flight jobs fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failQueue(new DecodeWorkerError('decode pool closed'));
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }

  /** Test hook: ends worker `index` as a crash would (its jobs fail; a new worker takes over). */
  async killWorkerForTest(index: number): Promise<void> {
    await this.slots[index]?.worker?.terminate();
  }

  /** Sends queued jobs to the least busy workers with room. */
  private pump(): void {
    while (this.queue.length && this.usable) {
      let slot: Slot | undefined;
      for (const s of this.slots) if (s.jobs.size < this.perWorker && (!slot || s.jobs.size < slot.jobs.size)) slot = s;
      if (!slot) return;
      this.send(slot, this.queue.shift()!);
    }
  }

  private send(slot: Slot, job: Job): void {
    const worker = slot.worker ?? this.spawn(slot);
    // A copy of the chunk's bytes alone: structured cloning a view copies its whole buffer (a
    // source read of many chunks), and transferring that would take it from its other chunks.
    const compressed = new Uint8Array(job.compressed!.length);
    compressed.set(job.compressed!);
    job.compressed = undefined;
    slot.jobs.set(job.id, job);
    // Busy workers keep the process alive (a caller awaiting a decode and nothing else must not
    // see the process exit under it); idle ones do not.
    if (slot.jobs.size === 1) worker.ref();
    const req: DecodeRequest = { id: job.id, spec: job.spec, compressed: compressed.buffer };
    worker.postMessage(req, [compressed.buffer]);
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(this.opts.workerUrl ?? new URL('./decode-worker.js', import.meta.url));
    worker.unref();
    slot.worker = worker;
    slot.lastError = undefined;
    worker.on('message', (m: DecodeResponse) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      if (slot.jobs.size === 0) worker.unref();
      this.deaths = 0;
      if (m.ok) job.resolve(Buffer.from(m.data));
      else job.reject(fromWire(m.error));
      this.pump();
    });
    worker.on('error', (err) => { slot.lastError = err; });
    worker.on('exit', (code) => this.exited(slot, worker, code));
    return worker;
  }

  private exited(slot: Slot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    if (this.closed) {
      for (const j of jobs) j.reject(new DecodeWorkerError(`chunk ${j.spec.chunkIndex} of blob ${j.spec.blobId}: decode pool closed`));
      return;
    }
    const why = slot.lastError ? `: ${slot.lastError.message}` : ` (exit code ${code})`;
    this.opts.onWorkerExit?.(new DecodeWorkerError(`decode worker ${slot.index} died${why}; ${jobs.length} chunk(s) in flight failed`));
    for (const j of jobs) {
      j.reject(new DecodeWorkerError(`chunk ${j.spec.chunkIndex} of blob ${j.spec.blobId}: decode worker ${slot.index} died${why}`));
    }
    // Workers that die before finishing anything (a missing module, a broken build) would fail
    // every chunk forever: give up on threads instead. What is queued is decoded here, and
    // readers (seeing `usable` false) decode on their own thread from then on.
    if (++this.deaths >= MAX_CONSECUTIVE_DEATHS) {
      this.broken = new DecodeWorkerError(`decode workers died ${this.deaths} times in a row${why}`);
      this.opts.onWorkerExit?.(this.broken);
      const queued = this.queue;
      this.queue = [];
      for (const j of queued) this.decodeHere(j);
      return;
    }
    this.pump();
  }

  /** The calling thread's decode, a job per turn of the event loop. */
  private decodeHere(job: Job): void {
    setImmediate(() => {
      try {
        job.resolve(decodeChunk(job.spec, job.compressed!));
      } catch (err) {
        job.reject(err as Error);
      }
    });
  }

  private failQueue(err: Error): void {
    const queued = this.queue;
    this.queue = [];
    for (const j of queued) j.reject(err);
  }
}
