// Translates cachefiles requests into storage calls: OPEN → resolve the blob and copen its
// size; READ → fill the range, then READ_COMPLETE (always: after success, failure or
// timeout); CLOSE → release. Owns the open objects and the read queue, nothing else.
import { constants } from 'node:os';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { BlobCache } from '../../storage/blob-cache.js';
import { FdWriter } from '../../storage/cache-file.js';
import { Opcode, type Message, type OpenMessage, type ReadMessage, type CloseMessage } from './messages.js';
import { OpenReply, ReadReply } from './replies.js';
import type { KernelIo } from './kernel-io.js';

export interface CacheTarget {
  /** Bytes to answer copen with: the uncompressed blob size, or the bootstrap's length. */
  size: number;
  /** For logs and counters. */
  label: string;
  /** The cache file's contents on demand (shared by every open of the same cache file). */
  cache: BlobCache;
}

export interface TargetResolver {
  resolve(volumeKey: string, cookieKey: string): CacheTarget | undefined;
}

export interface FrontendOptions {
  /** READs handled at once. */
  concurrency?: number;
  /** A READ not filled by then is completed unfilled: its reader gets EIO. */
  readTimeoutMs?: number;
  log?: Logger;
}

export interface FrontendStats {
  opens: number;
  openFailures: number;
  reads: number;
  readFailures: number;
  readTimeouts: number;
  closes: number;
  liveObjects: number;
}

class CacheObject {
  pending = 0;
  closing = false;
  constructor(readonly objectId: number, readonly anonFd: number, readonly target: CacheTarget, readonly writer: FdWriter) {}
}

export class CachefilesFrontend {
  private readonly objects = new Map<number, CacheObject>();
  private readonly queue: PQueue;
  private readonly timeoutMs: number;
  readonly stats: FrontendStats = { opens: 0, openFailures: 0, reads: 0, readFailures: 0, readTimeouts: 0, closes: 0, liveObjects: 0 };
  private readonly handlers: { [K in Opcode]: (m: Extract<Message, { opcode: K }>) => void } = {
    [Opcode.Open]: (m) => this.onOpen(m),
    [Opcode.Close]: (m) => this.onClose(m),
    [Opcode.Read]: (m) => this.onRead(m),
  };

  constructor(private readonly io: KernelIo, private readonly resolver: TargetResolver, private readonly opts: FrontendOptions = {}) {
    this.queue = new PQueue({ concurrency: opts.concurrency ?? 16 });
    this.timeoutMs = opts.readTimeoutMs ?? 30_000;
  }

  handle(msg: Message): void {
    (this.handlers[msg.opcode] as (m: Message) => void)(msg);
  }

  /** Resolves when every queued READ has been completed. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
  }

  private onOpen(m: OpenMessage): void {
    this.stats.opens++;
    const reply = new OpenReply(this.io, m.msgId);
    let target: CacheTarget | undefined;
    try {
      target = this.resolver.resolve(m.volumeKey, m.cookieKey);
      if (!target) {
        this.stats.openFailures++;
        this.opts.log?.warn({ volume: m.volumeKey, cookie: m.cookieKey }, 'OPEN for an unknown image or blob: refusing with ENOENT');
        reply.reject(constants.errno.ENOENT);
        this.safeClose(m.fd);
        return;
      }
      const fd = m.fd;
      const writer = new FdWriter(fd, this.io);
      const previous = this.objects.get(m.objectId);
      if (previous) this.retire(previous);
      const obj = new CacheObject(m.objectId, fd, target, writer);
      this.objects.set(m.objectId, obj);
      this.stats.liveObjects = this.objects.size;
      reply.accept(target.size);
      this.opts.log?.info({ object: m.objectId, target: target.label, size: target.size, reopen: previous !== undefined }, 'opened');
    } catch (err) {
      this.stats.openFailures++;
      this.opts.log?.error({ err, volume: m.volumeKey, cookie: m.cookieKey }, 'OPEN failed');
      if (!reply.done) {
        try { reply.reject(constants.errno.EIO); } catch (e) { this.opts.log?.error({ err: e }, 'copen failed'); }
        this.safeClose(m.fd);
      }
    }
  }

  private onRead(m: ReadMessage): void {
    this.stats.reads++;
    const obj = this.objects.get(m.objectId);
    if (!obj) {
      // No anonymous fd to complete on: only a lost daemon state can cause this.
      this.stats.readFailures++;
      this.opts.log?.error({ object: m.objectId, msgId: m.msgId }, 'READ for an unknown object');
      return;
    }
    const reply = new ReadReply(this.io, obj.anonFd, m.msgId);
    const received = Date.now();
    obj.pending++;
    // A queue slot is held until the READ is completed (filled, failed or timed out); the fd
    // stays open until the fill settles, even when the reader has given up.
    void this.queue.add(() => new Promise<void>((slotDone) => {
      // The controller, not its signal: the filler makes a signal only for a fetch that can use one.
      const abort = new AbortController();
      const remaining = Math.max(0, this.timeoutMs - (Date.now() - received));
      const timer = setTimeout(() => {
        if (reply.done) return;
        this.stats.readTimeouts++;
        abort.abort();
        this.opts.log?.warn({ object: m.objectId, target: obj.target.label, offset: m.offset, length: m.length, timeoutMs: this.timeoutMs }, 'READ timed out: reader gets EIO');
        this.complete(reply);
        slotDone();
      }, remaining);
      (async () => obj.target.cache.fill(m.offset, m.length, obj.writer, abort))()
        .catch((err: unknown) => {
          this.stats.readFailures++;
          this.opts.log?.warn({ err, object: m.objectId, target: obj.target.label, offset: m.offset, length: m.length }, 'READ failed: reader gets EIO');
        })
        .finally(() => {
          clearTimeout(timer);
          this.complete(reply);
          slotDone();
          this.release(obj);
        });
    }));
  }

  private onClose(m: CloseMessage): void {
    this.stats.closes++;
    const obj = this.objects.get(m.objectId);
    if (!obj) return;
    this.objects.delete(m.objectId);
    this.stats.liveObjects = this.objects.size;
    this.retire(obj);
  }

  private complete(reply: ReadReply): void {
    try {
      reply.complete();
    } catch (err) {
      this.opts.log?.error({ err, msgId: reply.msgId }, 'READ_COMPLETE failed');
    }
  }

  private retire(obj: CacheObject): void {
    obj.closing = true;
    if (obj.pending === 0) this.closeObject(obj);
  }

  private release(obj: CacheObject): void {
    obj.pending--;
    if (obj.closing && obj.pending === 0) this.closeObject(obj);
  }

  /** Closes the anonymous fd once read-ahead started through it has been written too. */
  private closeObject(obj: CacheObject): void {
    obj.writer.closeWhenIdle(() => this.safeClose(obj.anonFd));
  }

  private safeClose(fd: number): void {
    try {
      this.io.close(fd);
    } catch (err) {
      this.opts.log?.warn({ err, fd }, 'closing an anonymous fd failed');
    }
  }

  /** Closes every object's fd once its pending work settles (daemon shutdown). */
  closeAll(): void {
    for (const obj of this.objects.values()) this.retire(obj);
    this.objects.clear();
  }
}
