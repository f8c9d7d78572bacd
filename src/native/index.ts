// The typed face of the C++ addon: thin syscall wrappers with no policy. Each function checks
// its arguments, calls the addon, and lets NativeError (code/errno/syscall) through; a few
// errnos whose meaning is certain get a message that says what to do about them.
// Not here: parsing kernel messages (src/kernel), retry or fallback decisions (callers).
import { constants as bufferConstants } from 'node:buffer';

import { binding, type RawFdPoller } from './binding.js';
import * as check from './check.js';
import { NativeArgumentError, NativeError } from './errors.js';

export { NativeArgumentError, NativeError } from './errors.js';
export * from './constants.js';
export type { PathArg } from './check.js';

// ---------------------------------------------------------------------------------------
// Memory

/**
 * A zero-filled Buffer whose memory starts at an `align`-byte boundary (posix_memalign,
 * freed when the Buffer is collected). O_DIRECT writes, such as those into cachefiles'
 * anonymous fds, need this: an ordinary Buffer is not aligned. Slices keep the base
 * alignment only at offsets that are multiples of `align`.
 */
export function alignedBuffer(size: number, align = 4096): Buffer {
  check.integer(size, 'size', 0, bufferConstants.MAX_LENGTH);
  check.integer(align, 'align', 8, 1 << 30);
  if ((align & (align - 1)) !== 0) {
    throw new NativeArgumentError(`align must be a power of two, got ${align}`);
  }
  return binding.alignedBuffer(size, align);
}

// ---------------------------------------------------------------------------------------
// lz4 block format (liblz4)

/** LZ4_MAX_INPUT_SIZE from lz4.h. */
const LZ4_MAX_INPUT_SIZE = 0x7e000000;

function lz4Source(src: unknown): Uint8Array {
  const bytes = check.bytes(src, 'src');
  if (bytes.length > LZ4_MAX_INPUT_SIZE) {
    throw new NativeArgumentError(`src is ${bytes.length} bytes, over LZ4_MAX_INPUT_SIZE`);
  }
  return bytes;
}

/**
 * Decodes one lz4 block that must expand to exactly `uncompressedSize` bytes. A corrupt
 * block, or one of any other decoded size, throws NativeError code 'EBADMSG'.
 */
export function lz4Decompress(src: Uint8Array, uncompressedSize: number): Buffer {
  const bytes = lz4Source(src);
  check.integer(uncompressedSize, 'uncompressedSize', 0, check.INT32_MAX);
  return binding.lz4Decompress(bytes, uncompressedSize);
}

/** One lz4 block (LZ4_compress_default); the Buffer holds exactly the compressed bytes. */
export function lz4Compress(src: Uint8Array): Buffer {
  return binding.lz4Compress(lz4Source(src));
}

// ---------------------------------------------------------------------------------------
// Extended attributes (never following symlinks)

const NOT_SUPPORTED = new Set(['ENOTSUP', 'EOPNOTSUPP']);

function xattrError(err: unknown, path: check.PathArg, name?: string): unknown {
  if (!(err instanceof NativeError)) return err;
  const where = `'${check.pathText(path)}'`;
  if (err.code === 'ENODATA' && name !== undefined) {
    return err.explain(`no extended attribute "${name}" on ${where}`);
  }
  if (NOT_SUPPORTED.has(err.code)) {
    return err.explain(`the filesystem of ${where} does not support extended attributes`);
  }
  return err;
}

/** Attribute names of `path` itself (not a symlink's target); [] where xattrs are unsupported. */
export function llistxattr(path: check.PathArg): string[] {
  const p = check.path(path);
  try {
    return binding.llistxattr(p);
  } catch (err) {
    if (err instanceof NativeError && NOT_SUPPORTED.has(err.code)) return [];
    throw xattrError(err, p);
  }
}

/** Value of attribute `name`; NativeError 'ENODATA' when it is not set. */
export function lgetxattr(path: check.PathArg, name: string): Buffer {
  const p = check.path(path);
  check.nonEmptyString(name, 'name');
  try {
    return binding.lgetxattr(p, name);
  } catch (err) {
    throw xattrError(err, p, name);
  }
}

// ---------------------------------------------------------------------------------------
// Sparse files

/** Offset of the first data at or after `offset` (lseek SEEK_DATA), -1 if none. */
export function seekData(fd: number, offset: number): number {
  return binding.seekData(check.fd(fd), check.offset(offset, 'offset'));
}

/** Offset of the first hole at or after `offset` (lseek SEEK_HOLE), -1 if past the end. */
export function seekHole(fd: number, offset: number): number {
  return binding.seekHole(check.fd(fd), check.offset(offset, 'offset'));
}

// ---------------------------------------------------------------------------------------
// openat2(2)

export interface OpenHow {
  /** open(2) flags (fs.constants.O_*); O_CLOEXEC is always added. */
  flags: number;
  /** Permission bits of a file O_CREAT makes (default 0o600; openat2 refuses any without O_CREAT). */
  mode?: number;
  /** RESOLVE_* flags: how `path` may be resolved below `dirfd`. */
  resolve: number;
}

/** Linux's O_CLOEXEC (fs.constants does not export it). */
const O_CLOEXEC = 0o2000000;
const O_CREAT = 0o100;

/**
 * openat2(2): opens `path` relative to the directory fd `dirfd` with the given resolve flags
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS keeps it strictly below
 * the directory, through no link of any kind). Returns the new fd; the kernel's refusal comes
 * as a NativeError (EXDEV: escapes the directory; ELOOP: a symlink on the way; EAGAIN: a
 * concurrent rename, try again). Policy such as retries stays with the caller.
 */
export function openat2(dirfd: number, path: check.PathArg, how: OpenHow): number {
  const flags = check.integer(how.flags, 'flags', 0, check.INT32_MAX);
  return binding.openat2(
    check.integer(dirfd, 'dirfd', -check.INT32_MAX - 1, check.INT32_MAX),
    check.path(path),
    flags | O_CLOEXEC,
    check.integer(how.mode ?? (flags & O_CREAT ? 0o600 : 0), 'mode', 0, 0o7777),
    check.integer(how.resolve, 'resolve', 0, check.UINT32_MAX),
  );
}

// ---------------------------------------------------------------------------------------
// Mounts

function mountArgs(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): [string | null, string, string | null, number, string | null] {
  return [
    check.optionalString(source, 'source'),
    check.nonEmptyString(target, 'target'),
    check.optionalString(fstype, 'fstype'),
    check.integer(flags, 'flags', 0, check.UINT32_MAX),
    check.optionalString(data, 'data'),
  ];
}

/**
 * mount(2) as is. For a file-backed EROFS image: mount(imagePath, dir, 'erofs', MS_RDONLY,
 * 'device=<blob cache file>'); no loop device is involved. fstype may be null with
 * MS_BIND / MS_MOVE / MS_REMOUNT / propagation flags, where the kernel ignores it.
 */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): void {
  binding.mount(...mountArgs(source, target, fstype, flags, data));
}

/**
 * mount(2) on the thread pool. Use it when this process also answers the fanotify events
 * the mount may raise: a synchronous mount would block the thread that has to answer.
 */
export function mountAsync(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): Promise<void> {
  try {
    return binding.mountAsync(...mountArgs(source, target, fstype, flags, data));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** umount2(2); flags MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW. */
export function umount2(target: string, flags = 0): void {
  binding.umount2(check.nonEmptyString(target, 'target'), check.integer(flags, 'flags', 0, 15));
}

/** umount2(2) on the thread pool (an unmount may wait on I/O). */
export function umount2Async(target: string, flags = 0): Promise<void> {
  try {
    return binding.umount2Async(
      check.nonEmptyString(target, 'target'),
      check.integer(flags, 'flags', 0, 15),
    );
  } catch (err) {
    return Promise.reject(err);
  }
}

export interface MountErofsFileOptions {
  /**
   * More EROFS options, each one fsconfig call in insertion order after the devices
   * (e.g. `{ fsid: 'x' }`). An empty value sets a flag option (FSCONFIG_SET_FLAG).
   */
  extraOptions?: Record<string, string>;
}

/**
 * Mounts the EROFS image file `source` read-only at `target`, file-backed (no loop device),
 * with `devices` as its extra devices in device-table order, through the new mount API:
 * fsopen, one fsconfig per key (one `device` key per blob), fsmount, move_mount. Unlike
 * mount(2) it takes any number of devices and paths with commas; paths over 255 bytes, the
 * kernel's limit for an fsconfig value, are passed as /proc/self/fd/<n> of an O_PATH fd.
 * Runs on the thread pool, so this process can answer the fanotify events the mount raises.
 * Rejects with a NativeError (syscall and path of the failed step) whose message names the
 * step and adds what the filesystem wrote to the mount context's log.
 */
export function mountErofsFile(
  source: string,
  target: string,
  devices: readonly string[],
  opts: MountErofsFileOptions = {},
): Promise<void> {
  try {
    check.nonEmptyString(source, 'source');
    check.nonEmptyString(target, 'target');
    if (!Array.isArray(devices)) throw new NativeArgumentError('devices must be an array of paths');
    const devs = devices.map((d, i) => check.nonEmptyString(d, `devices[${i}]`));
    const extra = opts.extraOptions ?? {};
    if (typeof extra !== 'object' || extra === null) {
      throw new NativeArgumentError('extraOptions must be an object of string values');
    }
    const options = Object.entries(extra).map(([k, v]): [string, string] => {
      check.nonEmptyString(k, 'extraOptions key');
      if (k === 'source' || k === 'device') {
        throw new NativeArgumentError(`extraOptions must not set "${k}": pass it as an argument`);
      }
      return [k, check.string(v, `extraOptions.${k}`)];
    });
    return binding.mountErofsFileAsync(source, target, devs, options);
  } catch (err) {
    return Promise.reject(err);
  }
}

// ---------------------------------------------------------------------------------------
// cachefiles device and fd I/O

/**
 * Opens the cachefiles device (O_RDWR | O_CLOEXEC). The errors a user can act on carry a
 * message saying what is wrong; code/errno stay the kernel's.
 */
export function cachefilesOpen(path = '/dev/cachefiles'): number {
  check.nonEmptyString(path, 'path');
  try {
    return binding.openDevice(path);
  } catch (err) {
    if (!(err instanceof NativeError)) throw err;
    switch (err.code) {
      case 'ENOENT':
      case 'ENODEV':
      case 'ENXIO':
        throw err.explain(
          `${path} is not available: this kernel lacks on-demand cachefiles ` +
            '(CONFIG_CACHEFILES and CONFIG_CACHEFILES_ONDEMAND), or the cachefiles module is ' +
            'not loaded (modprobe cachefiles). Use the Ondine test VM, or the fanotify path.',
        );
      case 'EBUSY':
        throw err.explain(
          `${path} is already open elsewhere (single opener): cachefilesd or another ` +
            'Ondine daemon holds it; stop that process first.',
        );
      case 'EPERM':
      case 'EACCES':
        throw err.explain(`opening ${path} needs CAP_SYS_ADMIN (run as root).`);
      default:
        throw err;
    }
  }
}

/** One write(2) of a text command (`bind ondemand`, `copen 7,4096`, ...). */
export function devWrite(fd: number, command: string): void {
  binding.devWrite(check.fd(fd), check.nonEmptyString(command, 'command'));
}

/**
 * One read(2) into `buf`: the number of bytes read, 0 when nothing is pending (also for a
 * non-blocking fd that would block). For cachefiles, give at least 1024 bytes.
 */
export function devRead(fd: number, buf: Uint8Array): number {
  return binding.devRead(check.fd(fd), check.bytes(buf, 'buf'));
}

/** One write(2) of `buf` (e.g. a fanotify response); returns the bytes written. */
export function writeBuffer(fd: number, buf: Uint8Array): number {
  return binding.writeBuffer(check.fd(fd), check.bytes(buf, 'buf'));
}

/** CACHEFILES_IOC_READ_COMPLETE for `msgId` on a cachefiles anonymous fd. */
export function ioctlReadComplete(fd: number, msgId: number): void {
  binding.ioctlReadComplete(check.fd(fd), check.integer(msgId, 'msgId', 0, check.UINT32_MAX));
}

/**
 * Writes all of `buf` at `offset` with pwrite(2) on the thread pool, looping over short
 * writes; resolves to buf.length. The memory is used as is, so an alignedBuffer stays
 * aligned for O_DIRECT. Do not modify `buf` until it settles.
 */
export function pwriteAsync(fd: number, buf: Uint8Array, offset: number): Promise<number> {
  try {
    return binding.pwriteAsync(check.fd(fd), check.bytes(buf, 'buf'), check.offset(offset, 'offset'));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** close(2). */
export function closeFd(fd: number): void {
  binding.closeFd(check.fd(fd));
}

/**
 * Sets (default) or clears close-on-exec on `fd`, e.g. on fds inherited from a parent that
 * must not reach this process's own children.
 */
export function setCloexec(fd: number, on = true): void {
  binding.setCloexec(check.fd(fd), on === true);
}

/**
 * Calls `onReadable` on the event loop whenever `fd` is readable (libuv uv_poll_t, level
 * triggered): read until devRead returns 0, or it fires again. No thread waits, nothing
 * spins. libuv makes `fd` non-blocking. Close the poller before closing the fd, and keep
 * one poller per fd. A poll error is passed once to `onReadable`, and the poller stops.
 * An open poller keeps the process alive unless unref()'d.
 */
export class FdPoller {
  readonly fd: number;
  readonly #raw: RawFdPoller;

  constructor(fd: number, onReadable: (error?: NativeError) => void) {
    this.fd = check.fd(fd);
    if (typeof onReadable !== 'function') {
      throw new NativeArgumentError('onReadable must be a function');
    }
    this.#raw = new binding.FdPoller(this.fd, (error?: NativeError) => {
      if (error === undefined) onReadable();
      else onReadable(error);
    });
  }

  /** Stops polling; no callback runs afterwards. Idempotent. */
  close(): void {
    this.#raw.close();
  }

  get closed(): boolean {
    return this.#raw.closed;
  }

  /** Lets the process exit while this poller is open. */
  unref(): this {
    this.#raw.unref();
    return this;
  }

  ref(): this {
    this.#raw.ref();
    return this;
  }
}

// ---------------------------------------------------------------------------------------
// inotify and flock

/** inotify_init1(IN_NONBLOCK | IN_CLOEXEC): read it with devRead under an FdPoller. */
export function inotifyInit(): number {
  return binding.inotifyInit();
}

/** inotify_add_watch(2); returns the watch descriptor. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return binding.inotifyAddWatch(check.fd(fd), check.nonEmptyString(path, 'path'), check.integer(mask, 'mask', 1, 0xffffffff));
}

/** inotify_rm_watch(2); EINVAL when the watch is already gone (IN_IGNORED came or comes). */
export function inotifyRmWatch(fd: number, wd: number): void {
  binding.inotifyRmWatch(check.fd(fd), check.integer(wd, 'wd', 0, 0x7fffffff));
}

/**
 * flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another open file description
 * holds it. The lock belongs to the open file description: every process that inherited
 * `fd` holds it until the last of them closes it or exits.
 */
export function flockExclusive(fd: number): boolean {
  return binding.flockExclusive(check.fd(fd), false);
}

// ---------------------------------------------------------------------------------------
// fanotify

/** fanotify_init(2): e.g. (FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, O_RDWR). */
export function fanotifyInit(flags: number, eventFlags: number): number {
  return binding.fanotifyInit(
    check.integer(flags, 'flags', 0, check.UINT32_MAX),
    check.integer(eventFlags, 'eventFlags', 0, check.UINT32_MAX),
  );
}

/**
 * fanotify_mark(2). `path` null marks the object `dirfd` refers to; a relative path is
 * resolved against `dirfd` (AT_FDCWD for the working directory).
 */
export function fanotifyMark(
  fd: number,
  flags: number,
  mask: bigint,
  dirfd: number,
  path: string | null,
): void {
  check.fd(fd);
  check.integer(flags, 'flags', 0, check.UINT32_MAX);
  if (typeof mask !== 'bigint' || mask < 0n || mask > 0xffffffffffffffffn) {
    throw new NativeArgumentError('mask must be a bigint in [0, 2^64)');
  }
  check.integer(dirfd, 'dirfd', -check.INT32_MAX - 1, check.INT32_MAX);
  const p = check.optionalString(path, 'path');
  binding.fanotifyMark(fd, flags, mask, dirfd, p);
}

// ---------------------------------------------------------------------------------------
// Datagrams with an optional fd (SCM_RIGHTS): the link to ondine-supervisor

/**
 * A connected pair of AF_UNIX SEQPACKET sockets (close-on-exec), the kind of link
 * ondine-supervisor gives its worker: in production the supervisor makes it, so this is how
 * tests stand in for the supervisor's end. Blocking unless `nonBlocking` is set.
 */
export function socketpair(options: { nonBlocking?: boolean } = {}): [number, number] {
  return binding.socketpair(options.nonBlocking === true);
}

/**
 * Sends `buf` as one datagram (SEQPACKET), with a duplicate of `fd` attached (SCM_RIGHTS)
 * when given. Never blocks: false when the socket's buffer is full (try again once it
 * drains), true when sent.
 */
export function sendMessage(socketFd: number, buf: Uint8Array, fd?: number): boolean {
  check.fd(socketFd, 'socketFd');
  check.bytes(buf, 'buf');
  return binding.sendMessage(socketFd, buf, fd === undefined ? -1 : check.fd(fd));
}

/**
 * Receives one datagram into `buf`, never blocking: its length and the fd that came with it
 * (close-on-exec; -1 if none), or `{ length: -1, fd: -1 }` when nothing is pending. Throws
 * NativeError 'ECONNRESET' once the peer has closed (so a zero-length datagram without an fd
 * reads as a close), 'EMSGSIZE' for a datagram longer than `buf`, 'EPROTO' for more than one
 * fd; no fd is kept from a message that throws.
 */
export function recvMessage(socketFd: number, buf: Uint8Array): { length: number; fd: number } {
  check.fd(socketFd, 'socketFd');
  return binding.recvMessage(socketFd, check.bytes(buf, 'buf'));
}
