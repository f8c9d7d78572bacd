// The I/O-only loop around /dev/cachefiles: open, configure, bind, then on each POLLIN read
// messages until none is pending and hand them on. No policy lives here, except noticing
// that the loop itself has died (a poll error, a read error that would repeat forever), so
// the daemon can stop claiming to be healthy.
import type { Logger } from 'pino';
import { CorruptError, OndineError } from '../../errors.js';
import { cachefilesOpen, closeFd, devRead, devWrite, FdPoller, NativeError } from '../../native/index.js';
import { readMessage, type MalformedMessage, type Message } from './messages.js';

/** The syscalls the loop makes; unit tests replace them to reach the failure paths. */
export interface DeviceSyscalls {
  read(fd: number, buf: Uint8Array): number;
  write(fd: number, command: string): void;
  close(fd: number): void;
  /** Calls `onReadable` while `fd` is readable, once with an error if polling fails. */
  poll(fd: number, onReadable: (error?: Error) => void): { close(): void };
}

export const nativeDeviceSyscalls: DeviceSyscalls = {
  read: devRead,
  write: devWrite,
  close: closeFd,
  poll: (fd, onReadable) => new FdPoller(fd, onReadable),
};

export interface DeviceHooks {
  log?: Logger;
  /** Called once when the loop stops for good (see CachefilesDevice.failure). */
  onFailure?: (error: Error) => void;
  syscalls?: DeviceSyscalls;
}

export interface DeviceOptions extends DeviceHooks {
  devicePath?: string;
  /** Must exist, on ext4 or xfs (tmpfs cannot bind). */
  cacheDir: string;
  tag?: string;
}

/** The device loop stopped: no request is read any more (CachefilesDevice.failure). */
export class CachefilesLoopError extends OndineError {
  constructor(errno: number, message: string, options: { cause: unknown }) {
    super('ONDINE_ERR_DEVICE', errno, message, options);
  }
}

/**
 * read() errors that concern one message, not the device: the kernel fails the request it
 * could not hand over (an OPEN whose anonymous fd could not be installed) and the next read
 * goes on. Any other error would come back on every read, so it ends the loop.
 */
const PER_MESSAGE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EINTR']);

export class CachefilesDevice {
  readonly fd: number;
  private poller: { close(): void } | undefined;
  private readonly buf = Buffer.alloc(64 << 10);
  private readonly sys: DeviceSyscalls;
  private failed: CachefilesLoopError | undefined;
  private closed = false;

  private constructor(fd: number, private readonly hooks: DeviceHooks) {
    this.fd = fd;
    this.sys = hooks.syscalls ?? nativeDeviceSyscalls;
  }

  /** Opens and binds the device in on-demand mode, or throws an error a user can act on. */
  static open(opts: DeviceOptions): CachefilesDevice {
    const sys = opts.syscalls ?? nativeDeviceSyscalls;
    const fd = cachefilesOpen(opts.devicePath ?? '/dev/cachefiles');
    try {
      sys.write(fd, `dir ${opts.cacheDir}`);
      if (opts.tag) sys.write(fd, `tag ${opts.tag}`);
      try {
        sys.write(fd, 'bind ondemand');
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
      sys.close(fd);
      throw err;
    }
    return new CachefilesDevice(fd, opts);
  }

  /** Adopts an already bound device fd (handed over by a previous daemon); sends `restore`. */
  static adopt(fd: number, log?: Logger, hooks: Omit<DeviceHooks, 'log'> = {}): CachefilesDevice {
    const dev = new CachefilesDevice(fd, { ...hooks, ...(log ? { log } : {}) });
    dev.sys.write(fd, 'restore');
    return dev;
  }

  /**
   * Why the loop stopped for good: a poll error or a read error that would repeat. Requests
   * are no longer read from then on (readers of uncached data hang until the device is
   * closed), so the daemon is not healthy. undefined while the loop runs.
   */
  get failure(): CachefilesLoopError | undefined {
    return this.failed;
  }

  start(onMessage: (m: Message | MalformedMessage) => void): void {
    this.poller = this.sys.poll(this.fd, (error) => {
      if (error) {
        this.fail('polling /dev/cachefiles failed', error);
        return;
      }
      this.drain(onMessage);
    });
    this.drain(onMessage);
  }

  private fail(what: string, cause: Error): void {
    if (this.failed || this.closed) return;
    const errno = cause instanceof NativeError ? cause.errno : 5;
    this.failed = new CachefilesLoopError(errno, `${what}: ${cause.message}; no more requests are read`, { cause });
    this.hooks.log?.error({ err: cause }, `${what}: the cachefiles loop stopped`);
    this.poller?.close();
    this.poller = undefined;
    try {
      this.hooks.onFailure?.(this.failed);
    } catch (err) {
      this.hooks.log?.error({ err }, 'onFailure threw');
    }
  }

  private drain(onMessage: (m: Message | MalformedMessage) => void): void {
    while (!this.failed && !this.closed) {
      let n: number;
      try {
        n = this.sys.read(this.fd, this.buf);
      } catch (err) {
        if (err instanceof NativeError && PER_MESSAGE_ERRORS.has(err.code)) {
          this.hooks.log?.warn({ err }, 'reading /dev/cachefiles failed for one message (the kernel failed that request)');
          continue;
        }
        this.fail('reading /dev/cachefiles failed', err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (n === 0) return;
      let msg: Message | MalformedMessage;
      try {
        msg = readMessage(this.buf, n);
      } catch (err) {
        if (!(err instanceof CorruptError)) throw err;
        // Not even a header: no msg_id to answer with.
        this.hooks.log?.error({ err }, 'cachefiles message without a readable header dropped');
        continue;
      }
      onMessage(msg);
    }
  }

  /** Stops reading; closing the fd makes uncached reads of live mounts fail with EIO. */
  close(): void {
    this.closed = true;
    this.poller?.close();
    this.poller = undefined;
    this.sys.close(this.fd);
  }
}
