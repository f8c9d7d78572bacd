// Ondine's own layout of cache files for the fanotify path, under the daemon's cache
// directory (cachefiles names and owns its files elsewhere; none of that is imitated here):
//   <cacheDir>/ondine/blobs/<blob id>        sparse, the uncompressed blob (block-padded size)
//   <cacheDir>/ondine/bootstraps/<sha256>    whole (EROFS reads metadata without events)
// A blob file's size is fixed when it is made; a file of another size is not this blob's
// cache and is replaced. Data once written survives daemon restarts.
// Every file and directory below <cacheDir> is opened with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) relative to an fd of its directory, and only
// under a name checked against its grammar first: no name from an image, and no link planted
// in the cache directory, can make Ondine open, create or truncate a file anywhere else.
// Callers get the fd that was checked; the kernel is handed /proc/self/fd/<fd>, never a path.
import { closeSync, constants as fsConstants, fstatSync, fsync, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync, read, readdirSync, readSync, renameSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { rename as renameAsync } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { OndineError } from '../errors.js';
import { alignUp } from '../format/bytes.js';
import { BLOCK_SIZE } from '../format/constants.js';
import { checkName } from '../format/identifiers.js';
import { NativeError, openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from '../native/index.js';
import { isAllocated } from './cache-file.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_DIRECTORY, O_NONBLOCK, O_NOFOLLOW } = fsConstants;
const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/** The directories Ondine keeps below <cacheDir>/ondine. */
export type CacheSubdir = 'blobs' | 'bootstraps' | 'bootstraps/by-layer';

/** A cache file opened read-only and checked (a regular file of the right size or content). */
export interface OpenedCacheFile {
  /** Read-only fd of exactly the file that was checked; the caller closes it. */
  fd: number;
  /** Where it is (for listings and logs; never reopened by this path). */
  path: string;
}

/** How many times a resolution that raced a rename (EAGAIN) is tried before giving up. */
const EAGAIN_TRIES = 8;

/** A path as the kernel should open it: exactly the file `fd` refers to. */
export function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

export class CacheDir {
  readonly root: string;

  constructor(readonly cacheDir: string) {
    this.root = join(cacheDir, 'ondine');
  }

  blobPath(blobId: string): string {
    return join(this.root, 'blobs', checkName(blobId, 'cache file name'));
  }

  /**
   * The sparse cache file of a blob (or of a flat device image, by its key), made if absent
   * or of another size; opened read-only. `name` must be a blob id or another name of the
   * identifier grammar.
   */
  openBlob(name: string, uncompressedSize: number): OpenedCacheFile {
    checkName(name, 'cache file name');
    const size = alignUp(uncompressedSize, BLOCK_SIZE);
    return this.inDir('blobs', (dfd) => {
      const path = join(this.root, 'blobs', name);
      const fd = this.openExisting(dfd, name, path);
      if (fd !== undefined) {
        if (fstatSync(fd).size === size) return { fd, path };
        closeSync(fd);
      }
      // Absent, or of another size (not this blob's cache): a fresh sparse file, renamed into
      // place so no reader ever sees a half-made one.
      this.replace(dfd, name, path, (tfd) => ftruncateSync(tfd, size));
      const made = this.openExisting(dfd, name, path);
      if (made === undefined) throw this.unsafe(path, 'vanished right after it was made');
      return { fd: made, path };
    });
  }

  /**
   * The bootstrap's copy in the cache directory, named by its sha256, written whole
   * (fsync'd, renamed into place) unless a copy with exactly these bytes is there; opened
   * read-only, and its content checked through that fd.
   */
  openBootstrap(bytes: Uint8Array): OpenedCacheFile {
    const name = createHash('sha256').update(bytes).digest('hex');
    return this.inDir('bootstraps', (dfd) => {
      const path = join(this.root, 'bootstraps', name);
      const fd = this.openExisting(dfd, name, path);
      if (fd !== undefined) {
        if (fstatSync(fd).size === bytes.length && hashOf(fd) === name) return { fd, path };
        closeSync(fd);
      }
      this.replace(dfd, name, path, (tfd) => {
        writeAll(tfd, bytes);
        fsyncSync(tfd);
      });
      const made = this.openExisting(dfd, name, path);
      if (made === undefined || hashOf(made) !== name) {
        if (made !== undefined) closeSync(made);
        throw this.unsafe(path, 'changed right after it was written');
      }
      return { fd: made, path };
    });
  }

  /** A small file of `sub` (undefined if absent or larger than `max`). */
  readFile(sub: CacheSubdir, name: string, max = 1 << 20): Buffer | undefined {
    checkName(name, 'cache file name');
    return this.inDir(sub, (dfd) => {
      const fd = this.openExisting(dfd, name, join(this.root, sub, name));
      if (fd === undefined) return undefined;
      try {
        const size = fstatSync(fd).size;
        if (size > max) return undefined;
        const buf = Buffer.alloc(size);
        let done = 0;
        while (done < size) {
          const n = readSync(fd, buf, done, size - done, done);
          if (n === 0) break;
          done += n;
        }
        return buf.subarray(0, done);
      } finally {
        closeSync(fd);
      }
    });
  }

  /** Writes a file of `sub` whole (renamed into place). */
  writeFile(sub: CacheSubdir, name: string, bytes: Uint8Array): void {
    checkName(name, 'cache file name');
    this.inDir(sub, (dfd) => this.replace(dfd, name, join(this.root, sub, name), (tfd) => writeAll(tfd, bytes)));
  }

  /**
   * <cacheDir>/ondine/<sub> held open (each level made if absent, none a link), for work done
   * in several steps, some of them async; the caller closes it.
   */
  openDir(sub: CacheSubdir): CacheSubdirHandle {
    return new CacheSubdirHandle(this, this.openSub(sub), join(this.root, sub));
  }

  /** Runs `fn` with an fd of <cacheDir>/ondine/<sub>, each level made if absent and none a link. */
  private inDir<T>(sub: CacheSubdir, fn: (dfd: number) => T): T {
    const fd = this.openSub(sub);
    try {
      return fn(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** An fd of <cacheDir>/ondine/<sub>, each level made if absent and none a link. */
  private openSub(sub: CacheSubdir): number {
    let fd: number;
    try {
      fd = openSync(this.cacheDir, O_RDONLY | O_DIRECTORY);
    } catch (err) {
      throw new OndineError('ONDINE_ERR_CACHE_DIR', undefined,
        `cache directory ${this.cacheDir} cannot be opened: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    try {
      let at = this.cacheDir;
      for (const part of ['ondine', ...sub.split('/')]) {
        at = join(at, part);
        const next = this.openDirBelow(fd, part, at);
        closeSync(fd);
        fd = next;
      }
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private openDirBelow(dfd: number, name: string, path: string): number {
    for (let made = false; ; made = true) {
      try {
        return this.openat(dfd, name, O_RDONLY | O_DIRECTORY, path);
      } catch (err) {
        if (made || !(err instanceof NativeError && err.code === 'ENOENT')) throw err;
        // mkdir through the directory's own fd: the name is made exactly there or not at all.
        try {
          mkdirSync(join(fdPath(dfd), name), 0o755);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
    }
  }

  /** openat2 beneath `dfd`; a refused resolution is an ONDINE_ERR_UNSAFE_PATH naming `path`. */
  /** @internal (for CacheSubdirHandle) */
  openat(dfd: number, name: string, flags: number, path: string, mode?: number): number {
    for (let i = 1; ; i++) {
      try {
        return openat2(dfd, name, { flags: flags | O_NOFOLLOW, resolve: BENEATH, ...(mode !== undefined ? { mode } : {}) });
      } catch (err) {
        if (!(err instanceof NativeError)) throw err;
        if (err.code === 'EAGAIN' && i < EAGAIN_TRIES) continue;
        if (err.code === 'ELOOP' || err.code === 'EXDEV') throw this.unsafe(path, 'is a symbolic link (or leads out of the cache directory)', err);
        if (err.code === 'ENOTDIR') throw this.unsafe(path, 'is not a directory', err);
        throw err;
      }
    }
  }

  /** The fd of `name` if it exists (read-only), refusing anything but a regular file. */
  /** @internal (for CacheSubdirHandle) */
  openExisting(dfd: number, name: string, path: string): number | undefined {
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO planted under this name must not hang the open.
      fd = this.openat(dfd, name, O_RDONLY | O_NONBLOCK, path);
    } catch (err) {
      if (err instanceof NativeError && err.code === 'ENOENT') return undefined;
      throw err;
    }
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw this.unsafe(path, 'is not a regular file');
    }
    return fd;
  }

  /** Makes `name` anew: `fill` writes a temporary file beside it, which is renamed over it. */
  private replace(dfd: number, name: string, path: string, fill: (fd: number) => void): void {
    const tmp = `${name}.new-${process.pid}`;
    const tmpPath = join(fdPath(dfd), tmp);
    let tfd: number;
    try {
      tfd = this.openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL, `${path}.new-${process.pid}`, 0o600);
    } catch (err) {
      if (!(err instanceof NativeError && err.code === 'EEXIST')) throw err;
      // Left by a process of this pid that died mid-write: unlink removes the name itself,
      // never what a link there points to.
      unlinkSync(tmpPath);
      tfd = this.openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL, `${path}.new-${process.pid}`, 0o600);
    }
    try {
      fill(tfd);
    } catch (err) {
      closeSync(tfd);
      try { unlinkSync(tmpPath); } catch { /* already gone */ }
      throw err;
    }
    closeSync(tfd);
    // rename(2) replaces the name itself (a link planted there included), never its target.
    renameSync(tmpPath, join(fdPath(dfd), name));
  }

  /** @internal (for CacheSubdirHandle) */
  unsafe(path: string, what: string, cause?: unknown): OndineError {
    return new OndineError('ONDINE_ERR_UNSAFE_PATH', undefined, `cache file ${path} ${what}: refusing to use it (remove it, and check what put it there)`, cause ? { cause } : undefined);
  }
}

const readAsync = promisify(read);
const fsyncAsync = promisify(fsync);

/** A single component of a directory: a checked name, and never "." or "..". */
function component(name: string): string {
  checkName(name, 'cache file name');
  if (name === '.' || name === '..') throw new OndineError('ONDINE_ERR_UNSAFE_PATH', undefined, `cache file name ${JSON.stringify(name)} is not a file name`);
  return name;
}

/**
 * One directory below <cacheDir>/ondine, open as an fd that openat2 checked. Every name given
 * here is one checked component, opened (openat2, beneath this fd) or renamed and unlinked
 * through /proc/self/fd/<fd>/<name>: renameat and unlinkat semantics, so a link planted in
 * the cache directory is at most replaced or removed itself, never followed.
 */
export class CacheSubdirHandle {
  private closed = false;

  constructor(private readonly owner: CacheDir, readonly fd: number, readonly path: string) {}

  /** Where `name` is (for errors and logs; never opened by this path). */
  pathOf(name: string): string {
    return join(this.path, name);
  }

  /** A new file `<prefix><pid>-<random>`, made exclusively (O_EXCL), open read-write. */
  createTemp(prefix: string): { fd: number; name: string } {
    const name = component(`${prefix}${process.pid}-${randomBytes(6).toString('hex')}`);
    const fd = this.owner.openat(this.fd, name, O_RDWR | O_CREAT | O_EXCL, this.pathOf(name), 0o600);
    return { fd, name };
  }

  /** Renames `from` to `to` within this directory (replacing the name `to` itself, whatever it is). */
  async rename(from: string, to: string): Promise<void> {
    await renameAsync(join(fdPath(this.fd), component(from)), join(fdPath(this.fd), component(to)));
  }

  /** Removes the name `name` (a link there is removed, never its target); false if absent. */
  remove(name: string): boolean {
    try {
      unlinkSync(join(fdPath(this.fd), component(name)));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** What `name` itself is (lstat: a link is not followed), or undefined if absent. */
  lstat(name: string): Stats | undefined {
    return lstatSync(join(fdPath(this.fd), component(name)), { throwIfNoEntry: false });
  }

  /** The names in this directory (hostile: check each before use). */
  list(): string[] {
    return readdirSync(fdPath(this.fd));
  }

  /** fsync of the directory itself: a rename done in it is durable. */
  async sync(): Promise<void> {
    await fsyncAsync(this.fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** `size` bytes of the file open as `fd` from offset 0 (fewer if it ends first). */
export async function readWhole(fd: number, size: number): Promise<Buffer> {
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const { bytesRead } = await readAsync(fd, buf, done, size - done, done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done, done);
}

/** sha256 hex of the whole file open as `fd`, read through that fd. */
function hashOf(fd: number): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; ;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return h.digest('hex');
}

/** Whether the file open as `fd` holds data from 0 to its end (no hole at all). */
export function fileComplete(fd: number): boolean {
  const size = fstatSync(fd).size;
  return size === 0 || isAllocated(fd, 0, size);
}
