// Translates cachefiles requests into storage calls: OPEN → resolve the blob and copen its
// size; READ → fill the range, then READ_COMPLETE (always: after success, failure or
// timeout); CLOSE → release. Owns the open objects and the read queue, nothing else.
//
// When an anonymous fd may be closed (read against fs/cachefiles/ondemand.c of the kernels
// we run, 6.1 with the 6.8 failover backport): READ_COMPLETE must be issued on an anonymous
// fd of the READ's own object, and closing that fd does NOT fail the READs already handed to
// us (fd release flushes only CLOSE requests): they would stay pending, their readers
// blocked, until the object is dropped. So an object's fd is closed only (a) after its CLOSE,
// when the kernel has just cancelled every request of the object (cachefiles_ondemand_
// clean_object) and no READ can need it any more, and (b) once the READs this process still
// works on for it have been completed. Until then the object stays in the map, so a READ that
// races its CLOSE finds the fd and is completed at once (unfilled; the kernel may already have
// answered it, which makes READ_COMPLETE fail harmlessly with EINVAL). A READ for an object
// this process holds no fd of cannot be completed by anyone: the kernel either cancelled it
// already (its CLOSE went by) or never had an open object under that id (a failed OPEN is
// never followed by READs; a closed object's READs wait for a re-OPEN, which gives a new id).
// Such READs are counted (orphanReads) and logged, not answered.
import { constants } from 'node:os';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { BlobCache } from '../../storage/blob-cache.js';
import { FdWriter } from '../../storage/cache-file.js';
import {
  checkOpenKeys, isMalformed, Opcode, type CloseMessage, type MalformedMessage, type Message, type OpenMessage, type ReadMessage,
} from './messages.js';
import { OpenReply, ReadReply } from './replies.js';
import type { KernelIo } from './kernel-io.js';
import { DEFAULT_READ_TIMEOUT_MS } from '../../registry/time-ladder.js';

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
  /** Messages whose header parsed but body did not (answered as failures where they need one). */
  malformed: number;
  /** READs that raced their object's CLOSE: completed unfilled on the fd still held. */
  lateReads: number;
  /** READs for an object with no anonymous fd here: nothing can complete them (see above). */
  orphanReads: number;
}

class CacheObject {
  pending = 0;
  /** Its CLOSE arrived (or a re-OPEN replaced it): the fd goes once `pending` is 0. */
  closing = false;
  fdClosed = false;
  constructor(readonly objectId: number, readonly anonFd: number, readonly target: CacheTarget, readonly writer: FdWriter) {}
}

export class CachefilesFrontend {
  private readonly objects = new Map<number, CacheObject>();
  private readonly queue: PQueue;
  private readonly timeoutMs: number;
  readonly stats: FrontendStats = {
    opens: 0, openFailures: 0, reads: 0, readFailures: 0, readTimeouts: 0, closes: 0, liveObjects: 0,
    malformed: 0, lateReads: 0, orphanReads: 0,
  };
  private readonly handlers: { [K in Opcode]: (m: Extract<Message, { opcode: K }>) => void } = {
    [Opcode.Open]: (m) => this.onOpen(m),
    [Opcode.Close]: (m) => this.onClose(m),
    [Opcode.Read]: (m) => this.onRead(m),
  };

  constructor(private readonly io: KernelIo, private readonly resolver: TargetResolver, private readonly opts: FrontendOptions = {}) {
    this.queue = new PQueue({ concurrency: opts.concurrency ?? 16 });
    this.timeoutMs = opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  }

  handle(msg: Message | MalformedMessage): void {
    if (isMalformed(msg)) this.onMalformed(msg);
    else (this.handlers[msg.opcode] as (m: Message) => void)(msg);
  }

  /** Live objects: open, not yet CLOSEd. */
  private countLive(): void {
    let live = 0;
    for (const obj of this.objects.values()) if (!obj.closing) live++;
    this.stats.liveObjects = live;
  }

  /**
   * The header is trusted (msgId, opcode, objectId), the body is not: answer what needs an
   * answer as a failure, so no mount waits on a copen and no reader on a READ_COMPLETE.
   */
  private onMalformed(m: MalformedMessage): void {
    this.stats.malformed++;
    const { msgId, opcode, objectId } = m.header;
    this.opts.log?.error({ err: m.error, msgId, opcode, object: objectId }, 'malformed cachefiles message: answering it as a failure');
    switch (opcode) {
      case Opcode.Open: {
        this.stats.opens++;
        this.stats.openFailures++;
        try {
          new OpenReply(this.io, msgId).reject(constants.errno.EIO);
        } catch (err) {
          this.opts.log?.error({ err, msgId }, 'copen failed');
        }
        if (m.fd !== undefined) this.safeClose(m.fd);
        return;
      }
      case Opcode.Read: {
        this.stats.reads++;
        const obj = this.objects.get(objectId);
        if (!obj) {
          this.orphan(objectId, msgId);
          return;
        }
        this.stats.readFailures++;
        this.complete(new ReadReply(this.io, obj.anonFd, msgId));
        return;
      }
      case Opcode.Close:
        // Only its length can be wrong: it still says which object the kernel dropped.
        this.onClose({ opcode: Opcode.Close, msgId, objectId });
        return;
      default:
        // An opcode this daemon does not know has no reply it could send.
        return;
    }
  }

  private orphan(objectId: number, msgId: number): void {
    this.stats.orphanReads++;
    this.opts.log?.warn({ object: objectId, msgId }, 'READ for an object without an anonymous fd here: it cannot be completed (cancelled by the kernel, or from a state this process never had)');
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
      checkOpenKeys(m);
    } catch (err) {
      this.stats.openFailures++;
      this.opts.log?.warn({ err }, 'OPEN with a key outside the name grammar: refusing with EINVAL');
      try { reply.reject(constants.errno.EINVAL); } catch (e) { this.opts.log?.error({ err: e }, 'copen failed'); }
      this.safeClose(m.fd);
      return;
    }
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
      this.countLive();
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
      this.orphan(m.objectId, m.msgId);
      return;
    }
    if (obj.closing) {
      // The kernel cancelled it with the CLOSE; filling would be wasted work.
      this.stats.lateReads++;
      try {
        this.io.readComplete(obj.anonFd, m.msgId);
      } catch (err) {
        this.opts.log?.debug({ err, object: m.objectId, msgId: m.msgId }, 'READ_COMPLETE of a READ that raced its CLOSE');
      }
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
    this.countLive();
    if (obj.pending === 0) this.closeObject(obj);
  }

  private release(obj: CacheObject): void {
    obj.pending--;
    if (obj.closing && obj.pending === 0) this.closeObject(obj);
  }

  /** Forgets the object; its anonymous fd closes once read-ahead started through it is written too. */
  private closeObject(obj: CacheObject): void {
    if (obj.fdClosed) return;
    obj.fdClosed = true;
    if (this.objects.get(obj.objectId) === obj) this.objects.delete(obj.objectId);
    this.countLive();
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
    for (const obj of [...this.objects.values()]) this.retire(obj);
  }
}
