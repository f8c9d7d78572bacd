// The I/O-only loop over a fanotify group read directly by this process: used when no
// supervisor holds the group (tests, `--no-supervisor`) and to take over when the supervisor
// is lost. Ranges already in the cache file are allowed at once (passed on to the front end as
// read hints where a stream's read-ahead must move: read-hints.ts); the rest go to the front end.
// Responses are written before the event's fd is closed (the kernel matches by fd number).
import { fstatSync } from 'node:fs';
import type { Logger } from 'pino';
import { closeFd, devRead, FAN_ALLOW, FAN_DENY_ERRNO, FAN_PRE_ACCESS, FdPoller, writeBuffer } from '../../native/index.js';
import { isAllocated } from '../../storage/cache-file.js';
import { parseFanotifyEvents } from './events.js';
import type { FanotifyFrontend } from './frontend.js';
import { ReadHints } from './read-hints.js';
import { AccessReply } from './replies.js';

const EIO = 5;

/** The 8-byte fanotify_response for `fd`: allow when `err` is 0, else deny with EIO. */
export function responseBytes(fd: number, err: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeUInt32LE(err === 0 ? FAN_ALLOW : FAN_DENY_ERRNO(EIO), 4);
  return b;
}

export class GroupReader {
  private poller: FdPoller | undefined;
  private readonly buf = Buffer.alloc(64 << 10);
  private readonly hints = new ReadHints();
  allowedAtOnce = 0;
  failure: Error | undefined;

  constructor(private readonly group: number, private readonly frontend: FanotifyFrontend, private readonly log?: Logger) {}

  start(): void {
    this.poller = new FdPoller(this.group, (error) => {
      if (error) {
        this.failure = error;
        this.log?.error({ err: error }, 'polling the fanotify group failed');
        return;
      }
      this.drain();
    });
    this.drain();
  }

  /** Writes one response to the group; failures are logged (the fd may be gone already). */
  respond(fd: number, err: number): void {
    try {
      writeBuffer(this.group, responseBytes(fd, err));
    } catch (e) {
      this.log?.error({ err: e, fd }, 'writing a fanotify response failed');
    }
  }

  private drain(): void {
    for (;;) {
      let n: number;
      try {
        n = devRead(this.group, this.buf);
      } catch (err) {
        this.failure = err as Error;
        this.log?.error({ err }, 'reading the fanotify group failed');
        return;
      }
      if (n <= 0) return;
      let events;
      try {
        events = parseFanotifyEvents(this.buf, n);
      } catch (err) {
        // Nothing to answer by: the fds in a buffer we cannot parse are unknown. Only a
        // kernel/daemon mismatch can cause this.
        this.log?.fatal({ err }, 'malformed fanotify read');
        continue;
      }
      for (const ev of events) this.dispatch(ev.mask, ev.fd, ev.range);
    }
  }

  private dispatch(mask: bigint, fd: number, range: { offset: number; count: number } | undefined): void {
    if (fd < 0) {
      this.log?.error({ mask: mask.toString(16) }, 'fanotify event without fd (queue overflow?)');
      return;
    }
    if (!(mask & FAN_PRE_ACCESS)) {
      this.respond(fd, 0);
      this.safeClose(fd);
      return;
    }
    let dev: number;
    let ino: number;
    let size: number;
    try {
      const st = fstatSync(fd);
      dev = st.dev; ino = st.ino; size = st.size;
    } catch (err) {
      this.log?.error({ err }, 'fstat of an event fd failed: denied');
      this.respond(fd, EIO);
      this.safeClose(fd);
      return;
    }
    const offset = range?.offset ?? 0;
    const end = Math.min(size, range ? range.offset + range.count : size);
    if (offset >= end) {
      this.allowedAtOnce++;
      this.respond(fd, 0);
      this.safeClose(fd);
      return;
    }
    if (isAllocated(fd, offset, end - offset)) {
      this.allowedAtOnce++;
      this.respond(fd, 0);
      const due = this.hints.note(dev, ino, offset, end, size, false);
      if (due && !isAllocated(fd, end, due.lookEnd - end)) {
        this.hints.sent(dev, ino, offset);
        this.frontend.hint({ offset, count: end - offset, dev, ino, fd });
      } else {
        this.safeClose(fd);
      }
      return;
    }
    this.hints.note(dev, ino, offset, end, size, true);
    this.frontend.handle({ offset, count: end - offset, dev, ino, fd }, new AccessReply((err) => this.respond(fd, err), `fd ${fd}`));
  }

  private safeClose(fd: number): void {
    try { closeFd(fd); } catch { /* already closed */ }
  }

  close(): void {
    this.poller?.close();
    this.poller = undefined;
  }
}
