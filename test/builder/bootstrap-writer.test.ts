// The bootstrap writer, fed synthetic in-memory trees and read back with parseBootstrap (and,
// where a metadata-only image allows it, with fsck.erofs and the host kernel): every
// attribute round-trips, the layout keeps EROFS's rules (inline tails inside one block,
// nothing overlapping, directories sorted across blocks), and the RAFS tables point each chunk
// at the right blob and chunk-info index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readlink, lstat, rm, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeBootstrap, type BootstrapInput } from '../../src/builder/bootstrap-writer.js';
import { newDir, newNode, type TreeNode } from '../../src/builder/tree.js';
import type { ChunkedContent, ChunkLocation } from '../../src/builder/chunk-store.js';
import { parseBootstrap, type Bootstrap, type InodeInfo } from '../../src/format/bootstrap.js';
import { verifySuperblockChecksum } from '../../src/format/superblock.js';
import type { BlobTableEntry } from '../../src/format/blob-table.js';
import {
  CHUNK_FLAG_COMPRESSED, Compressor, DataLayout, DigestAlgo, FileType, NULL_ADDR, RAFS_HAS_XATTR, RAFS_HASH_BLAKE3,
  RAFS_COMPRESSION_ZSTD, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK,
} from '../../src/format/constants.js';
import { lgetxattr, llistxattr } from '../../src/native/index.js';
import { prng, tempDir, throwsWith } from '../storage/support.js';

const BS = 4096;
const MiB = 1 << 20;

function blobEntry(i: number, chunkCount = 100): BlobTableEntry {
  return {
    blobId: (i.toString(16) + 'c').repeat(64).slice(0, 64), blobIndex: i, chunkSize: MiB, chunkCount, compressor: Compressor.Zstd,
    digester: DigestAlgo.Blake3, features: 0x21, compressedSize: 2 ** 30, uncompressedSize: 2 * 2 ** 30, tocSize: 0,
    ciCompressor: 0, ciOffset: 1000, ciCompressedSize: chunkCount * 48, ciUncompressedSize: chunkCount * 48,
    tocDigest: '', metaDigest: '', metaSize: 0,
  };
}

function loc(blob: BlobTableEntry, ciIndex: number, size = MiB): ChunkLocation {
  const digest = `${ciIndex.toString(16).padStart(8, '0')}${blob.blobId.slice(0, 8)}`.padEnd(64, 'e');
  return {
    blob: { kind: 'dict', entry: blob }, ciIndex, digest, compressedOffset: ciIndex * 1000, compressedSize: 900,
    uncompressedOffset: ciIndex * MiB, uncompressedSize: size, compressed: true,
  };
}

function file(size: number, chunks: Array<ChunkLocation | null>, meta: Partial<TreeNode> = {}): TreeNode {
  const content: ChunkedContent = { kind: 'chunks', chunks };
  return newNode('file', { ...meta, size, content });
}

function emptyFile(meta: Partial<TreeNode> = {}): TreeNode {
  return newNode('file', { ...meta, size: 0 });
}

function write(root: TreeNode, blobs: BlobTableEntry[] = [], chunkSize = MiB): { buf: Buffer; boot: Bootstrap } {
  const input: BootstrapInput = {
    root, chunkSize, compressor: Compressor.Zstd, digester: DigestAlgo.Blake3, blobs,
    blobIndexOf: (l) => blobs.indexOf((l.blob as { entry: BlobTableEntry }).entry),
  };
  const { bootstrap } = writeBootstrap(input);
  return { buf: bootstrap, boot: parseBootstrap(bootstrap) };
}

function byPath(boot: Bootstrap): Map<string, InodeInfo> {
  const m = new Map<string, InodeInfo>();
  for (const { path, ino } of boot.walk()) m.set(path, ino);
  return m;
}

/** Inline tail length of a flat-inline inode (0 for other layouts). */
function inlineTail(ino: InodeInfo): number {
  return ino.layout === DataLayout.FlatInline ? (ino.size % BS || BS) : 0;
}

/** Checks the layout rules on every inode; returns the number checked. */
function checkLayout(boot: Bootstrap, buf: Buffer): number {
  const seen = new Map<number, InodeInfo>();
  for (const { ino } of boot.walk()) seen.set(ino.nid, ino);
  const extents: Array<[number, number, string]> = [];
  for (const ino of seen.values()) {
    const tail = inlineTail(ino);
    if (tail) {
      assert.ok((ino.payloadOffset % BS) + tail <= BS, `nid ${ino.nid}: inline tail of ${tail} at block offset ${ino.payloadOffset % BS} crosses a block`);
    }
    let end = ino.payloadOffset + tail;
    if (ino.layout === DataLayout.ChunkBased) {
      const n = Math.ceil(ino.size / boot.inodeChunkSize(ino));
      end = Math.ceil(ino.payloadOffset / 8) * 8 + n * 8;
    }
    extents.push([ino.offset, end, `inode ${ino.nid}`]);
    const headBytes = ino.layout === DataLayout.FlatPlain ? ino.size : ino.layout === DataLayout.FlatInline ? ino.size - tail : 0;
    if (headBytes > 0) extents.push([ino.iu * BS, ino.iu * BS + headBytes, `data of inode ${ino.nid}`]);
    assert.equal(ino.offset % 32, 0);
  }
  extents.sort((a, b) => a[0] - b[0]);
  const metaStart = boot.sb.metaBlkaddr * BS;
  assert.ok(extents[0]![0] >= metaStart, 'nothing before the metadata area');
  for (let i = 1; i < extents.length; i++) {
    assert.ok(extents[i]![0] >= extents[i - 1]![1], `${extents[i - 1]![2]} [${extents[i - 1]![0]}, ${extents[i - 1]![1]}) overlaps ${extents[i]![2]} at ${extents[i]![0]}`);
  }
  assert.ok(extents.at(-1)![1] <= buf.length);
  const rafs = boot.rafs!;
  assert.ok(rafs.blobTableOffset >= extents.at(-1)![1], 'RAFS tables after all metadata');
  return seen.size;
}

test('every attribute round-trips: type bits, permissions, owners, times, nlink, rdev, symlinks, xattrs', () => {
  const blobs = [blobEntry(0)];
  const root = newDir({ mode: 0o755, uid: 0, gid: 0, mtimeSec: 1_700_000_000, mtimeNsec: 0 });
  const shared = emptyFile({ mode: 0o640, uid: 33, gid: 33, mtimeSec: 1_700_000_000 });
  const longTarget = 'deep/'.repeat(800) + 'end'; // 4003 bytes: does not fit inline
  const nodes: Record<string, TreeNode> = {
    'setuid': file(5000, [loc(blobs[0]!, 1, 5000)], { mode: 0o4755, uid: 1000, gid: 1000, mtimeSec: 1_700_000_000, mtimeNsec: 123_456_789 }),
    'setgid-dir': newDir({ mode: 0o2775, uid: 5, gid: 6, mtimeSec: 1_600_000_000 }),
    'sticky': newDir({ mode: 0o1777, mtimeSec: 1_700_000_000 }),
    'bigids': emptyFile({ mode: 0o600, uid: 70_000, gid: 65_536, mtimeSec: 1_700_000_000 }),
    'maxids': emptyFile({ mode: 0o600, uid: 0xffff_fffe, gid: 0xffff_ffff, mtimeSec: 1_700_000_000 }),
    'edge-ids': emptyFile({ mode: 0o644, uid: 65_535, gid: 65_535, mtimeSec: 1_700_000_000 }),
    'old': emptyFile({ mtimeSec: -1_000_000, mtimeNsec: 5 }),
    'epoch': emptyFile({ mtimeSec: 0, mtimeNsec: 0 }),
    'future': emptyFile({ mtimeSec: 2 ** 33 + 7, mtimeNsec: 999_999_999 }),
    'null': newNode('chardev', { mode: 0o666, rdevMajor: 1, rdevMinor: 3, mtimeSec: 1_700_000_000 }),
    'sda1': newNode('blockdev', { mode: 0o660, gid: 6, rdevMajor: 8, rdevMinor: 1, mtimeSec: 1_700_000_000 }),
    'nvme': newNode('blockdev', { mode: 0o660, rdevMajor: 259, rdevMinor: 300_000, mtimeSec: 1_700_000_000 }),
    'fifo': newNode('fifo', { mode: 0o644, mtimeSec: 1_700_000_000 }),
    'sock': newNode('socket', { mode: 0o755, mtimeSec: 1_700_000_000 }),
    'short-link': newNode('symlink', { mode: 0o777, target: '../target', mtimeSec: 1_700_000_000 }),
    'long-link': newNode('symlink', { mode: 0o777, target: longTarget, mtimeSec: 1_700_000_000 }),
    'max-link': newNode('symlink', { mode: 0o777, target: 'x'.repeat(4095), mtimeSec: 1_700_000_000 }),
    'utf8-link': newNode('symlink', { mode: 0o777, target: 'répertoire/ファイル', mtimeSec: 1_700_000_000 }),
    'xattrs': emptyFile({
      mtimeSec: 1_700_000_000,
      xattrs: new Map([
        ['user.comment', Buffer.from('hello')],
        ['security.capability', Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
        ['trusted.overlay.opaque', Buffer.from('y')],
        ['user.empty', Buffer.alloc(0)],
        ['system.posix_acl_access', Buffer.from([2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff])],
      ]),
    }),
    'link-a': shared,
    'big': file(5 * 2 ** 30, Array.from({ length: 5 * 1024 }, (_, i) => (i === 7 ? loc(blobs[0]!, 2) : null)), { mtimeSec: 1_700_000_000 }),
  };
  for (const [name, node] of Object.entries(nodes)) root.children!.set(name, node);
  nodes['setgid-dir']!.children!.set('link-b', shared);
  nodes['setgid-dir']!.children!.set('sub1', newDir({ mtimeSec: 1_700_000_000 }));
  nodes['setgid-dir']!.children!.set('sub2', newDir({ mtimeSec: 1_700_000_000 }));
  nodes['sticky']!.children!.set('link-c', shared);

  const { buf, boot } = write(root, blobs);
  const got = byPath(boot);
  const want = new Map<string, TreeNode>([['/', root], ...Object.entries(nodes).map(([n, v]) => [`/${n}`, v] as [string, TreeNode]),
    ['/setgid-dir/link-b', shared], ['/setgid-dir/sub1', nodes['setgid-dir']!.children!.get('sub1')!],
    ['/setgid-dir/sub2', nodes['setgid-dir']!.children!.get('sub2')!], ['/sticky/link-c', shared]]);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  const TYPE = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chardev: S_IFCHR, blockdev: S_IFBLK, fifo: S_IFIFO, socket: S_IFSOCK };
  for (const [path, node] of want) {
    const ino = got.get(path)!;
    assert.equal(ino.mode, TYPE[node.kind] | node.mode, `${path} mode`);
    assert.equal(ino.uid, node.uid, `${path} uid`);
    assert.equal(ino.gid, node.gid, `${path} gid`);
    assert.equal(ino.mtime, node.mtimeSec, `${path} mtime`);
    assert.equal(ino.mtimeNsec, node.mtimeNsec, `${path} mtime nsec`);
    if (node.kind === 'file') assert.equal(ino.size, node.size, `${path} size`);
    if (node.kind === 'symlink') assert.equal(boot.readSymlink(ino), node.target, `${path} target`);
    if (node.kind === 'chardev' || node.kind === 'blockdev') assert.deepEqual(boot.rdev(ino), { major: node.rdevMajor, minor: node.rdevMinor }, `${path} rdev`);
    assert.deepEqual(ino.xattrs, node.xattrs, `${path} xattrs`);
  }
  // Extended inodes exactly where a compact one cannot hold the values.
  for (const p of ['/bigids', '/maxids', '/old', '/future', '/big', '/setuid', '/setgid-dir']) assert.equal(got.get(p)!.extended, true, p);
  for (const p of ['/edge-ids', '/fifo', '/null', '/short-link']) assert.equal(got.get(p)!.extended, false, p);
  // nlink: directories 2 + subdirectories; a hardlinked file counts its paths; all share one inode.
  assert.equal(got.get('/')!.nlink, 2 + 2);
  assert.equal(got.get('/setgid-dir')!.nlink, 2 + 2);
  assert.equal(got.get('/setgid-dir/sub1')!.nlink, 2);
  assert.equal(got.get('/sticky')!.nlink, 2);
  assert.equal(got.get('/link-a')!.nlink, 3);
  assert.equal(got.get('/link-a')!.nid, got.get('/setgid-dir/link-b')!.nid);
  assert.equal(got.get('/link-a')!.nid, got.get('/sticky/link-c')!.nid);
  assert.equal(got.get('/setuid')!.nlink, 1);
  // Every inode number is distinct per inode.
  const inos = new Map<number, number>();
  for (const ino of got.values()) {
    const prev = inos.get(ino.ino);
    assert.ok(prev === undefined || prev === ino.nid, `ino ${ino.ino} shared by nids ${prev} and ${ino.nid}`);
    inos.set(ino.ino, ino.nid);
  }
  assert.equal(boot.sb.inos, inos.size);
  assert.ok(boot.rafs!.flags & RAFS_HAS_XATTR);
  checkLayout(boot, buf);
});

test('inline tails never cross a block boundary, and nothing overlaps (random trees)', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const r = prng(seed);
    const root = newDir();
    const targets = new Map<string, string>();
    const dirs: TreeNode[] = [root];
    for (let i = 0; i < 600; i++) {
      const parent = dirs[Math.floor(r() * dirs.length)]!;
      const name = `n${i}-${'x'.repeat(Math.floor(r() * 60))}`;
      const roll = r();
      const meta: Partial<TreeNode> = {
        uid: r() < 0.2 ? 100_000 + i : i % 100,
        mtimeSec: r() < 0.7 ? 1_700_000_000 : 1_600_000_000 + i,
        xattrs: r() < 0.3 ? new Map([[`user.k${i}`, Buffer.alloc(Math.floor(r() * 300), 7)]]) : new Map(),
      };
      if (roll < 0.5) {
        const target = 't'.repeat(1 + Math.floor(r() * (r() < 0.5 ? 200 : 4094)));
        parent.children!.set(name, newNode('symlink', { ...meta, target }));
        targets.set(name, target);
      } else if (roll < 0.7) {
        const d = newDir(meta);
        parent.children!.set(name, d);
        dirs.push(d);
      } else {
        parent.children!.set(name, emptyFile(meta));
      }
    }
    const { buf, boot } = write(root);
    let inline = 0;
    for (const { path, ino } of boot.walk()) {
      if (inlineTail(ino)) inline++;
      const name = path.split('/').at(-1)!;
      if ((ino.mode & S_IFMT) === S_IFLNK) assert.equal(boot.readSymlink(ino), targets.get(name), path);
    }
    assert.ok(inline > 100, `seed ${seed}: only ${inline} inline inodes; the test is not exercising tails`);
    assert.ok(checkLayout(boot, buf) > 600);
  }
});

test('a directory of thousands of entries spans blocks and reads back complete, in byte order', () => {
  const root = newDir();
  const big = newDir();
  root.children!.set('big', big);
  const r = prng(42);
  const names = new Set<string>();
  while (names.size < 5000) {
    const len = 1 + Math.floor(r() * 40);
    let n = '';
    for (let i = 0; i < len; i++) n += String.fromCharCode(0x21 + Math.floor(r() * 90)).replace('/', '_');
    if (n !== '.' && n !== '..') names.add(n);
  }
  for (const extra of ['é', 'Ä', 'z', 'Z', '0', '~', '日本', 'a\u00a0b']) names.add(extra);
  let uid = 0;
  const uidOf = new Map<string, number>();
  for (const n of names) {
    uidOf.set(n, uid);
    big.children!.set(n, emptyFile({ uid: uid++ }));
  }
  const { buf, boot } = write(root);
  const dir = boot.lookup('/big');
  assert.ok(dir.size > 20 * BS, `directory of ${dir.size} bytes should span many blocks`);
  const entries = boot.readDir(dir);
  const raw = entries.map((e) => e.name);
  const sorted = [...raw].sort(Buffer.compare);
  assert.deepEqual(raw, sorted, 'entries sorted by bytes across all blocks');
  assert.equal(entries.length, names.size + 2);
  assert.ok(raw.some((n) => n.equals(Buffer.from('.'))) && raw.some((n) => n.equals(Buffer.from('..'))));
  assert.ok(raw[0]!.toString() < '.', 'names below "." sort before it: "." and ".." are sorted in, not prepended');
  for (const e of entries) {
    const name = e.name.toString('utf8');
    if (name === '.' || name === '..') continue;
    const ino = boot.inode(e.nid);
    assert.equal(ino.uid, uidOf.get(name), `entry ${name} points at its own inode`);
    assert.equal(e.fileType, FileType.Regular);
  }
  checkLayout(boot, buf);
});

test('names of the maximum length (255 bytes) are kept; 256 bytes is refused', () => {
  const root = newDir();
  const d = newDir();
  root.children!.set('long', d);
  const names: string[] = [];
  for (let i = 0; i < 40; i++) names.push(String(i).padStart(3, '0') + 'n'.repeat(252));
  names.push('é'.repeat(127) + 'x'); // 255 bytes of UTF-8
  for (const n of names) d.children!.set(n, emptyFile());
  const { buf, boot } = write(root);
  const entries = boot.readDir(boot.lookup('/long')).filter((e) => e.name.length > 2);
  assert.deepEqual(entries.map((e) => e.name.toString('utf8')).sort(), [...names].sort());
  for (const e of entries) assert.equal(e.name.length, 255);
  assert.ok(boot.lookup('/long').size > 2 * BS, 'spans several blocks');
  checkLayout(boot, buf);

  const tooLong = newDir();
  tooLong.children!.set('n'.repeat(256), emptyFile());
  throwsWith(() => write(tooLong), 'ONDINE_ERR_INVALID', /256 bytes/);
  const tooLongUtf8 = newDir();
  tooLongUtf8.children!.set('é'.repeat(128), emptyFile());
  throwsWith(() => write(tooLongUtf8), 'ONDINE_ERR_INVALID');
});

test('root nid fits 16 bits even with more than 65536 inode slots; far nids still resolve', () => {
  const root = newDir();
  const d = newDir();
  root.children!.set('d', d);
  for (let i = 0; i < 70_000; i++) d.children!.set(`f${i}`, emptyFile({ uid: i }));
  const { boot } = write(root);
  assert.ok(boot.sb.rootNid <= 0xffff);
  assert.equal(boot.inode(boot.sb.rootNid).mode & S_IFMT, S_IFDIR);
  const entries = boot.readDir(boot.lookup('/d'));
  const far = entries.filter((e) => e.nid > 0xffff);
  assert.ok(far.length > 1000, 'some nids need more than 16 bits');
  for (const e of far.slice(0, 200)) assert.equal(boot.inode(e.nid).uid, Number(e.name.toString().slice(1)));
});

test('superblock: checksum verifies, and any change to block 0 breaks it', () => {
  const blobs = [blobEntry(0), blobEntry(1)];
  const root = newDir();
  root.children!.set('f', file(10, [loc(blobs[1]!, 0, 10)]));
  const { buf, boot } = write(root, blobs);
  verifySuperblockChecksum(buf, boot.sb);
  assert.ok(boot.sb.featureCompat & 1, 'checksum compat bit set');
  for (const at of [1024 + 36, 1152 + 20, 1408 + 3, BS - 1]) {
    const bad = Buffer.from(buf);
    bad[at]! ^= 0x01;
    throwsWith(() => parseBootstrap(bad), 'ONDINE_ERR_CORRUPT', /checksum mismatch/);
  }
  // Bytes outside block 0 are not covered (and the image still parses).
  const outside = Buffer.from(buf);
  outside[buf.length - 1]! ^= 0x01;
  parseBootstrap(outside);
});

test('device table tags and the blob table name every blob, in order', () => {
  const blobs = [blobEntry(0, 3), blobEntry(1, 5), blobEntry(2, 7)];
  const root = newDir();
  root.children!.set('f', file(3 * MiB, [loc(blobs[2]!, 0), loc(blobs[0]!, 1), loc(blobs[1]!, 2)]));
  const { boot } = write(root, blobs);
  assert.equal(boot.sb.extraDevices, 3);
  assert.deepEqual(boot.devices.map((d) => d.tag), blobs.map((b) => b.blobId));
  assert.deepEqual(boot.devices.map((d) => d.blocks), blobs.map((b) => Math.ceil(b.uncompressedSize / BS)));
  assert.deepEqual(boot.blobs.map((b) => b.blobId), blobs.map((b) => b.blobId));
  assert.deepEqual(boot.blobs.map((b) => b.blobIndex), [0, 1, 2]);
  assert.deepEqual(boot.blobs.map((b) => b.chunkCount), [3, 5, 7]);
  for (let d = 1; d <= 3; d++) assert.equal(boot.blobIdOfDevice(d), blobs[d - 1]!.blobId);
  assert.equal(boot.rafs!.chunkSize, MiB);
  assert.ok(boot.rafs!.flags & RAFS_HASH_BLAKE3);
  assert.ok(boot.rafs!.flags & RAFS_COMPRESSION_ZSTD);
});

test('chunk indexes point at the right blob and chunk-info index; holes are NULL_ADDR', () => {
  const blobs = [blobEntry(0), blobEntry(1)];
  const root = newDir();
  const a0 = loc(blobs[0]!, 0);
  const b5 = loc(blobs[1]!, 5);
  const far = loc(blobs[0]!, 70_000); // needs the high byte of the 24-bit index
  const tail = loc(blobs[1]!, 6, 12_345);
  root.children!.set('a', file(4 * MiB + 12_345, [a0, b5, null, far, tail]));
  root.children!.set('b', file(2 * MiB, [b5, a0])); // the same chunks again, swapped
  root.children!.set('holes', file(3 * MiB, [null, null, null]));
  const { boot } = write(root, blobs);
  const map = (p: string) => boot.chunkMap(boot.lookup(p)).map((m) => [m.chunk.deviceId, m.chunk.blkaddr, m.chunk.blkaddr === NULL_ADDR ? -1 : m.chunk.blobCiIndex, m.fileOffset, m.length]);
  assert.deepEqual(map('/a'), [
    [1, 0, 0, 0, MiB],
    [2, 5 * 256, 5, MiB, MiB],
    [0, NULL_ADDR, -1, 2 * MiB, MiB],
    [1, 70_000 * 256, 70_000, 3 * MiB, MiB],
    [2, 6 * 256, 6, 4 * MiB, 12_345],
  ]);
  assert.deepEqual(map('/b'), [[2, 5 * 256, 5, 0, MiB], [1, 0, 0, MiB, MiB]]);
  assert.deepEqual(map('/holes').map((m) => m[1]), [NULL_ADDR, NULL_ADDR, NULL_ADDR]);
  // The RAFS chunk table holds each distinct chunk once with its blob index, ci index and digest.
  const table = boot.chunks.map((c) => [c.blobIndex, c.index, c.digest, c.uncompressedSize, (c.flags & CHUNK_FLAG_COMPRESSED) !== 0]);
  assert.deepEqual(table.sort(), [
    [0, 0, a0.digest, MiB, true], [0, 70_000, far.digest, MiB, true], [1, 5, b5.digest, MiB, true], [1, 6, tail.digest, 12_345, true],
  ].sort());
  assert.equal(boot.inodeChunkSize(boot.lookup('/a')), MiB);
});

test('other chunk sizes are recorded in each chunk-based inode', () => {
  for (const cs of [4096, 64 * 1024, 16 * MiB]) {
    const blobs = [blobEntry(0)];
    const root = newDir();
    root.children!.set('f', file(cs * 2 + 1, [loc(blobs[0]!, 0, cs), null, loc(blobs[0]!, 1, 1)]));
    const { boot } = write(root, blobs, cs);
    const ino = boot.lookup('/f');
    assert.equal(boot.inodeChunkSize(ino), cs);
    assert.equal(boot.chunkMap(ino).length, 3);
    assert.equal(boot.rafs!.chunkSize, cs);
  }
});

test('a file whose chunk list does not match its size is refused', () => {
  const blobs = [blobEntry(0)];
  const root = newDir();
  root.children!.set('f', file(3 * MiB, [loc(blobs[0]!, 0)]));
  throwsWith(() => write(root, blobs), 'ONDINE_ERR_INVALID', /expected 3/);
});

test('the same tree always encodes to the same bytes', () => {
  const make = () => {
    const blobs = [blobEntry(0)];
    const root = newDir({ mtimeSec: 5 });
    for (let i = 0; i < 300; i++) root.children!.set(`f${(i * 7919) % 300}`, i % 3 ? emptyFile({ uid: i }) : file(MiB + 1 + i, [loc(blobs[0]!, i), loc(blobs[0]!, i + 1000, i + 1)]));
    return write(root, blobs).buf;
  };
  assert.ok(make().equals(make()));
});

// ---- oracles: erofs-utils and the kernel on a metadata-only image ----

function metadataTree(): TreeNode {
  const root = newDir({ mtimeSec: 1_700_000_000 });
  const shared = emptyFile({ mode: 0o640, uid: 1000, gid: 100, mtimeSec: 1_700_000_000, mtimeNsec: 500 });
  const d = newDir({ mode: 0o2750, uid: 70_000, gid: 3, mtimeSec: 1_650_000_000, mtimeNsec: 42 });
  root.children!.set('dir', d);
  root.children!.set('hard1', shared);
  d.children!.set('hard2', shared);
  d.children!.set('sub', newDir({ mtimeSec: -86_400 }));
  root.children!.set('link', newNode('symlink', { target: 'dir/hard2', mtimeSec: 1_700_000_000 }));
  root.children!.set('longlink', newNode('symlink', { target: 'L'.repeat(3000), mtimeSec: 1_700_000_000 }));
  root.children!.set('tty', newNode('chardev', { mode: 0o620, rdevMajor: 4, rdevMinor: 1, mtimeSec: 1_700_000_000 }));
  root.children!.set('disk', newNode('blockdev', { mode: 0o660, rdevMajor: 259, rdevMinor: 70_000, mtimeSec: 1_700_000_000 }));
  root.children!.set('pipe', newNode('fifo', { mtimeSec: 1_700_000_000 }));
  root.children!.set('x', emptyFile({ mtimeSec: 1_700_000_000, xattrs: new Map([['user.k', Buffer.from('v')], ['trusted.t', Buffer.from([0, 1, 2])]]) }));
  const many = newDir({ mtimeSec: 1_700_000_000 });
  root.children!.set('many', many);
  for (let i = 0; i < 2000; i++) many.children!.set(`entry-${i}-${'p'.repeat(i % 50)}`, emptyFile({ mtimeSec: 1_700_000_000 }));
  return root;
}

test('fsck.erofs accepts a metadata-only image', async (t) => {
  if (spawnSync('fsck.erofs', ['-V']).error) return t.skip('fsck.erofs (erofs-utils) is not installed');
  const { dir, cleanup } = await tempDir('fsck');
  try {
    const img = join(dir, 'meta.img');
    await writeFile(img, write(metadataTree()).buf);
    const r = spawnSync('fsck.erofs', [img], { encoding: 'utf8' });
    assert.equal(r.status, 0, `fsck.erofs: ${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout + r.stderr, /corrupt|error|bogus/i);
  } finally {
    await cleanup();
  }
});

test('the host kernel mounts a metadata-only image and sees every attribute', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to mount');
  const { dir, cleanup } = await tempDir('kmount');
  const mnt = join(dir, 'mnt');
  let mounted = false;
  try {
    const img = join(dir, 'meta.img');
    await writeFile(img, write(metadataTree()).buf);
    await mkdir(mnt);
    try {
      execFileSync('mount', ['-t', 'erofs', '-o', 'loop,ro', img, mnt], { stdio: 'pipe' });
      mounted = true;
    } catch (err) {
      return t.skip(`cannot mount erofs here: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
    }
    const st = async (p: string) => lstat(join(mnt, p), { bigint: true });
    const d = await st('dir');
    assert.equal(Number(d.mode), 0o42750);
    assert.equal(Number(d.uid), 70_000);
    assert.equal(Number(d.nlink), 3);
    assert.equal(d.mtimeNs, 1_650_000_000n * 1_000_000_000n + 42n);
    const sub = await st('dir/sub');
    assert.equal(sub.mtimeNs, -86_400n * 1_000_000_000n);
    const h1 = await st('hard1');
    const h2 = await st('dir/hard2');
    assert.equal(h1.ino, h2.ino);
    assert.equal(Number(h1.nlink), 2);
    assert.equal(Number(h1.mode), 0o100640);
    assert.equal(h1.mtimeNs, 1_700_000_000n * 1_000_000_000n + 500n);
    assert.equal(await readlink(join(mnt, 'link')), 'dir/hard2');
    assert.equal(await readlink(join(mnt, 'longlink')), 'L'.repeat(3000));
    const tty = await st('tty');
    assert.ok(tty.isCharacterDevice());
    assert.equal(tty.rdev, BigInt((4 << 8) | 1));
    const disk = await st('disk');
    assert.ok(disk.isBlockDevice());
    // glibc makedev(259, 70000): minor low 8 bits | major << 8 | (minor high bits) << 12
    assert.equal(disk.rdev, BigInt((70_000 & 0xff) | (259 << 8)) | (BigInt(70_000 & ~0xff) << 12n));
    assert.ok((await st('pipe')).isFIFO());
    assert.deepEqual(llistxattr(join(mnt, 'x')).sort(), ['trusted.t', 'user.k']);
    assert.deepEqual(lgetxattr(join(mnt, 'x'), 'user.k'), Buffer.from('v'));
    assert.deepEqual(lgetxattr(join(mnt, 'x'), 'trusted.t'), Buffer.from([0, 1, 2]));
    const listed = (await readdir(join(mnt, 'many'))).sort();
    assert.equal(listed.length, 2000);
    assert.ok(listed.includes(`entry-1999-${'p'.repeat(1999 % 50)}`));
    assert.equal(Number((await st('')).nlink), 2 + 2);
  } finally {
    if (mounted) execFileSync('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
    await cleanup();
  }
});
