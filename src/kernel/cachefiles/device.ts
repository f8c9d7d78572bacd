// The I/O-only loop around /dev/cachefiles: open, configure, bind, then on each POLLIN read
// messages until none is pending and hand them on. No policy lives here.
import type { Logger } from 'pino';
import { OndineError } from '../../errors.js';
import { cachefilesOpen, closeFd, devRead, devWrite, FdPoller, NativeError } from '../../native/index.js';
import { parseMessage, type Message } from './messages.js';

export interface DeviceOptions {
  devicePath?: string;
  /** Must exist, on ext4 or xfs (tmpfs cannot bind). */
  cacheDir: string;
  tag?: string;
  log?: Logger;
}

export class CachefilesDevice {
  readonly fd: number;
  private poller: FdPoller | undefined;
  private readonly buf = Buffer.alloc(64 << 10);

  private constructor(fd: number, private readonly log?: Logger) {
    this.fd = fd;
  }

  /** Opens and binds the device in on-demand mode, or throws an error a user can act on. */
  static open(opts: DeviceOptions): CachefilesDevice {
    const fd = cachefilesOpen(opts.devicePath ?? '/dev/cachefiles');
    try {
      devWrite(fd, `dir ${opts.cacheDir}`);
      if (opts.tag) devWrite(fd, `tag ${opts.tag}`);
      try {
        devWrite(fd, 'bind ondemand');
      } catch (err) {
        if (err instanceof NativeError && err.code === 'EOPNOTSUPP') {
          throw new OndineError('ONDINE_ERR_CACHE_DIR', err.errno, `cachefiles cannot bind to ${opts.cacheDir}: its filesystem lacks what cachefiles needs (tmpfs?); use a directory on ext4 or xfs`);
        }
        if (err instanceof NativeError && err.code === 'EINVAL') {
          throw new OndineError('ONDINE_ERR_CACHE_DIR', err.errno, `cachefiles refused "bind ondemand": the kernel lacks CONFIG_CACHEFILES_ONDEMAND, or ${opts.cacheDir} is unusable`);
        }
        throw err;
      }
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    return new CachefilesDevice(fd, opts.log);
  }

  /** Adopts an already bound device fd (handed over by a previous daemon); sends `restore`. */
  static adopt(fd: number, log?: Logger): CachefilesDevice {
    const dev = new CachefilesDevice(fd, log);
    devWrite(fd, 'restore');
    return dev;
  }

  start(onMessage: (m: Message) => void): void {
    this.poller = new FdPoller(this.fd, (error) => {
      if (error) {
        this.log?.error({ err: error }, 'polling /dev/cachefiles failed');
        return;
      }
      this.drain(onMessage);
    });
    this.drain(onMessage);
  }

  private drain(onMessage: (m: Message) => void): void {
    for (;;) {
      let n: number;
      try {
        n = devRead(this.fd, this.buf);
      } catch (err) {
        this.log?.error({ err }, 'reading /dev/cachefiles failed');
        return;
      }
      if (n === 0) return;
      let msg: Message;
      try {
        msg = parseMessage(this.buf, n);
      } catch (err) {
        this.log?.error({ err }, 'malformed cachefiles message dropped');
        continue;
      }
      onMessage(msg);
    }
  }

  /** Stops reading; closing the fd makes uncached reads of live mounts fail with EIO. */
  close(): void {
    this.poller?.close();
    this.poller = undefined;
    closeFd(this.fd);
  }
}
