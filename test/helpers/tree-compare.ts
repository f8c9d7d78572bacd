// Compares two directory trees entry by entry, the way a user would notice a difference:
// names (as bytes), type, permission bits with setuid/setgid/sticky, owner, mtime to the
// nanosecond, size, content, symlink targets, xattrs, device numbers and hardlink identity
// (paths that share an inode in one tree share one in the other, and no others do).
// Content of files up to `fullHashLimit` is compared by streamed sha256; larger files (sparse,
// GiBs of logical size) by reading the expected side's data regions (SEEK_DATA/SEEK_HOLE) from
// both trees plus zero-checked samples of every hole on the actual side.
// Synchronous I/O on purpose: a walk of 10k small files is several times faster without a
// thread-pool round trip per call, and nothing else runs while a test compares.
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import assert from 'node:assert/strict';

import { lgetxattr, llistxattr, seekData, seekHole } from '../../src/native/index.js';

export interface CompareOptions {
  /** uid/gid (default true). */
  owner?: boolean;
  /** mtime sec+nsec: true (default), false, or 'non-dir'. */
  mtime?: boolean | 'non-dir';
  /** Compare xattrs: all (default), none, or those that pass the filter (name, entry path). */
  xattrs?: boolean | ((name: string, rel: string) => boolean);
  /** Permission bits compared (default 0o7777: with setuid/setgid/sticky). */
  modeMask?: number;
  /** Hardlink identity and nlink of non-directories (default true). */
  hardlinks?: boolean;
  /** nlink of directories (default false: filesystems count differently). */
  dirNlink?: boolean;
  /** Device numbers of char/block devices (default true). */
  rdev?: boolean;
  /** Attributes of the two roots themselves (default true). */
  rootAttrs?: boolean;
  /** Content (and size) of a regular file is not compared when this returns a reason (counted). */
  skipContent?: (rel: string) => string | undefined;
  /** Entries left out entirely (both sides). */
  exclude?: (rel: string) => boolean;
  /** Files up to this size are hashed whole; larger ones compared by data regions. */
  fullHashLimit?: number;
}

export interface CompareStats {
  entries: number;
  dirs: number;
  files: number;
  symlinks: number;
  chardevs: number;
  blockdevs: number;
  fifos: number;
  sockets: number;
  xattrs: number;
  hardlinkGroups: number;
  bytesCompared: number;
  sparseFiles: number;
  holeSamples: number;
  contentSkipped: number;
}

export interface CompareResult {
  stats: CompareStats;
  diffs: string[];
}

const S_IFMT = 0o170000n;
const TYPES: Record<string, string> = {
  [String(0o040000)]: 'dir', [String(0o100000)]: 'file', [String(0o120000)]: 'symlink',
  [String(0o020000)]: 'chardev', [String(0o060000)]: 'blockdev', [String(0o010000)]: 'fifo', [String(0o140000)]: 'socket',
};
const CHUNK = 1 << 20;
const SAMPLE = 4096;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function typeOf(st: BigIntStats): string {
  return TYPES[String(st.mode & S_IFMT)] ?? `unknown(0${(st.mode & S_IFMT).toString(8)})`;
}

/** A byte path for display: UTF-8 where valid, \xNN escapes elsewhere. */
export function showPath(rel: Buffer): string {
  if (rel.length === 0) return '/';
  try {
    return utf8.decode(rel);
  } catch {
    let s = '';
    for (const b of rel) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
    return s;
  }
}

function devParts(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function join(base: Buffer, name: Buffer): Buffer {
  return Buffer.concat([base, Buffer.from('/'), name]);
}

function xattrMap(path: Buffer, rel: string, filter: (n: string, rel: string) => boolean): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of llistxattr(path).filter((n) => filter(n, rel)).sort()) out.set(name, lgetxattr(path, name));
  return out;
}

function readFull(fd: number, buf: Buffer, length: number, position: number): number {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function sha256Of(fd: number, size: number, buf: Buffer): { hex: string; read: number } {
  const h = createHash('sha256');
  let pos = 0;
  for (;;) {
    const n = readFull(fd, buf, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
    if (pos > size + buf.length) break; // never loop on a file that keeps growing
  }
  return { hex: h.digest('hex'), read: pos };
}

/** Data regions [start, end) of an open file, from SEEK_DATA/SEEK_HOLE. */
export function dataRegions(fd: number, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let pos = 0;
  while (pos < size) {
    const start = seekData(fd, pos);
    if (start < 0 || start >= size) break;
    let end = seekHole(fd, start);
    if (end < 0 || end > size) end = size;
    out.push([start, end]);
    pos = end;
  }
  return out;
}

function compareContent(e: Buffer, a: Buffer, size: number, limit: number, stats: CompareStats, be: Buffer, ba: Buffer): string | undefined {
  const fe = openSync(e, 'r');
  try {
    const fa = openSync(a, 'r');
    try {
      return compareOpen(fe, fa, size, limit, stats, be, ba);
    } finally {
      closeSync(fa);
    }
  } finally {
    closeSync(fe);
  }
}

function compareOpen(fe: number, fa: number, size: number, limit: number, stats: CompareStats, be: Buffer, ba: Buffer): string | undefined {
  if (size <= limit) {
    const he = sha256Of(fe, size, be);
    const ha = sha256Of(fa, size, ba);
    stats.bytesCompared += he.read;
    if (he.read !== size) return `expected side read ${he.read} bytes of ${size}`;
    if (ha.read !== size) return `read ${ha.read} bytes, size says ${size}`;
    return he.hex === ha.hex ? undefined : `content differs (sha256 ${he.hex.slice(0, 16)}… vs ${ha.hex.slice(0, 16)}…)`;
  }
  stats.sparseFiles++;
  const regions = dataRegions(fe, size);
  for (const [start, end] of regions) {
    for (let at = start; at < end; at += CHUNK) {
      const n = Math.min(CHUNK, end - at);
      const ne = readFull(fe, be, n, at);
      const na = readFull(fa, ba, n, at);
      if (ne !== n || na !== n) return `short read at ${at} (${ne}/${na} of ${n})`;
      if (!be.subarray(0, n).equals(ba.subarray(0, n))) return `data region at ${at}+${n} differs`;
      stats.bytesCompared += n;
    }
  }
  // Holes: the actual side must read zeros at the start, middle and end of each.
  const holes: Array<[number, number]> = [];
  let prev = 0;
  for (const [s, en] of regions) {
    if (s > prev) holes.push([prev, s]);
    prev = en;
  }
  if (prev < size) holes.push([prev, size]);
  for (const [s, en] of holes) {
    // The hole's first and last blocks and six spread between them.
    const spots = new Set([s, Math.max(s, en - SAMPLE)]);
    for (let k = 1; k <= 6; k++) spots.add(s + Math.floor(((en - s) * k) / 7 / SAMPLE) * SAMPLE);
    for (const at of spots) {
      const n = Math.min(SAMPLE, en - at);
      const got = readFull(fa, ba, n, at);
      if (got !== n) return `short read in hole at ${at}`;
      if (ba.subarray(0, n).some((b) => b !== 0)) return `hole at ${s}..${en} reads non-zero bytes at ${at}`;
      stats.holeSamples++;
    }
  }
  return undefined;
}

/** Walks `expected` and `actual` together and lists every difference. */
export async function compareTrees(expected: string, actual: string, opts: CompareOptions = {}): Promise<CompareResult> {
  const o = {
    owner: opts.owner ?? true, mtime: opts.mtime ?? true, hardlinks: opts.hardlinks ?? true,
    dirNlink: opts.dirNlink ?? false, rdev: opts.rdev ?? true, rootAttrs: opts.rootAttrs ?? true,
    fullHashLimit: opts.fullHashLimit ?? 64 << 20, modeMask: BigInt(opts.modeMask ?? 0o7777),
  };
  const xfilter = opts.xattrs === false ? undefined : typeof opts.xattrs === 'function' ? opts.xattrs : () => true;
  const stats: CompareStats = {
    entries: 0, dirs: 0, files: 0, symlinks: 0, chardevs: 0, blockdevs: 0, fifos: 0, sockets: 0,
    xattrs: 0, hardlinkGroups: 0, bytesCompared: 0, sparseFiles: 0, holeSamples: 0, contentSkipped: 0,
  };
  const diffs: string[] = [];
  const inodesE = new Map<string, string>(); // rel(latin1) -> dev:ino
  const inodesA = new Map<string, string>();
  const nlinks = new Map<string, [bigint, bigint]>();
  const eRoot = Buffer.from(expected);
  const aRoot = Buffer.from(actual);

  const be = Buffer.allocUnsafe(CHUNK);
  const ba = Buffer.allocUnsafe(CHUNK);
  const entry = (rel: Buffer, e: Buffer, a: Buffer): boolean => {
    const where = showPath(rel);
    const se = lstatSync(e, { bigint: true });
    const sa = lstatSync(a, { bigint: true });
    stats.entries++;
    const te = typeOf(se);
    const ta = typeOf(sa);
    if (te !== ta) {
      diffs.push(`${where}: type ${te} vs ${ta}`);
      return false;
    }
    const k = te as keyof CompareStats;
    const counter = ({ dir: 'dirs', file: 'files', symlink: 'symlinks', chardev: 'chardevs', blockdev: 'blockdevs', fifo: 'fifos', socket: 'sockets' } as Record<string, keyof CompareStats>)[k];
    if (counter) stats[counter]++;
    const isRootEntry = rel.length === 0;
    if (!isRootEntry || o.rootAttrs) {
      const me = se.mode & o.modeMask;
      const ma = sa.mode & o.modeMask;
      if (me !== ma) diffs.push(`${where}: mode 0${me.toString(8)} vs 0${ma.toString(8)}`);
      if (o.owner && (se.uid !== sa.uid || se.gid !== sa.gid)) diffs.push(`${where}: owner ${se.uid}:${se.gid} vs ${sa.uid}:${sa.gid}`);
      if ((o.mtime === true || (o.mtime === 'non-dir' && te !== 'dir')) && se.mtimeNs !== sa.mtimeNs) {
        diffs.push(`${where}: mtime ${se.mtimeNs}ns vs ${sa.mtimeNs}ns`);
      }
      if (xfilter) {
        const xe = xattrMap(e, where, xfilter);
        const xa = xattrMap(a, where, xfilter);
        const names = [...new Set([...xe.keys(), ...xa.keys()])].sort();
        for (const n of names) {
          const ve = xe.get(n);
          const va = xa.get(n);
          if (ve === undefined) diffs.push(`${where}: unexpected xattr ${n}`);
          else if (va === undefined) diffs.push(`${where}: missing xattr ${n}`);
          else if (!ve.equals(va)) diffs.push(`${where}: xattr ${n} differs (${ve.length} vs ${va.length} bytes)`);
          else stats.xattrs++;
        }
      }
      if (te === 'dir' && o.dirNlink && se.nlink !== sa.nlink) diffs.push(`${where}: directory nlink ${se.nlink} vs ${sa.nlink}`);
    }
    if (te !== 'dir') {
      const key = rel.toString('latin1');
      inodesE.set(key, `${se.dev}:${se.ino}`);
      inodesA.set(key, `${sa.dev}:${sa.ino}`);
      nlinks.set(key, [se.nlink, sa.nlink]);
      if (se.size !== sa.size && !(te === 'file' && opts.skipContent?.(where) !== undefined)) diffs.push(`${where}: size ${se.size} vs ${sa.size}`);
    }
    if (te === 'symlink') {
      const le = readlinkSync(e, { encoding: 'buffer' });
      const la = readlinkSync(a, { encoding: 'buffer' });
      if (!le.equals(la)) diffs.push(`${where}: symlink target ${showPath(le)} vs ${showPath(la)}`);
    } else if ((te === 'chardev' || te === 'blockdev') && o.rdev && se.rdev !== sa.rdev) {
      diffs.push(`${where}: device ${devParts(se.rdev)} vs ${devParts(sa.rdev)}`);
    } else if (te === 'file') {
      const why = opts.skipContent?.(where);
      if (why !== undefined) {
        stats.contentSkipped++;
      } else if (se.size === sa.size) {
        const d = se.size === 0n ? undefined : compareContent(e, a, Number(se.size), o.fullHashLimit, stats, be, ba);
        if (d) diffs.push(`${where}: ${d}`);
      }
    }
    return te === 'dir';
  };

  const stack: Buffer[] = [Buffer.alloc(0)];
  entry(Buffer.alloc(0), eRoot, aRoot);
  while (stack.length) {
    const rel = stack.pop()!;
    const ne = readdirSync(Buffer.concat([eRoot, rel]), { encoding: 'buffer' });
    const na = readdirSync(Buffer.concat([aRoot, rel]), { encoding: 'buffer' });
    const keep = (n: Buffer) => !opts.exclude?.(showPath(join(rel, n)));
    const me = new Map(ne.filter(keep).map((n) => [n.toString('latin1'), n]));
    const ma = new Map(na.filter(keep).map((n) => [n.toString('latin1'), n]));
    for (const [k, n] of me) if (!ma.has(k)) diffs.push(`${showPath(join(rel, n))}: missing`);
    for (const [k, n] of ma) if (!me.has(k)) diffs.push(`${showPath(join(rel, n))}: unexpected entry`);
    const common = [...me.values()].filter((n) => ma.has(n.toString('latin1'))).sort(Buffer.compare);
    for (const n of common) {
      const childRel = join(rel, n);
      const isDir = entry(childRel, Buffer.concat([eRoot, childRel]), Buffer.concat([aRoot, childRel]));
      if (isDir) stack.push(childRel);
    }
  }

  if (o.hardlinks) {
    const groups = (m: Map<string, string>) => {
      const byIno = new Map<string, string[]>();
      for (const [rel, ino] of m) {
        let g = byIno.get(ino);
        if (!g) byIno.set(ino, (g = []));
        g.push(rel);
      }
      const of = new Map<string, string>();
      for (const g of byIno.values()) {
        const sig = g.sort().join('\0');
        for (const rel of g) of.set(rel, sig);
      }
      return of;
    };
    const ge = groups(inodesE);
    const ga = groups(inodesA);
    const counted = new Set<string>();
    for (const [rel, sig] of ge) {
      const show = showPath(Buffer.from(rel, 'latin1'));
      if (ga.get(rel) !== sig) {
        const names = (s: string | undefined) => (s ?? '').split('\0').map((x) => showPath(Buffer.from(x, 'latin1'))).join(', ');
        diffs.push(`${show}: shares its inode with [${names(sig)}] vs [${names(ga.get(rel))}]`);
      } else if (sig.includes('\0') && !counted.has(sig)) {
        counted.add(sig);
        stats.hardlinkGroups++;
      }
      const [le, la] = nlinks.get(rel)!;
      if (le !== la) diffs.push(`${show}: nlink ${le} vs ${la}`);
    }
  }
  return { stats, diffs };
}

export function formatStats(s: CompareStats): string {
  return `${s.entries} entries (${s.dirs} dirs, ${s.files} files, ${s.symlinks} symlinks, ${s.chardevs}+${s.blockdevs} char/block devices, ` +
    `${s.fifos} fifos, ${s.sockets} sockets), ${s.xattrs} xattrs, ${s.hardlinkGroups} hardlink groups, ` +
    `${(s.bytesCompared / 1e6).toFixed(1)} MB of content compared, ${s.sparseFiles} large files by data region with ${s.holeSamples} hole samples` +
    (s.contentSkipped ? `, ${s.contentSkipped} files' content not compared` : '');
}

/** compareTrees, then asserts no difference; prints what was compared through t.diagnostic. */
export async function assertSameTree(
  t: { diagnostic(message: string): void }, label: string, expected: string, actual: string, opts: CompareOptions = {},
): Promise<CompareStats> {
  const { stats, diffs } = await compareTrees(expected, actual, opts);
  t.diagnostic(`${label}: compared ${formatStats(stats)}; ${diffs.length} differences`);
  if (diffs.length) {
    assert.fail(`${label}: ${diffs.length} differences between ${expected} and ${actual}:\n  ${diffs.slice(0, 40).join('\n  ')}${diffs.length > 40 ? '\n  …' : ''}`);
  }
  return stats;
}
