// The fill scheduler: one per daemon, shared by every blob and every front end. Every source
// read a fill makes goes through it, tagged with a class, and waits here for a slot of its
// source's connection budget (bounded reads in flight per source). Demand (a reader waits)
// always goes first, and the last `reserved` slots of a budget are demand's alone, so
// read-ahead, prefetch and background fetches never keep a waiting reader off the link.
// Queues are bounded; queued lower-class work is dropped when it has waited too long (it is
// stale by then) or when its queue is full (oldest first), and cancelled through its signal.
// It owns slots, queues and per-class stats; never what is read or where it goes.
import { OndineError } from '../errors.js';

/** Why a source read is made, most urgent first. */
export type FillClass = 'demand' | 'readahead' | 'prefetch' | 'background';
export const FILL_CLASSES: readonly FillClass[] = ['demand', 'readahead', 'prefetch', 'background'];

export interface FillSchedulerOptions {
  /** Source reads in flight per source at most (default 8: a registry's usual connection budget). */
  budget?: number;
  /** Slots of a budget only demand may take (default 2; at most budget - 1). */
  reserved?: number;
  /** Queued reads per source and class at most (default demand 4096, the others 1024). */
  maxQueued?: Partial<Record<FillClass, number>>;
  /**
   * How long a queued read of a class may wait before it is dropped as stale (default: demand
   * never, read-ahead 5 s, prefetch 60 s, background never). Demand is bounded by its caller's
   * deadline (its signal).
   */
  staleMs?: Partial<Record<FillClass, number>>;
  now?: () => number;
}

/** A queued read refused or dropped: the queue was full, or it waited too long. */
export class FillDroppedError extends OndineError {
  constructor(readonly fillClass: FillClass, readonly reason: 'full' | 'stale' | 'dropped', message: string) {
    super('ONDINE_ERR_BUSY', undefined, message);
  }
}

export interface ClassStats {
  /** Reads started (taken a slot). */
  requests: number;
  /** Bytes those reads asked for. */
  bytes: number;
  /** Total and longest time reads waited in the queue, ms. */
  queueWaitMs: number;
  maxQueueWaitMs: number;
  /** Reads dropped (full queue, stale, dropQueued) and cancelled by their signal while queued. */
  dropped: number;
  cancelled: number;
  /** Now: queued, and in flight. */
  queued: number;
  inFlight: number;
}

interface Entry {
  cls: FillClass;
  bytes: number;
  queuedAt: number;
  start: () => void;
  fail: (err: unknown) => void;
  /** Removes the abort listener (called once the entry leaves the queue). */
  unlisten: () => void;
}

interface Lane {
  inFlight: number;
  queues: Record<FillClass, Entry[]>;
}

const DEFAULT_MAX_QUEUED: Record<FillClass, number> = { demand: 4096, readahead: 1024, prefetch: 1024, background: 1024 };
const DEFAULT_STALE_MS: Record<FillClass, number> = { demand: Infinity, readahead: 5_000, prefetch: 60_000, background: Infinity };

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
}

function emptyStats(): ClassStats {
  return { requests: 0, bytes: 0, queueWaitMs: 0, maxQueueWaitMs: 0, dropped: 0, cancelled: 0, queued: 0, inFlight: 0 };
}

export class FillScheduler {
  readonly budget: number;
  readonly reserved: number;
  private readonly maxQueued: Record<FillClass, number>;
  private readonly staleMs: Record<FillClass, number>;
  /** Lanes by source (any object a caller keys its reads by); a lane goes once idle. */
  private readonly lanes = new Map<object, Lane>();
  private readonly classStats: Record<FillClass, ClassStats> = {
    demand: emptyStats(), readahead: emptyStats(), prefetch: emptyStats(), background: emptyStats(),
  };

  constructor(private readonly opts: FillSchedulerOptions = {}) {
    this.budget = Math.max(1, Math.floor(opts.budget ?? 8));
    this.reserved = Math.min(this.budget - 1, Math.max(0, Math.floor(opts.reserved ?? 2)));
    this.maxQueued = { ...DEFAULT_MAX_QUEUED };
    this.staleMs = { ...DEFAULT_STALE_MS };
    for (const c of FILL_CLASSES) {
      const q = opts.maxQueued?.[c];
      if (q !== undefined) this.maxQueued[c] = Math.max(0, Math.floor(q));
      const s = opts.staleMs?.[c];
      if (s !== undefined) this.staleMs[c] = Math.max(0, s);
    }
  }

  private now(): number {
    return this.opts.now?.() ?? performance.now();
  }

  /**
   * Runs `task` (one source read of `bytes` bytes for `key`, a source) once a slot of its budget
   * is free and nothing more urgent waits; settles as the task does. Rejects without running it
   * when `signal` aborts while it is queued, or when it is dropped (FillDroppedError).
   */
  run<T>(key: object, cls: FillClass, bytes: number, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const lane = this.lane(key);
    if (lane.inFlight < this.limit(cls) && this.nothingBefore(lane, cls)) {
      return this.startNow(key, lane, cls, bytes, 0, task);
    }
    return new Promise<T>((resolve, reject) => {
      const q = lane.queues[cls];
      if (q.length >= this.maxQueued[cls]) {
        if (cls === 'demand' || q.length === 0) {
          this.classStats[cls].dropped++;
          this.idle(key, lane);
          reject(new FillDroppedError(cls, 'full', `${q.length} ${cls} source reads already queued for one source`));
          return;
        }
        // The oldest lower-class read is the stalest: it goes, the new one takes its place.
        this.remove(lane, q[0]!, new FillDroppedError(cls, 'full', `${cls} queue full: oldest queued read dropped`), 'dropped');
      }
      const entry: Entry = {
        cls,
        bytes,
        queuedAt: this.now(),
        start: () => {
          const waited = this.now() - entry.queuedAt;
          this.startNow(key, lane, cls, bytes, waited, task).then(resolve, reject);
        },
        fail: reject,
        unlisten: () => undefined,
      };
      if (signal) {
        const onAbort = () => {
          if (this.remove(lane, entry, abortReason(signal), 'cancelled')) this.idle(key, lane);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        entry.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      q.push(entry);
      this.classStats[cls].queued++;
    });
  }

  /**
   * Drops queued reads of class `cls` (never demand), of one source or of all: e.g. a reader's
   * read-ahead that a seek made useless, or prefetch for an image being unmounted.
   */
  dropQueued(cls: Exclude<FillClass, 'demand'>, key?: object): number {
    let n = 0;
    for (const [k, lane] of key ? [[key, this.lanes.get(key)] as const] : [...this.lanes]) {
      if (!lane) continue;
      for (const e of [...lane.queues[cls]]) {
        if (this.remove(lane, e, new FillDroppedError(cls, 'dropped', `queued ${cls} read dropped`), 'dropped')) n++;
      }
      this.idle(k, lane);
    }
    return n;
  }

  /** Per-class counters (a copy), for the daemon's status and metrics. */
  stats(): Record<FillClass, ClassStats> {
    const out = {} as Record<FillClass, ClassStats>;
    for (const c of FILL_CLASSES) out[c] = { ...this.classStats[c], queueWaitMs: Math.round(this.classStats[c].queueWaitMs * 10) / 10, maxQueueWaitMs: Math.round(this.classStats[c].maxQueueWaitMs * 10) / 10 };
    return out;
  }

  /** Reads in flight for `key` now (tests, status). */
  inFlight(key: object): number {
    return this.lanes.get(key)?.inFlight ?? 0;
  }

  private lane(key: object): Lane {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { inFlight: 0, queues: { demand: [], readahead: [], prefetch: [], background: [] } };
      this.lanes.set(key, lane);
    }
    return lane;
  }

  /** Slots a class may fill up to: all of them for demand, all but the reserved ones below. */
  private limit(cls: FillClass): number {
    return cls === 'demand' ? this.budget : this.budget - this.reserved;
  }

  /** Whether no read of `cls` or a more urgent class is queued (so starting now jumps nobody). */
  private nothingBefore(lane: Lane, cls: FillClass): boolean {
    for (const c of FILL_CLASSES) {
      if (lane.queues[c].length) return false;
      if (c === cls) return true;
    }
    return true;
  }

  private startNow<T>(key: object, lane: Lane, cls: FillClass, bytes: number, waited: number, task: () => Promise<T>): Promise<T> {
    const s = this.classStats[cls];
    lane.inFlight++;
    s.inFlight++;
    s.requests++;
    s.bytes += bytes;
    s.queueWaitMs += waited;
    if (waited > s.maxQueueWaitMs) s.maxQueueWaitMs = waited;
    let p: Promise<T>;
    try {
      p = task();
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.finally(() => {
      lane.inFlight--;
      s.inFlight--;
      this.pump(key, lane);
    });
  }

  /** Takes `entry` off its queue and fails it; false when it had already left. */
  private remove(lane: Lane, entry: Entry, err: unknown, why: 'dropped' | 'cancelled'): boolean {
    const q = lane.queues[entry.cls];
    const i = q.indexOf(entry);
    if (i < 0) return false;
    q.splice(i, 1);
    entry.unlisten();
    const s = this.classStats[entry.cls];
    s.queued--;
    s[why]++;
    entry.fail(err);
    return true;
  }

  /** Starts queued reads while slots allow: demand first, then each lower class in turn. */
  private pump(key: object, lane: Lane): void {
    for (;;) {
      let next: Entry | undefined;
      for (const c of FILL_CLASSES) {
        if (lane.inFlight >= this.limit(c)) break;
        const q = lane.queues[c];
        while (q.length) {
          const e = q.shift()!;
          this.classStats[c].queued--;
          e.unlisten();
          if (this.now() - e.queuedAt > this.staleMs[c]) {
            this.classStats[c].dropped++;
            e.fail(new FillDroppedError(c, 'stale', `${c} read waited ${Math.round(this.now() - e.queuedAt)} ms in the queue: dropped as stale`));
            continue;
          }
          next = e;
          break;
        }
        if (next) break;
      }
      if (!next) break;
      next.start();
    }
    this.idle(key, lane);
  }

  /** Forgets a lane with nothing queued or in flight (sources come and go with images). */
  private idle(key: object, lane: Lane): void {
    if (lane.inFlight > 0) return;
    for (const c of FILL_CLASSES) if (lane.queues[c].length) return;
    if (this.lanes.get(key) === lane) this.lanes.delete(key);
  }
}
