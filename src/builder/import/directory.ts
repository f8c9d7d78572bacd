// Importing a host directory into the builder's tree. It walks with lstat only (nothing inside
// the tree is followed, symlinks are recorded as such), records every attribute the image
// keeps (kind, mode with setuid/setgid/sticky, owner, nanosecond mtime, xattrs, device
// numbers, hardlink identity) and streams each regular file's data regions into the sink,
// asking the kernel where the holes are (SEEK_DATA/SEEK_HOLE) so holes are never read.
//
// Files are stored one at a time in the order walk() visits them (depth first, names in byte
// order), so the same directory always produces the same sequence of sink calls.
// The `root` argument itself is resolved (it may be a symlink to the tree); entries are not.
import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type BigIntStats } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { lgetxattr, llistxattr, seekData, seekHole } from '../../native/index.js';
import { nameFromBytes, newNode, type ChunkSink, type Segment, type TreeNode } from '../tree.js';
import { ImportError, SourceChangedError, SourceIoError } from './errors.js';

export interface DirectoryProgress {
  /** Paths imported so far (a hardlinked file counts once per path). */
  entries: number;
  /** Bytes of file data read and handed to the sink (holes are not read, not counted). */
  dataBytes: number;
  /** The path being imported. */
  path: string;
}

export interface DirectoryImportOptions {
  onProgress?: (p: DirectoryProgress) => void;
  /** Size of each read, and the largest segment handed to the sink (default 1 MiB). */
  readSize?: number;
}

const DEFAULT_READ = 1 << 20;
// O_NOFOLLOW and O_NONBLOCK: if the file was swapped for a symlink or a FIFO since lstat, open
// must neither follow it nor hang. O_NOATIME is added where permitted (EPERM on files the caller
// does not own without CAP_FOWNER).
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;
const SLASH = Buffer.from('/');

interface Walk<C> {
  sink: ChunkSink<C>;
  opts: DirectoryImportOptions;
  readSize: number;
  /** dev:ino -> node, for every non-directory with more than one link. */
  links: Map<string, TreeNode<C>>;
  progress: { entries: number; dataBytes: number };
}

export async function importDirectory<C>(root: string, sink: ChunkSink<C>, opts: DirectoryImportOptions = {}): Promise<TreeNode<C>> {
  let rootPath: Buffer;
  try {
    rootPath = await realpath(root, { encoding: 'buffer' });
  } catch (err) {
    throw new SourceIoError(root, err);
  }
  const st = lstatAt(rootPath);
  if (!st.isDirectory()) {
    throw new SourceIoError(root, Object.assign(new Error('not a directory'), { code: 'ENOTDIR', errno: 20, syscall: 'lstat' }));
  }
  const w: Walk<C> = { sink, opts, readSize: opts.readSize ?? DEFAULT_READ, links: new Map(), progress: { entries: 0, dataBytes: 0 } };
  const node = newNode<C>('dir', baseMeta(st, rootPath));
  w.progress.entries++;
  await importChildren(w, rootPath, node);
  return node;
}

async function importChildren<C>(w: Walk<C>, dirPath: Buffer, dir: TreeNode<C>): Promise<void> {
  let names: Buffer[];
  try {
    names = readdirSync(dirPath, { encoding: 'buffer' });
  } catch (err) {
    throw new SourceIoError(show(dirPath), err);
  }
  names.sort(Buffer.compare);
  const paths = names.map((n) => Buffer.concat([dirPath, SLASH, n]));
  const stats = paths.map(lstatAt);
  for (let i = 0; i < names.length; i++) {
    const node = await importEntry(w, paths[i]!, stats[i]!);
    dir.children!.set(nameFromBytes(names[i]!), node);
  }
}

async function importEntry<C>(w: Walk<C>, path: Buffer, st: BigIntStats): Promise<TreeNode<C>> {
  w.progress.entries++;
  w.opts.onProgress?.({ ...w.progress, path: show(path) });
  const linkKey = !st.isDirectory() && st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
  if (linkKey !== undefined) {
    const seen = w.links.get(linkKey);
    if (seen) return seen;
  }
  let node: TreeNode<C>;
  const meta = baseMeta(st, path);
  if (st.isDirectory()) {
    node = newNode<C>('dir', meta);
    await importChildren(w, path, node);
  } else if (st.isFile()) {
    const { size, content } = await storeFile(w, path, st);
    node = newNode<C>('file', { ...meta, size, content });
  } else if (st.isSymbolicLink()) {
    let target: Buffer;
    try {
      target = readlinkSync(path, { encoding: 'buffer' });
    } catch (err) {
      throw new SourceIoError(show(path), err);
    }
    node = newNode<C>('symlink', { ...meta, target: nameFromBytes(target), size: target.length });
  } else if (st.isCharacterDevice() || st.isBlockDevice()) {
    node = newNode<C>(st.isCharacterDevice() ? 'chardev' : 'blockdev', { ...meta, ...deviceNumbers(st.rdev) });
  } else if (st.isFIFO()) {
    node = newNode<C>('fifo', meta);
  } else if (st.isSocket()) {
    node = newNode<C>('socket', meta);
  } else {
    throw new SourceIoError(show(path), Object.assign(new Error(`unknown file type (mode ${st.mode.toString(8)})`), { code: 'EINVAL', errno: 22 }));
  }
  if (linkKey !== undefined) w.links.set(linkKey, node);
  return node;
}

/** Linux's encoding of dev_t (glibc's gnu_dev_major/minor), exact for 64-bit values. */
export function deviceNumbers(rdev: bigint): { rdevMajor: number; rdevMinor: number } {
  // The masks matter: with unbounded bigints, major's high bits would leak into minor.
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return { rdevMajor: Number(major), rdevMinor: Number(minor) };
}

function baseMeta(st: BigIntStats, path: Buffer): Partial<TreeNode<never>> {
  // Floor division: a time before 1970 still has 0 <= nsec < 1e9.
  let sec = st.mtimeNs / 1_000_000_000n;
  let nsec = st.mtimeNs % 1_000_000_000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1_000_000_000n;
  }
  return {
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeSec: Number(sec),
    mtimeNsec: Number(nsec),
    xattrs: readXattrs(path),
  };
}

function readXattrs(path: Buffer): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  let names: string[];
  try {
    names = llistxattr(path);
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return xattrs; // the filesystem has none
    throw new SourceIoError(show(path), err);
  }
  for (const name of names.sort()) {
    try {
      xattrs.set(name, lgetxattr(path, name));
    } catch (err) {
      if (isErrno(err, 'ENODATA')) continue; // removed between list and get
      throw new SourceIoError(`${show(path)} (xattr ${name})`, err);
    }
  }
  return xattrs;
}

async function storeFile<C>(w: Walk<C>, path: Buffer, st: BigIntStats): Promise<{ size: number; content: C }> {
  if (st.size === 0n) return { size: 0, content: await w.sink.storeFile(0, noSegments()) };
  if (st.size <= BigInt(w.readSize)) {
    // Small files are read synchronously: the four promise round trips (open, fstat, read, close)
    // cost several times the syscalls themselves and dominated walks of real trees. One read of
    // at most readSize blocks the loop no longer than a chunk of a large file would.
    const { size, segments } = readSmallFile(path, st, w.readSize);
    const content = await w.sink.storeFile(size, counted(w, replay(segments), show(path)));
    return { size, content };
  }
  return withFile(path, st, async (fh, size, where) => {
    const content = await w.sink.storeFile(size, counted(w, dataSegments(fh, size, w.readSize, where), where));
    return { size, content };
  });
}

function readSmallFile(path: Buffer, st: BigIntStats, readSize: number): { size: number; segments: Segment[] } {
  const where = show(path);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS | fsConstants.O_NOATIME);
  } catch (err) {
    if (!isErrno(err, 'EPERM')) throw new SourceIoError(where, err);
    try {
      fd = openSync(path, OPEN_FLAGS);
    } catch (err2) {
      throw new SourceIoError(where, err2);
    }
  }
  try {
    const fst = fstatSync(fd, { bigint: true });
    checkSame(fst, st, where);
    const size = Number(fst.size);
    const segments: Segment[] = [];
    for (const [start, end] of dataRegions(fd, size, where)) {
      // Pieces of readSize even here: the file may have grown since lstat called it small.
      for (let at = start; at < end; at += readSize) {
        const buf = Buffer.allocUnsafe(Math.min(readSize, end - at));
        for (let got = 0; got < buf.length; ) {
          const n = readSync(fd, buf, got, buf.length - got, at + got);
          if (n === 0) throw new SourceChangedError(where, `ends at ${at + got}, before its size ${size}`);
          got += n;
        }
        segments.push({ offset: at, data: buf });
      }
    }
    return { size, segments };
  } catch (err) {
    throw err instanceof ImportError ? err : new SourceIoError(where, err);
  } finally {
    closeSync(fd);
  }
}

async function* replay(segments: Segment[]): AsyncGenerator<Segment> {
  yield* segments;
}

/** Opens the file lstat saw (and only it: no symlink, no FIFO, same inode), runs fn, closes. */
async function withFile<T>(path: Buffer, st: BigIntStats, fn: (fh: FileHandle, size: number, where: string) => Promise<T>): Promise<T> {
  const where = show(path);
  let fh: FileHandle;
  try {
    fh = await open(path, OPEN_FLAGS | fsConstants.O_NOATIME);
  } catch (err) {
    if (!isErrno(err, 'EPERM')) throw new SourceIoError(where, err);
    try {
      fh = await open(path, OPEN_FLAGS);
    } catch (err2) {
      throw new SourceIoError(where, err2);
    }
  }
  try {
    let fst: BigIntStats;
    try {
      fst = await fh.stat({ bigint: true });
    } catch (err) {
      throw new SourceIoError(where, err);
    }
    checkSame(fst, st, where);
    return await fn(fh, Number(fst.size), where);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

async function* noSegments(): AsyncGenerator<Segment> {}

async function* counted<C>(w: Walk<C>, segments: AsyncIterable<Segment>, where: string): AsyncGenerator<Segment> {
  for await (const seg of segments) {
    w.progress.dataBytes += seg.data.length;
    w.opts.onProgress?.({ ...w.progress, path: where });
    yield seg;
  }
}

/** [start, end) of each data region, as the kernel reports them; holes are skipped. */
function* dataRegions(fd: number, size: number, where: string): Generator<[number, number]> {
  let pos = 0;
  while (pos < size) {
    let start: number;
    let end: number;
    try {
      start = seekData(fd, pos);
      if (start < 0 || start >= size) return; // only a hole remains
      end = seekHole(fd, start);
    } catch (err) {
      throw new SourceIoError(where, err);
    }
    if (end < 0 || end > size) end = size;
    yield [start, end];
    pos = end;
  }
}

/** The data regions in reads of at most readSize. */
async function* dataSegments(fh: FileHandle, size: number, readSize: number, where: string): AsyncGenerator<Segment> {
  for (const [start, end] of dataRegions(fh.fd, size, where)) {
    for (let at = start; at < end; ) {
      const n = Math.min(readSize, end - at);
      const buf = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await fh.read(buf, got, n - got, at + got));
        } catch (err) {
          throw new SourceIoError(where, err);
        }
        if (bytesRead === 0) throw new SourceChangedError(where, `ends at ${at + got}, before its size ${size}`);
        got += bytesRead;
      }
      yield { offset: at, data: buf };
      at += n;
    }
  }
}

function checkSame(fst: BigIntStats, st: BigIntStats, where: string): void {
  if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) throw new SourceChangedError(where, 'replaced by another file');
}

// Metadata calls (readdir, lstat, readlink) are synchronous on purpose: locally they cost
// microseconds, while the promise versions cost several times more in thread-pool round trips
// and were most of the walk's time.
function lstatAt(path: Buffer): BigIntStats {
  try {
    return lstatSync(path, { bigint: true });
  } catch (err) {
    throw new SourceIoError(show(path), err);
  }
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as { code?: string }).code ?? '');
}

function show(path: Buffer): string {
  return nameFromBytes(path);
}
