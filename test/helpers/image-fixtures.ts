// Source trees for end-to-end tests, made on the host filesystem with every kind of file an
// image must carry: regular (empty, tiny, block-boundary sizes, compressible, random, explicit
// zeros), sparse files (leading hole, data in the middle, trailing hole, > 4 GiB logical),
// a directory of 10k+ entries, symlinks (relative, absolute, dangling, ~1000-byte target),
// a 3-name hardlink, char/block devices, fifo, unix socket, modes 4755/2755/1777/0000,
// uid/gid > 65535 (and > 2^31), nanosecond mtimes before 1970 and after 2106, xattrs
// (many user.*, a 2 KiB value, security.capability, trusted.*, on dirs and symlinks too) and
// names with spaces, UTF-8, invalid UTF-8 and 255 bytes. Data comes from a seeded PRNG, so
// the same call always makes the same bytes.
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, openSync, closeSync, writeSync, ftruncateSync, symlinkSync, lchownSync, chmodSync, writeFileSync, existsSync, unlinkSync, readdirSync, lstatSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { setXattr } from './xattr.js';

/** mulberry32: a small seeded PRNG; deterministic across runs and machines. */
export class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.next(), i);
    for (; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** Compressible text of `n` bytes (words from a small vocabulary). */
export function textBytes(prng: Prng, n: number): Buffer {
  const words = ['erofs', 'chunk', 'blob', 'bootstrap', 'lazy', 'kernel', 'inode', 'dirent', 'ondine', 'image', '\n'];
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = prng.pick(words) + ' ';
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/** Writes `data` at each offset of a file truncated to `size` (holes elsewhere). */
export function writeSparse(path: string | Buffer, size: number, pieces: ReadonlyArray<{ offset: number; data: Buffer }>): void {
  const fd = openSync(path, 'w');
  try {
    for (const p of pieces) writeSync(fd, p.data, 0, p.data.length, p.offset);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** Sets mtimes with nanoseconds (GNU touch; Node's utimes rounds to microseconds). */
export function setMtime(paths: ReadonlyArray<string | Buffer>, secDotNsec: string): void {
  for (let i = 0; i < paths.length; i += 500) {
    execFileSync('touch', ['-h', '-m', '-d', `@${secDotNsec}`, '--', ...paths.slice(i, i + 500).map(String)]);
  }
}

/** A unix socket file at `path` that outlives its server (a hardlink to the bound socket). */
export async function makeSocket(path: string, scratch: string): Promise<void> {
  const bound = join(scratch, `s${process.pid}.${Date.now() % 100000}`);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bound, resolve);
  });
  linkSync(bound, path);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (existsSync(bound)) unlinkSync(bound);
}

/** security.capability v2: cap_net_raw in the effective and permitted sets. */
export function capabilityV2(): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000000 | 0x1, 0); // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
  b.writeUInt32LE(1 << 13, 4); // permitted: CAP_NET_RAW
  return b;
}

export interface EveryKindOptions {
  /** 'full' adds the > 4 GiB sparse file and the 10k-entry directory. */
  variant: 'full' | 'small';
  /** Entries in the big directory (full variant), default 10 050. */
  manyEntries?: number;
  seed?: number;
}

export interface EveryKindTree {
  root: string;
  /** Relative paths ('/x/y') of regular files, by what they test. */
  sparseFiles: string[];
  bigSparse: string | undefined;
  manyDir: string | undefined;
  manyEntries: number;
  hardlinkNames: string[];
  /** Files with an xattr whose value is empty (erofs-utils 1.8.6 fsck --extract stops at it). */
  emptyXattrFiles: string[];
  /** Invalid-UTF-8 name, as bytes. */
  invalidUtf8Name: Buffer;
}

export const INVALID_UTF8 = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x80, 0x2d, 0xc3, 0x28]); // "bad", 3 stray bytes, "-", broken 2-byte seq

/**
 * Builds the every-kind tree at `root` (created; must not exist). Returns what it put where.
 * Needs root (mknod, chown, trusted.* xattrs).
 */
export async function makeEveryKindTree(root: string, opts: EveryKindOptions): Promise<EveryKindTree> {
  const prng = new Prng(opts.seed ?? 0x0d1e);
  const full = opts.variant === 'full';
  const p = (rel: string) => join(root, rel);
  const dirs = ['regular', 'sparse', 'links', 'hard', 'hard/other', 'dev', 'special', 'modes', 'owners', 'times', 'xattrs', 'names', 'names/dir with space', 'dedup/a', 'dedup/b'];
  mkdirSync(root);
  for (const d of dirs) mkdirSync(p(d), { recursive: true });

  // Regular files: sizes around block and chunk boundaries, compressible and not.
  writeFileSync(p('regular/empty'), '');
  writeFileSync(p('regular/one-byte'), 'x');
  writeFileSync(p('regular/text.txt'), textBytes(prng, full ? 300_000 : 30_000));
  for (const n of [4095, 4096, 4097, 65_537]) writeFileSync(p(`regular/random-${n}`), prng.bytes(n));
  writeFileSync(p('regular/random-1.5M'), prng.bytes(full ? (3 << 19) + 123 : 70_000));
  {
    // Alternating incompressible and compressible 64 KiB pieces.
    const parts: Buffer[] = [];
    for (let i = 0; i < (full ? 40 : 4); i++) parts.push(i % 2 ? textBytes(prng, 65_536) : prng.bytes(65_536));
    writeFileSync(p('regular/mixed'), Buffer.concat(parts));
  }
  writeFileSync(p('regular/zeros-written'), Buffer.alloc(full ? 1 << 21 : 1 << 16)); // real zero blocks, not holes
  // The same bytes in two directories (and twice in one): dedup material.
  const dup = prng.bytes(full ? 300_000 : 20_000);
  writeFileSync(p('dedup/a/same'), dup);
  writeFileSync(p('dedup/b/same'), dup);
  writeFileSync(p('dedup/b/same-again'), dup);

  // Sparse files.
  const sparseFiles = ['/sparse/leading-hole', '/sparse/middle-data', '/sparse/trailing-hole'];
  writeSparse(p('sparse/leading-hole'), (2 << 20) + 5000, [{ offset: 2 << 20, data: prng.bytes(5000) }]);
  writeSparse(p('sparse/middle-data'), 4 << 20, [{ offset: (1 << 20) + 7, data: textBytes(prng, 70_000) }]);
  writeSparse(p('sparse/trailing-hole'), 3 << 20, [{ offset: 0, data: prng.bytes(10_000) }]);
  let bigSparse: string | undefined;
  if (full) {
    bigSparse = '/sparse/big-5G';
    sparseFiles.push(bigSparse);
    const size = 5 * 2 ** 30 + 123;
    writeSparse(p('sparse/big-5G'), size, [
      { offset: 0, data: prng.bytes(4096) },
      { offset: 2 ** 32 - 2048, data: prng.bytes(65_536) }, // straddles the 4 GiB boundary
      { offset: size - 100, data: textBytes(prng, 100) },
    ]);
  }

  // A directory of many entries: mostly empty files, every 500th with a little content.
  let manyDir: string | undefined;
  // The small variant still needs several directory blocks (~300 entries of ~25 bytes).
  const manyEntries = full ? (opts.manyEntries ?? 10_050) : 300;
  manyDir = full ? '/many' : '/few';
  mkdirSync(p(manyDir));
  for (let i = 0; i < manyEntries; i++) {
    const name = `entry-${String(i).padStart(5, '0')}${'-x'.repeat(i % 7)}`;
    writeFileSync(join(root, manyDir, name), i % 500 === 0 ? `content of ${i}\n` : '');
  }

  // Symlinks.
  symlinkSync('../regular/text.txt', p('links/relative'));
  symlinkSync('/regular/text.txt', p('links/absolute'));
  symlinkSync('../does/not/exist', p('links/dangling'));
  symlinkSync('../regular', p('links/to-dir'));
  const longTarget = Array.from({ length: 100 }, (_, i) => `seg${String(i).padStart(4, '0')}/`).join('').slice(0, 999) + 'z';
  symlinkSync(longTarget, p('links/long-target'));

  // A file with three names in three directories.
  const hardlinkNames = ['/hard/one', '/hard/other/two', '/regular/three'];
  writeFileSync(p('hard/one'), prng.bytes(20_000));
  linkSync(p('hard/one'), p('hard/other/two'));
  linkSync(p('hard/one'), p('regular/three'));
  setXattr(p('hard/one'), 'user.linked', Buffer.from('all three names see this'));

  // Devices, fifo, socket.
  execFileSync('mknod', [p('dev/null-like'), 'c', '1', '3']);
  execFileSync('mknod', [p('dev/loop-like'), 'b', '7', '200']);
  execFileSync('mknod', [p('dev/big-numbers'), 'c', '259', '70000']); // minor > 255 and > 65535
  execFileSync('mkfifo', [p('special/fifo')]);
  await makeSocket(p('special/socket'), root);

  // Modes.
  writeFileSync(p('modes/setuid'), '#!/bin/sh\n');
  chmodSync(p('modes/setuid'), 0o4755);
  writeFileSync(p('modes/setgid'), '#!/bin/sh\n');
  chmodSync(p('modes/setgid'), 0o2755);
  writeFileSync(p('modes/none'), 'unreadable by mode\n');
  chmodSync(p('modes/none'), 0o000);
  mkdirSync(p('modes/sticky-dir'));
  writeFileSync(p('modes/sticky-dir/inside'), 'x');
  chmodSync(p('modes/sticky-dir'), 0o1777);
  mkdirSync(p('modes/setgid-dir'));
  chmodSync(p('modes/setgid-dir'), 0o2775);
  mkdirSync(p('modes/closed-dir'));
  writeFileSync(p('modes/closed-dir/secret'), 'behind a 0000 directory\n');
  chmodSync(p('modes/closed-dir'), 0o000);

  // Owners beyond 16 bits (the compact inode's range) and beyond 2^31.
  writeFileSync(p('owners/big-ids'), 'owned\n');
  lchownSync(p('owners/big-ids'), 100_000, 200_000);
  writeFileSync(p('owners/huge-ids'), 'owned\n');
  lchownSync(p('owners/huge-ids'), 2_147_483_653, 4_000_000_000);
  symlinkSync('big-ids', p('owners/link-owned'));
  lchownSync(p('owners/link-owned'), 70_000, 70_001);

  // xattrs.
  writeFileSync(p('xattrs/many'), 'many xattrs\n');
  for (let i = 0; i < 24; i++) setXattr(p('xattrs/many'), `user.attr-${String(i).padStart(2, '0')}`, Buffer.from(`value ${i} `.repeat(1 + (i % 4))));
  writeFileSync(p('xattrs/long-value'), 'a 2 KiB xattr\n');
  setXattr(p('xattrs/long-value'), 'user.long', textBytes(prng, 2048));
  setXattr(p('xattrs/long-value'), 'user.binary', prng.bytes(64));
  writeFileSync(p('xattrs/empty-value'), 'an xattr with an empty value\n');
  setXattr(p('xattrs/empty-value'), 'user.empty', Buffer.alloc(0));
  writeFileSync(p('xattrs/capability'), '#!/bin/sh\n');
  chmodSync(p('xattrs/capability'), 0o755);
  setXattr(p('xattrs/capability'), 'security.capability', capabilityV2());
  writeFileSync(p('xattrs/trusted'), 'trusted\n');
  setXattr(p('xattrs/trusted'), 'trusted.ondine.test', Buffer.from('only root sees this'));
  setXattr(p('xattrs/trusted'), 'user.mixed', Buffer.from('and a user one'));
  mkdirSync(p('xattrs/dir-with-xattrs'));
  setXattr(p('xattrs/dir-with-xattrs'), 'user.on-dir', Buffer.from('directory xattr'));
  setXattr(p('xattrs/dir-with-xattrs'), 'trusted.on-dir', Buffer.from('trusted directory xattr'));
  symlinkSync('../regular/one-byte', p('xattrs/symlink-with-xattr'));
  setXattr(p('xattrs/symlink-with-xattr'), 'trusted.on-symlink', Buffer.from('symlink xattr'));

  // Names.
  writeFileSync(p('names/with space'), 'space\n');
  writeFileSync(p('names/dir with space/inner file'), 'inner\n');
  writeFileSync(p('names/ünïcödé-文件-🎉'), 'utf-8 name\n');
  writeFileSync(Buffer.concat([Buffer.from(p('names') + '/'), INVALID_UTF8]), 'not utf-8\n');
  writeFileSync(p(`names/${'n'.repeat(255)}`), '255-byte name\n');
  writeFileSync(p('names/.hidden'), 'dotfile\n');
  writeFileSync(p('names/-leading-dash'), 'dash\n');

  // Deep nesting.
  let deep = p('deep');
  for (let i = 0; i < 24; i++) deep = join(deep, `level-${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'bottom'), 'deep down\n');

  // Times last (creating entries changes their parents' mtimes).
  writeFileSync(p('times/nanoseconds'), 't\n');
  writeFileSync(p('times/before-1970'), 't\n');
  writeFileSync(p('times/after-2106'), 't\n');
  symlinkSync('nanoseconds', p('times/symlink-time'));
  setMtime([p('times/nanoseconds')], '1700000000.123456789');
  setMtime([p('times/before-1970')], '-31536000.25');
  setMtime([p('times/after-2106')], '4400000000.999999999');
  setMtime([p('times/symlink-time')], '1600000000.000000001');
  // Directories bottom-up, each with its own nanosecond time (the big directory included).
  const allDirs: string[] = [];
  const collect = (abs: string) => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      if (e.isDirectory()) collect(join(abs, e.name));
    }
    allDirs.push(abs);
  };
  collect(root);
  allDirs.forEach((d, i) => {
    if (d !== p('times')) setMtime([d], `${1_650_000_000 + i * 1000}.${String(100_000_007 * (i + 1) % 1_000_000_000).padStart(9, '0')}`);
  });
  setMtime([p('times')], '-1.5'); // a directory just before the epoch
  if (!lstatSync(p('special/socket')).isSocket()) throw new Error('fixture: socket was not created');

  return { root, sparseFiles, bigSparse, manyDir, manyEntries, hardlinkNames, emptyXattrFiles: ['/xattrs/empty-value'], invalidUtf8Name: INVALID_UTF8 };
}
