// A fixed set of worker threads running one module's serveJobs handler (worker-wire.ts): the
// machinery the builder's chunk pool and the decode pool share. Jobs wait in a FIFO and go to
// the least busy worker with room (at most `perWorker` each, so memory in flight stays
// bounded however much is queued); results come back by id. Workers start on first use and
// keep the process alive only while they hold jobs. A worker that dies fails only the jobs it
// held and is replaced; workers that keep dying before finishing anything retire the pool,
// and callers fall back to their own thread (or fail), as they choose.
import { Worker } from 'node:worker_threads';
import { fromWire, type JobMessage, type ReplyMessage } from './worker-wire.js';

export interface WorkerPoolOptions {
  /** Worker threads; at least 1. */
  size: number;
  /** Jobs sent to one worker at a time (default: no limit). */
  perWorker?: number;
  /** Workers that die in a row, none finishing a job in between, before the pool retires (default 3). */
  maxDeaths?: number;
  /** Told when a worker dies unexpectedly. */
  onWorkerDeath?: (death: WorkerDeath) => void;
  /** Told once, when the pool retires. */
  onRetire?: (retired: { deaths: number; why: string }) => void;
}

export interface WorkerDeath {
  worker: number;
  /** ": <error message>" or " (exit code N)": ready to append to "worker N died". */
  why: string;
  /** Jobs the worker held, now failed. */
  failed: number;
}

/**
 * A job that no worker will finish: its worker died ('died'), the pool retired before the job
 * was sent ('retired'; it never left this thread), or the pool closed ('closed'). The pool's
 * users turn it into their own typed error or run the job themselves; it is not meant to
 * reach anyone else.
 */
export class JobLostError extends Error {
  constructor(
    readonly reason: 'died' | 'retired' | 'closed',
    /** The worker's index for 'died'; -1 otherwise. */
    readonly worker: number,
    /** As WorkerDeath.why for 'died' and 'retired'; '' for 'closed'. */
    readonly why: string,
  ) {
    super(reason === 'died' ? `worker ${worker} died${why}` : reason === 'retired' ? `worker pool retired${why}` : 'worker pool closed');
    this.name = 'JobLostError';
  }
}

/** What a job sends, built only when it goes to a worker (so a queued job holds no copy). */
export interface Outgoing<P> {
  payload: P;
  transfer?: ArrayBuffer[];
}

interface Job {
  id: number;
  make: () => Outgoing<unknown>;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  jobs: Map<number, Job>;
  lastError: Error | undefined;
}

export class WorkerPool<P, R> {
  private readonly slots: Slot[];
  private readonly perWorker: number;
  private readonly maxDeaths: number;
  private queue: Job[] = [];
  private nextId = 1;
  private deaths = 0;
  private closedFlag = false;
  private retiredFlag = false;

  constructor(private readonly url: URL, private readonly opts: WorkerPoolOptions) {
    const size = Math.max(1, Math.floor(opts.size));
    this.perWorker = Math.max(1, Math.floor(opts.perWorker ?? Infinity));
    this.maxDeaths = Math.max(1, Math.floor(opts.maxDeaths ?? 3));
    this.slots = Array.from({ length: size }, (_, index) => ({ index, worker: undefined, jobs: new Map(), lastError: undefined }));
  }

  get size(): number {
    return this.slots.length;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** True once workers kept dying: run() then rejects with JobLostError 'retired'. */
  get retired(): boolean {
    return this.retiredFlag;
  }

  /**
   * Runs one job on a worker: resolves with the handler's result, rejects with the error it
   * threw (rebuilt by fromWire), or with JobLostError. `make` is called when the job is sent.
   */
  run(make: () => Outgoing<P>): Promise<R> {
    if (this.closedFlag) return Promise.reject(new JobLostError('closed', -1, ''));
    if (this.retiredFlag) return Promise.reject(new JobLostError('retired', -1, ''));
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, make, resolve: resolve as (r: unknown) => void, reject });
      this.pump();
    });
  }

  /** Terminates the workers; queued and in-flight jobs fail with JobLostError 'closed'. */
  async close(): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.failQueue(new JobLostError('closed', -1, ''));
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }

  /** Test hook: ends worker `index` as a crash would. */
  async killWorkerForTest(index: number): Promise<void> {
    await this.slots[index]?.worker?.terminate();
  }

  private pump(): void {
    while (this.queue.length && !this.closedFlag && !this.retiredFlag) {
      let slot: Slot | undefined;
      for (const s of this.slots) if (s.jobs.size < this.perWorker && (!slot || s.jobs.size < slot.jobs.size)) slot = s;
      if (!slot) return;
      this.send(slot, this.queue.shift()!);
    }
  }

  private send(slot: Slot, job: Job): void {
    const worker = slot.worker ?? this.spawn(slot);
    let out: Outgoing<unknown>;
    try {
      out = job.make();
    } catch (err) {
      job.reject(err as Error);
      return;
    }
    slot.jobs.set(job.id, job);
    // Busy workers keep the process alive (a caller awaiting a job and nothing else must not
    // see the process exit under it); idle ones do not.
    if (slot.jobs.size === 1) worker.ref();
    const msg: JobMessage<unknown> = { id: job.id, payload: out.payload };
    worker.postMessage(msg, out.transfer ?? []);
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(this.url);
    worker.unref();
    slot.worker = worker;
    slot.lastError = undefined;
    worker.on('message', (m: ReplyMessage<R>) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      if (slot.jobs.size === 0) worker.unref();
      this.deaths = 0;
      if (m.ok) job.resolve(m.result);
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
    if (this.closedFlag) {
      for (const j of jobs) j.reject(new JobLostError('closed', -1, ''));
      return;
    }
    const why = slot.lastError ? `: ${slot.lastError.message}` : ` (exit code ${code})`;
    this.opts.onWorkerDeath?.({ worker: slot.index, why, failed: jobs.length });
    for (const j of jobs) j.reject(new JobLostError('died', slot.index, why));
    // Workers that die before finishing anything (a missing module, a broken build) would fail
    // every job forever: give up on threads instead.
    if (++this.deaths >= this.maxDeaths) {
      this.retiredFlag = true;
      this.opts.onRetire?.({ deaths: this.deaths, why });
      this.failQueue(new JobLostError('retired', -1, why));
      return;
    }
    this.pump();
  }

  private failQueue(err: Error): void {
    const queued = this.queue;
    this.queue = [];
    for (const j of queued) j.reject(err);
  }
}
