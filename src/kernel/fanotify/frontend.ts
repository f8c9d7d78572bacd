// Translates fanotify pre-content events into storage calls: find the cache file the event
// is about (by inode), fill the range through the event's own fd (opened by the kernel with
// notifications off, so the write raises no event of its own), then allow; on failure or
// timeout deny (the reader gets EIO). Bounded parallelism; events for one chunk fetch it once
// (the blob cache shares in-flight chunks). Owns nothing but the queue and its counters.
import { constants } from 'node:os';
import type { Logger } from 'pino';
import type { BlobCache, FillAbort } from '../../storage/blob-cache.js';
import type { CacheFileIo, FdWriter } from '../../storage/cache-file.js';
import type { AccessReply } from './replies.js';
import { DEFAULT_READ_TIMEOUT_MS } from '../../registry/time-ladder.js';

export interface FanotifyTarget {
  /** For logs. */
  label: string;
  cache: BlobCache;
}

export interface TargetLookup {
  /** The cache file with this device and inode number, if the daemon serves it. */
  byInode(dev: number | bigint, ino: number | bigint): FanotifyTarget | undefined;
}

/** One pre-content event: a range of a cache file some reader needs. */
export interface PreAccess {
  offset: number;
  count: number;
  dev: number | bigint;
  ino: number | bigint;
  /** Fd to fill through; the front end closes it once the fill settles. */
  fd: number;
}

export interface FanotifyFrontendOptions {
  /** Events filled at once. */
  concurrency?: number;
  /** An event not filled by then is denied (EIO); the supervisor's deadline is longer. */
  fillTimeoutMs?: number;
  log?: Logger;
}

export interface FanotifyStats {
  events: number;
  /** Reads allowed without a fill that were passed on to move read-ahead (read-hints.ts). */
  hints: number;
  fills: number;
  denied: number;
  timeouts: number;
  unknownFiles: number;
}

/**
 * One event between arrival and its answer. It is the fill's FillAbort too: its signal (an
 * AbortController) is made only when a fill asks for it (a local source never does), so an
 * event costs this one object and its writer, no getter object or promise chain of its own.
 */
class Pending implements FillAbort {
  /** Made only when a fill asks for its signal. */
  abort: AbortController | undefined = undefined;
  /** Holds a concurrency slot (started, not yet settled or timed out). */
  running = false;

  constructor(
    readonly ev: PreAccess,
    readonly reply: AccessReply,
    readonly target: FanotifyTarget,
    readonly writer: FdWriter,
    readonly deadline: number,
  ) {}

  get signal(): AbortSignal {
    return (this.abort ??= new AbortController()).signal;
  }
}

export class FanotifyFrontend {
  private readonly concurrency: number;
  private readonly timeoutMs: number;
  /** Events not yet started, oldest first. */
  private readonly waiting: Pending[] = [];
  /**
   * Every event not yet answered, in arrival order: all share one timeout, so deadlines are
   * in order too and one sweep timer finds the expired ones at the front (a timer and an
   * AbortController per event cost more than a small fill's own JS work).
   */
  private readonly unanswered = new Set<Pending>();
  private sweep: NodeJS.Timeout | undefined;
  private running = 0;
  private idleWaiters: Array<() => void> = [];
  readonly stats: FanotifyStats = { events: 0, hints: 0, fills: 0, denied: 0, timeouts: 0, unknownFiles: 0 };

  constructor(
    private readonly files: Pick<CacheFileIo, 'writer'>,
    private readonly lookup: TargetLookup,
    private readonly closeFd: (fd: number) => void,
    private readonly opts: FanotifyFrontendOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 16;
    this.timeoutMs = opts.fillTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  }

  /** Answers `reply` exactly once; closes `ev.fd` once nothing writes through it any more. */
  handle(ev: PreAccess, reply: AccessReply): void {
    this.stats.events++;
    const target = this.targetOf(ev);
    if (!target) {
      // Not ours (a mark left from an image since removed, or a lost catalog): never allow
      // an unknown range, since unfilled bytes would read as zeros.
      this.stats.unknownFiles++;
      this.stats.denied++;
      this.opts.log?.warn({ dev: ev.dev, ino: ev.ino, offset: ev.offset, count: ev.count }, 'event for a file this daemon does not serve: denied');
      this.finish(reply, constants.errno.EIO, ev.fd);
      return;
    }
    const p = new Pending(ev, reply, target, this.files.writer(ev.fd), Date.now() + this.timeoutMs);
    this.unanswered.add(p);
    this.sweep ??= this.arm(this.timeoutMs);
    if (this.running < this.concurrency) this.run(p);
    else this.waiting.push(p);
  }

  /**
   * A read already allowed without a fill (a read hint): the cache may move its read-ahead on,
   * writing through `h.fd`, which this closes once nothing writes through it. Never answered.
   */
  hint(h: PreAccess): void {
    const cache = this.targetOf(h)?.cache;
    if (!cache?.advise) {
      this.safeClose(h.fd);
      return;
    }
    this.stats.hints++;
    const writer = this.files.writer(h.fd);
    cache.advise(h.offset, h.count, writer).catch(() => undefined).finally(() => writer.closeWhenIdle(() => this.safeClose(h.fd)));
  }

  /** The cache file an event or hint is about; undefined (logged) when the lookup fails. */
  private targetOf(ev: PreAccess): FanotifyTarget | undefined {
    try {
      return this.lookup.byInode(ev.dev, ev.ino);
    } catch (err) {
      this.opts.log?.error({ err }, 'looking up the cache file of an event failed');
      return undefined;
    }
  }

  /** Resolves when every queued event has been answered and its fill settled. */
  async idle(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private run(p: Pending): void {
    p.running = true;
    this.running++;
    let fill: Promise<void>;
    try {
      fill = p.target.cache.fill(p.ev.offset, p.ev.count, p.writer, p);
    } catch (err) {
      fill = Promise.reject(err as Error);
    }
    fill.then(() => this.settle(p, undefined, true), (err: unknown) => this.settle(p, err));
  }

  /** Answers p once its fill settled (`ok`, or failed with `err`), frees its slot and fd. */
  private settle(p: Pending, err: unknown, ok = false): void {
    const { ev, reply } = p;
    try {
      if (ok) {
        if (!reply.done) this.stats.fills++; // not one that timed out
        reply.allow();
      } else {
        if (!reply.done) this.stats.denied++;
        this.opts.log?.warn({ err, target: p.target.label, offset: ev.offset, count: ev.count }, 'fill failed: reader gets EIO');
        reply.deny((err as { errno?: number } | undefined)?.errno ?? constants.errno.EIO);
      }
    } finally {
      this.unanswered.delete(p);
      // Read-ahead this fill started may still be writing through the fd.
      p.writer.closeWhenIdle(() => this.safeClose(ev.fd));
      this.release(p);
    }
  }

  /** Frees p's slot (once) and starts the next waiting event, if any. */
  private release(p: Pending): void {
    if (!p.running) return;
    p.running = false;
    this.running--;
    while (this.running < this.concurrency && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      if (next.reply.done) continue; // timed out while waiting: its fd was closed then
      this.run(next);
    }
    if (this.running === 0 && this.waiting.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Unref'd: the fds that bring events keep the process alive; this alone must not. */
  private arm(ms: number): NodeJS.Timeout {
    const t = setTimeout(() => this.expire(), ms);
    t.unref();
    return t;
  }

  /** Denies (ETIMEDOUT) every event past its deadline; re-arms for the next one. */
  private expire(): void {
    this.sweep = undefined;
    const now = Date.now();
    for (const p of this.unanswered) {
      if (p.deadline > now) {
        this.sweep = this.arm(p.deadline - now);
        return;
      }
      this.unanswered.delete(p);
      if (p.reply.done) continue;
      const { ev, reply, target: t } = p;
      this.stats.timeouts++;
      this.stats.denied++;
      p.abort?.abort();
      this.opts.log?.warn({ target: t.label, offset: ev.offset, count: ev.count, timeoutMs: this.timeoutMs }, 'fill timed out: reader gets EIO');
      reply.deny(constants.errno.ETIMEDOUT);
      if (p.running) {
        this.release(p);
      } else {
        // Never started: nothing holds its fd.
        p.writer.closeWhenIdle(() => this.safeClose(ev.fd));
      }
    }
  }

  private finish(reply: AccessReply, err: number, fd: number): void {
    try {
      if (err) reply.deny(err);
      else reply.allow();
    } finally {
      this.safeClose(fd);
    }
  }

  private safeClose(fd: number): void {
    try {
      this.closeFd(fd);
    } catch (err) {
      this.opts.log?.warn({ err, fd }, 'closing an event fd failed');
    }
  }
}
