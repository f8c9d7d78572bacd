// A small EROFS/RAFS v6 bootstrap writer for tests, built only from the format encoders, so the
// reader can be checked on features the Nydus fixture lacks (symlinks, devices, xattrs, holes,
// multi-block and inline directories, hard links) and so tests can plant precise corruptions.
import {
  BLOCK_SIZE, CHUNK_FORMAT_INDEXES, COMPAT_RAFS_V6, DataLayout, FileType, INCOMPAT_CHUNKED_FILE, INCOMPAT_DEVICE_TABLE,
  INODE_SLOT_SIZE, RAFS_DEVICE_TABLE_OFFSET, RAFS_HASH_BLAKE3, RAFS_COMPRESSION_ZSTD, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO,
  S_IFLNK, S_IFREG, fileTypeOfMode,
} from '../../src/format/constants.js';
import { encodeSuperblock, sealSuperblock } from '../../src/format/superblock.js';
import { encodeRafsSuperblock } from '../../src/format/rafs-superblock.js';
import { encodeDeviceSlot } from '../../src/format/device-slot.js';
import { encodeBlobTableEntry } from '../../src/format/blob-table.js';
import { encodeInode, encodeRdev, inodeSize, xattrIcountFor } from '../../src/format/inode.js';
import { encodeInlineXattrs } from '../../src/format/xattr.js';
import { directorySize, packDirectory, compareNames, type DirEntry } from '../../src/format/dirent.js';
import { encodeChunkIndex, chunkBitsFor, CHUNK_INDEX_SIZE, type ChunkIndex } from '../../src/format/chunk-index.js';
import { BLOB_ID } from './support.js';

export type Spec =
  | { kind: 'dir'; name: string; children: Spec[]; plain?: boolean; extended?: boolean; xattrs?: Record<string, string> }
  | { kind: 'file'; name: string; size: number; chunks: ChunkIndex[]; xattrs?: Record<string, string> }
  | { kind: 'symlink'; name: string; target: string }
  | { kind: 'chr' | 'blk'; name: string; major: number; minor: number }
  | { kind: 'fifo'; name: string }
  /** A hard link: a second entry naming the node at `to` (a path such as "/sub"). */
  | { kind: 'link'; name: string; to: string; fileType?: FileType };

export interface Built {
  image: Buffer;
  /** path -> nid and absolute inode offset (hard links share their target's). */
  nodes: Map<string, { nid: number; offset: number }>;
  rootNid: number;
}

export const CHUNK_SIZE = 1 << 20;
export const BUILD_TIME = 1_600_000_000;
export const BUILD_TIME_NSEC = 123;
const META_BLKADDR = 2;
const META = META_BLKADDR * BLOCK_SIZE;

interface Placed {
  spec: Exclude<Spec, { kind: 'link' }>;
  path: string;
  offset: number;
  mode: number;
  extended: boolean;
  xattrs: Buffer;
  inline: number; // bytes of inline payload (dir tail, symlink target, chunk indexes incl. alignment)
  dataBlk?: number;
  dirSize?: number;
}

function modeOf(s: Placed['spec']): number {
  switch (s.kind) {
    case 'dir': return S_IFDIR | 0o755;
    case 'file': return S_IFREG | 0o644;
    case 'symlink': return S_IFLNK | 0o777;
    case 'chr': return S_IFCHR | 0o600;
    case 'blk': return S_IFBLK | 0o600;
    case 'fifo': return S_IFIFO | 0o644;
  }
}

function xattrMap(x?: Record<string, string>): Map<string, Uint8Array> {
  return new Map(Object.entries(x ?? {}).map(([k, v]) => [k, Buffer.from(v)]));
}

export function buildImage(root: Extract<Spec, { kind: 'dir' }>, opts: { seal?: boolean; blocks?: number } = {}): Built {
  const placed: Placed[] = [];
  const byPath = new Map<string, Placed>();
  const visit = (s: Spec, path: string): void => {
    if (s.kind === 'link') return;
    const xattrs = encodeInlineXattrs(xattrMap('xattrs' in s ? s.xattrs : undefined));
    const extended = s.kind === 'file' || (s.kind === 'dir' && s.extended === true);
    const p: Placed = { spec: s, path, offset: 0, mode: modeOf(s), extended, xattrs, inline: 0 };
    placed.push(p);
    byPath.set(path, p);
    if (s.kind === 'dir') for (const c of s.children) visit(c, path === '/' ? `/${c.name}` : `${path}/${c.name}`);
  };
  visit(root, '/');

  const entryNames = (s: Extract<Spec, { kind: 'dir' }>): Buffer[] =>
    [Buffer.from('.'), Buffer.from('..'), ...s.children.map((c) => Buffer.from(c.name))].sort(compareNames);

  // Place inodes in the meta area; inline payload must not cross a block boundary.
  let cursor = META;
  for (const p of placed) {
    const s = p.spec;
    const head = inodeSize(p.extended) + p.xattrs.length;
    if (s.kind === 'dir') {
      p.dirSize = directorySize(entryNames(s).map((n) => n.length), BLOCK_SIZE);
      if (!s.plain) p.inline = p.dirSize;
    } else if (s.kind === 'symlink') {
      p.inline = Buffer.byteLength(s.target);
    } else if (s.kind === 'file') {
      p.inline = (8 - (head % 8)) % 8 + s.chunks.length * CHUNK_INDEX_SIZE;
    }
    let at = Math.ceil(cursor / INODE_SLOT_SIZE) * INODE_SLOT_SIZE;
    if ((at % BLOCK_SIZE) + head + p.inline > BLOCK_SIZE) at = Math.ceil(at / BLOCK_SIZE) * BLOCK_SIZE;
    p.offset = at;
    cursor = at + head + p.inline;
  }
  let nextBlk = Math.ceil(cursor / BLOCK_SIZE);
  for (const p of placed) {
    if (p.spec.kind === 'dir' && p.spec.plain) {
      p.dataBlk = nextBlk;
      nextBlk += Math.ceil(p.dirSize! / BLOCK_SIZE);
    }
  }
  const image = Buffer.alloc(nextBlk * BLOCK_SIZE);
  const nidOf = (p: Placed): number => (p.offset - META) / INODE_SLOT_SIZE;

  for (const p of placed) {
    const s = p.spec;
    const payloadAt = p.offset + inodeSize(p.extended) + p.xattrs.length;
    let layout = DataLayout.FlatPlain;
    let size = 0;
    let iu = 0;
    if (s.kind === 'dir') {
      const parentPath = p.path === '/' ? '/' : p.path.slice(0, p.path.lastIndexOf('/')) || '/';
      const entries: DirEntry[] = [
        { name: Buffer.from('.'), nid: nidOf(p), fileType: FileType.Directory },
        { name: Buffer.from('..'), nid: nidOf(byPath.get(parentPath)!), fileType: FileType.Directory },
        ...s.children.map((c): DirEntry => {
          const childPath = p.path === '/' ? `/${c.name}` : `${p.path}/${c.name}`;
          const target = c.kind === 'link' ? byPath.get(c.to)! : byPath.get(childPath)!;
          const fileType = c.kind === 'link' && c.fileType !== undefined ? c.fileType : fileTypeOfMode(target.mode);
          return { name: Buffer.from(c.name), nid: nidOf(target), fileType };
        }),
      ].sort((a, b) => compareNames(a.name, b.name));
      const blocks = packDirectory(entries, BLOCK_SIZE);
      const data = Buffer.concat(blocks);
      size = data.length;
      if (s.plain) {
        iu = p.dataBlk!;
        data.copy(image, p.dataBlk! * BLOCK_SIZE);
      } else {
        layout = DataLayout.FlatInline;
        data.copy(image, payloadAt);
      }
    } else if (s.kind === 'symlink') {
      layout = DataLayout.FlatInline;
      size = Buffer.byteLength(s.target);
      image.write(s.target, payloadAt);
    } else if (s.kind === 'file') {
      layout = DataLayout.ChunkBased;
      size = s.size;
      iu = CHUNK_FORMAT_INDEXES | chunkBitsFor(CHUNK_SIZE, 12);
      const base = Math.ceil(payloadAt / 8) * 8;
      s.chunks.forEach((c, i) => encodeChunkIndex(image, base + i * CHUNK_INDEX_SIZE, c));
    } else if (s.kind === 'chr' || s.kind === 'blk') {
      iu = encodeRdev(s.major, s.minor);
    }
    encodeInode(image, p.offset, {
      extended: p.extended, layout, xattrIcount: xattrIcountFor(p.xattrs.length), mode: p.mode,
      nlink: s.kind === 'dir' ? 2 : 1, size, iu, ino: placed.indexOf(p) + 1, uid: p.extended ? 100000 : 1000,
      gid: p.extended ? 100001 : 1001, mtime: p.extended ? -1 : 0, mtimeNsec: p.extended ? 5 : 0,
    });
    p.xattrs.copy(image, p.offset + inodeSize(p.extended));
  }

  const rootNid = nidOf(placed[0]!);
  encodeSuperblock(image, {
    checksum: 0, featureCompat: COMPAT_RAFS_V6, blkszbits: 12, sbExtslots: 0, rootNid, inos: placed.length,
    buildTime: BUILD_TIME, buildTimeNsec: BUILD_TIME_NSEC, blocks: nextBlk, metaBlkaddr: META_BLKADDR, xattrBlkaddr: 0,
    uuid: new Uint8Array(16), volumeName: '', featureIncompat: INCOMPAT_CHUNKED_FILE | INCOMPAT_DEVICE_TABLE,
    availableComprAlgs: 0, extraDevices: 1, devtSlotoff: RAFS_DEVICE_TABLE_OFFSET / 128,
  });
  encodeRafsSuperblock(image, {
    flags: RAFS_HASH_BLAKE3 | RAFS_COMPRESSION_ZSTD, blobTableOffset: BLOCK_SIZE, blobTableSize: 256, chunkSize: CHUNK_SIZE,
    chunkTableOffset: 0, chunkTableSize: 0, prefetchTableOffset: 0, prefetchTableSize: 0,
  });
  encodeDeviceSlot(image, RAFS_DEVICE_TABLE_OFFSET, { tag: BLOB_ID, blocks: opts.blocks ?? 1024, mappedBlkaddr: 0 });
  encodeBlobTableEntry(image, BLOCK_SIZE, {
    blobId: BLOB_ID, blobIndex: 0, chunkSize: CHUNK_SIZE, chunkCount: 3, compressor: 3, digester: 0, features: 0,
    compressedSize: 1000, uncompressedSize: 3 * CHUNK_SIZE, tocSize: 0, ciCompressor: 0, ciOffset: 0,
    ciCompressedSize: 0, ciUncompressedSize: 0, tocDigest: '', metaDigest: '', metaSize: 0,
  });
  if (opts.seal) sealSuperblock(image);
  const nodes = new Map<string, { nid: number; offset: number }>();
  for (const p of placed) nodes.set(p.path, { nid: nidOf(p), offset: p.offset });
  return { image, nodes, rootNid };
}

/** A tree with one of everything the reader handles. */
export function richTree(): Extract<Spec, { kind: 'dir' }> {
  return {
    kind: 'dir', name: '', extended: true, xattrs: { 'user.root': 'r' },
    children: [
      { kind: 'file', name: 'big', size: 2 * CHUNK_SIZE + 12345, xattrs: { 'user.k': 'v', 'security.capability': 'cap-bytes-here' },
        chunks: [
          { deviceId: 1, blkaddr: 0, blobCiIndex: 0 },
          { deviceId: 0, blkaddr: 0xffffffff, blobCiIndex: 0 },
          { deviceId: 1, blkaddr: 256, blobCiIndex: 0x012345 },
        ] },
      { kind: 'file', name: 'empty', size: 0, chunks: [] },
      { kind: 'symlink', name: 'link', target: 'sub/nested/../file-ü' },
      { kind: 'chr', name: 'sda1', major: 8, minor: 1 },
      { kind: 'blk', name: 'nvme', major: 259, minor: 300 },
      { kind: 'fifo', name: 'pipe' },
      { kind: 'dir', name: 'sub', children: [
        { kind: 'file', name: 'nested', size: 1, chunks: [{ deviceId: 1, blkaddr: 7, blobCiIndex: 2 }] },
        { kind: 'link', name: 'hard', to: '/big' },
      ] },
      { kind: 'dir', name: 'many', plain: true, children: Array.from({ length: 120 }, (_, i): Spec => (
        { kind: 'link', name: `entry-with-a-longish-name-${i.toString().padStart(4, '0')}`, to: '/sub/nested' })) },
    ],
  };
}
