// Translates fanotify pre-content events into storage calls: find the cache file the event
// is about (by inode), fill the range through the event's own fd (opened by the kernel with
// notifications off, so the write raises no event of its own), then allow; on failure or
// timeout deny (the reader gets EIO). Bounded parallelism; events for one chunk fetch it once
// (the blob cache shares in-flight chunks). Owns nothing but the queue and its counters.
import { constants } from 'node:os';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { BlobCache } from '../../storage/blob-cache.js';
import type { CacheFileIo } from '../../storage/cache-file.js';
import type { AccessReply } from './replies.js';

export interface FanotifyTarget {
  /** For logs. */
  label: string;
  cache: BlobCache;
  /** Called after each successful fill (e.g. to drop the mark of a blob now complete). */
  filled?(): void;
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
  fills: number;
  denied: number;
  timeouts: number;
  unknownFiles: number;
}

export class FanotifyFrontend {
  private readonly queue: PQueue;
  private readonly timeoutMs: number;
  readonly stats: FanotifyStats = { events: 0, fills: 0, denied: 0, timeouts: 0, unknownFiles: 0 };

  constructor(
    private readonly files: Pick<CacheFileIo, 'writer'>,
    private readonly lookup: TargetLookup,
    private readonly closeFd: (fd: number) => void,
    private readonly opts: FanotifyFrontendOptions = {},
  ) {
    this.queue = new PQueue({ concurrency: opts.concurrency ?? 16 });
    this.timeoutMs = opts.fillTimeoutMs ?? 30_000;
  }

  /** Answers `reply` exactly once; closes `ev.fd` once nothing writes through it any more. */
  handle(ev: PreAccess, reply: AccessReply): void {
    this.stats.events++;
    let target: FanotifyTarget | undefined;
    try {
      target = this.lookup.byInode(ev.dev, ev.ino);
    } catch (err) {
      this.opts.log?.error({ err }, 'looking up the cache file of an event failed');
    }
    if (!target) {
      // Not ours (a mark left from an image since removed, or a lost catalog): never allow
      // an unknown range, since unfilled bytes would read as zeros.
      this.stats.unknownFiles++;
      this.stats.denied++;
      this.opts.log?.warn({ dev: ev.dev, ino: ev.ino, offset: ev.offset, count: ev.count }, 'event for a file this daemon does not serve: denied');
      this.finish(reply, constants.errno.EIO, ev.fd);
      return;
    }
    const t = target;
    const writer = this.files.writer(ev.fd);
    const received = Date.now();
    void this.queue.add(() => new Promise<void>((slotDone) => {
      const abort = new AbortController();
      const remaining = Math.max(0, this.timeoutMs - (Date.now() - received));
      const timer = setTimeout(() => {
        if (reply.done) return;
        this.stats.timeouts++;
        this.stats.denied++;
        abort.abort();
        this.opts.log?.warn({ target: t.label, offset: ev.offset, count: ev.count, timeoutMs: this.timeoutMs }, 'fill timed out: reader gets EIO');
        reply.deny(constants.errno.ETIMEDOUT);
        slotDone();
      }, remaining);
      (async () => t.cache.fill(ev.offset, ev.count, writer, abort))()
        .then(() => {
          if (!reply.done) this.stats.fills++;
          reply.allow();
          try { t.filled?.(); } catch (err) { this.opts.log?.warn({ err, target: t.label }, 'after-fill hook failed'); }
        }, (err: unknown) => {
          if (!reply.done) this.stats.denied++;
          this.opts.log?.warn({ err, target: t.label, offset: ev.offset, count: ev.count }, 'fill failed: reader gets EIO');
          reply.deny((err as { errno?: number }).errno ?? constants.errno.EIO);
        })
        .finally(() => {
          clearTimeout(timer);
          // Read-ahead this fill started may still be writing through the fd.
          writer.closeWhenIdle(() => this.safeClose(ev.fd));
          slotDone();
        });
    }));
  }

  /** Resolves when every queued event has been answered and its fill settled. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
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
