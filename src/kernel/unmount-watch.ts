// Knowing when the kernel lets go of a mounted filesystem: an inotify watch on the root of
// each mount reports IN_UNMOUNT when its superblock dies, which is after the last user is
// gone (an overlay's private clone of its lower mount, a lazy detach, a copy in another mount
// namespace), not when the mount point merely leaves the mount table. The watch holds no
// reference that would keep the filesystem alive.
import type { Logger } from 'pino';
import {
  closeFd, devRead, FdPoller, IN_DELETE_SELF, IN_IGNORED, IN_ONLYDIR, IN_Q_OVERFLOW, IN_UNMOUNT,
  INOTIFY_EVENT_LEN, inotifyAddWatch, inotifyInit, inotifyRmWatch,
} from '../native/index.js';

export interface InotifyEvent {
  wd: number;
  mask: number;
}

/** struct inotify_event records in `buf[0, n)`; a truncated tail is ignored (the kernel never splits one). */
export function parseInotifyEvents(buf: Uint8Array, n: number): InotifyEvent[] {
  const view = Buffer.from(buf.buffer, buf.byteOffset, n);
  const out: InotifyEvent[] = [];
  for (let off = 0; off + INOTIFY_EVENT_LEN <= n;) {
    const wd = view.readInt32LE(off);
    const mask = view.readUInt32LE(off + 4);
    const len = view.readUInt32LE(off + 12);
    out.push({ wd, mask });
    off += INOTIFY_EVENT_LEN + len;
  }
  return out;
}

export class UnmountWatcher {
  private readonly fd: number;
  private readonly poller: FdPoller;
  private readonly buf = Buffer.alloc(16 << 10);
  private readonly watches = new Map<number, () => void>();

  /** `onOverflow`: events were lost; the caller must find out what is still mounted. */
  constructor(private readonly log?: Logger, private readonly onOverflow?: () => void) {
    this.fd = inotifyInit();
    this.poller = new FdPoller(this.fd, (error) => {
      if (error) {
        this.log?.error({ err: error }, 'polling the unmount watch failed');
        return;
      }
      this.drain();
    });
    // A watch alone must not keep a daemon alive that was asked to stop.
    this.poller.unref();
  }

  /**
   * Calls `gone` once the filesystem mounted at `mountpoint` (its root, as the path resolves
   * now) is gone from the kernel. Returns a handle for unwatch().
   */
  watch(mountpoint: string, gone: () => void): number {
    // Only IN_UNMOUNT matters (always reported); a read-only root never raises IN_DELETE_SELF.
    const wd = inotifyAddWatch(this.fd, mountpoint, IN_DELETE_SELF | IN_ONLYDIR);
    this.watches.set(wd, gone);
    return wd;
  }

  unwatch(wd: number): void {
    if (!this.watches.delete(wd)) return;
    try {
      inotifyRmWatch(this.fd, wd);
    } catch {
      // IN_IGNORED is on its way: the filesystem went at the same time
    }
  }

  private drain(): void {
    for (;;) {
      let n: number;
      try {
        n = devRead(this.fd, this.buf);
      } catch (err) {
        this.log?.error({ err }, 'reading the unmount watch failed');
        return;
      }
      if (n <= 0) return;
      for (const ev of parseInotifyEvents(this.buf, n)) {
        if (ev.mask & IN_Q_OVERFLOW) {
          this.log?.error('unmount watch queue overflowed; checking every mount');
          this.onOverflow?.();
          continue;
        }
        if (!(ev.mask & (IN_UNMOUNT | IN_IGNORED))) continue;
        const gone = this.watches.get(ev.wd);
        if (!gone) continue;
        this.watches.delete(ev.wd);
        gone();
      }
    }
  }

  close(): void {
    this.poller.close();
    closeFd(this.fd);
    this.watches.clear();
  }
}
