// Lays out and encodes the bootstrap: block 0 (superblock, RAFS superblock, device table),
// then inodes with inline xattrs, tails and chunk indexes, then directory/symlink blocks that
// did not fit inline, then the RAFS blob and chunk tables. Layout is computed before encoding
// because directory entries need the nids of their children.
import { alignUp } from '../format/bytes.js';
import {
  BLOCK_BITS, BLOCK_SIZE, COMPAT_RAFS_V6, CHUNK_FORMAT_INDEXES, CHUNK_FLAG_COMPRESSED, Compressor, DataLayout,
  DigestAlgo, FileType, INCOMPAT_CHUNKED_FILE, INCOMPAT_DEVICE_TABLE, INODE_SLOT_SIZE, NULL_ADDR,
  RAFS_COMPRESSION_GZIP, RAFS_COMPRESSION_LZ4, RAFS_COMPRESSION_NONE, RAFS_COMPRESSION_ZSTD,
  RAFS_DEVICE_TABLE_OFFSET, RAFS_EXPLICIT_UID_GID, RAFS_HAS_XATTR, RAFS_HASH_BLAKE3, RAFS_HASH_SHA256,
  RAFS_INLINED_CHUNK_DIGEST, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK,
} from '../format/constants.js';
import { encodeSuperblock, sealSuperblock } from '../format/superblock.js';
import { encodeInode, encodeRdev, inodeSize, xattrIcountFor, fitsCompact } from '../format/inode.js';
import { encodeInlineXattrs } from '../format/xattr.js';
import { packDirectory, directorySize, type DirEntry } from '../format/dirent.js';
import { CHUNK_INDEX_SIZE, chunkBitsFor, encodeChunkIndex, HOLE } from '../format/chunk-index.js';
import { DEVICE_SLOT_SIZE, encodeDeviceSlot } from '../format/device-slot.js';
import { encodeRafsSuperblock } from '../format/rafs-superblock.js';
import { BLOB_TABLE_ENTRY_SIZE, encodeBlobTableEntry, type BlobTableEntry } from '../format/blob-table.js';
import { CHUNK_TABLE_ENTRY_SIZE, encodeChunkTableEntry, type ChunkTableEntry } from '../format/chunk-table.js';
import { InvalidArgumentError } from '../errors.js';
import { nameToBytes, type NodeKind, type TreeNode } from './tree.js';
import type { ChunkedContent, ChunkLocation } from './chunk-store.js';

const TYPE_BITS: Record<NodeKind, number> = {
  file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chardev: S_IFCHR, blockdev: S_IFBLK, fifo: S_IFIFO, socket: S_IFSOCK,
};
const FILE_TYPES: Record<NodeKind, FileType> = {
  file: FileType.Regular, dir: FileType.Directory, symlink: FileType.Symlink, chardev: FileType.CharDevice,
  blockdev: FileType.BlockDevice, fifo: FileType.Fifo, socket: FileType.Socket,
};

export interface BootstrapBlob {
  /** Final table entry (blobIndex = position). */
  entry: BlobTableEntry;
}

export interface BootstrapInput {
  root: TreeNode;
  chunkSize: number;
  compressor: Compressor;
  digester: DigestAlgo;
  blobs: BlobTableEntry[];
  /** Maps a chunk location to the index of its blob in `blobs`. */
  blobIndexOf(loc: ChunkLocation): number;
}

interface Rec {
  node: TreeNode;
  parent: Rec | undefined;
  nlink: number;
  ino: number;
  extended: boolean;
  layout: DataLayout;
  xattrs: Buffer;
  /** Directory entries (sorted) or symlink target bytes. */
  entries?: Array<{ name: Buffer; rec: Rec }>;
  flatSize: number;
  inlineTail: number;
  headBlocks: number;
  chunkCount: number;
  offset: number;
  blkaddr: number;
  nid: number;
}

export interface BootstrapStats {
  inodes: number;
  bytes: number;
  chunkRefs: number;
  uniqueChunks: number;
}

/** EROFS_NAME_LEN: the kernel refuses a directory holding a longer name ("bogus dirent", EUCLEAN). */
const NAME_MAX = 255;

function direntName(name: string): Buffer {
  const b = nameToBytes(name);
  if (b.length === 0 || b.length > NAME_MAX) {
    throw new InvalidArgumentError(`file name of ${b.length} bytes (${JSON.stringify(name.slice(0, 40))}...): names must be 1 to ${NAME_MAX} bytes`);
  }
  return b;
}

function collect(root: TreeNode): Rec[] {
  const recs: Rec[] = [];
  const byNode = new Map<TreeNode, Rec>();
  const mk = (node: TreeNode, parent: Rec | undefined): Rec => {
    const r: Rec = {
      node, parent, nlink: 0, ino: recs.length + 1, extended: false, layout: DataLayout.FlatPlain,
      xattrs: encodeInlineXattrs(node.xattrs), flatSize: 0, inlineTail: 0, headBlocks: 0, chunkCount: 0,
      offset: 0, blkaddr: NULL_ADDR, nid: 0,
    };
    recs.push(r);
    byNode.set(node, r);
    return r;
  };
  const rootRec = mk(root, undefined);
  rootRec.parent = rootRec;
  // Breadth-first: a directory's children get neighbouring inodes, so a walk touches few blocks.
  const queue: Rec[] = [rootRec];
  while (queue.length) {
    const dir = queue.shift()!;
    const kids = [...dir.node.children!.entries()]
      .map(([name, node]) => ({ name: direntName(name), node }))
      .sort((a, b) => Buffer.compare(a.name, b.name));
    dir.entries = [];
    for (const { name, node } of kids) {
      let rec = byNode.get(node);
      if (rec && node.kind === 'dir') throw new InvalidArgumentError('a directory is linked twice in the tree');
      if (!rec) {
        rec = mk(node, dir);
        if (node.kind === 'dir') queue.push(rec);
      }
      rec.nlink++;
      dir.entries.push({ name, rec });
    }
  }
  for (const r of recs) {
    if (r.node.kind === 'dir') r.nlink = 2 + r.entries!.filter((e) => e.rec.node.kind === 'dir').length;
  }
  return recs;
}

/** Most common mtime: inodes carrying it can be compact (they inherit the superblock's time). */
function commonMtime(recs: Rec[]): [number, number] {
  const counts = new Map<string, number>();
  let best: [number, number] = [0, 0];
  let bestN = 0;
  for (const r of recs) {
    const t = r.node.mtimeSec;
    if (t < 0) continue;
    const k = `${t}.${r.node.mtimeNsec}`;
    const n = (counts.get(k) ?? 0) + 1;
    counts.set(k, n);
    if (n > bestN) { bestN = n; best = [t, r.node.mtimeNsec]; }
  }
  return best;
}

function planFlat(r: Rec, size: number, bs: number): void {
  r.flatSize = size;
  const tail = size % bs;
  const isize = inodeSize(r.extended) + r.xattrs.length;
  if (tail !== 0 && isize + tail <= bs) {
    r.layout = DataLayout.FlatInline;
    r.inlineTail = tail;
    r.headBlocks = Math.floor(size / bs);
  } else {
    r.layout = DataLayout.FlatPlain;
    r.headBlocks = Math.ceil(size / bs);
  }
}

export function writeBootstrap(input: BootstrapInput): { bootstrap: Buffer; stats: BootstrapStats } {
  const bs = BLOCK_SIZE;
  const recs = collect(input.root);
  const [buildTime, buildTimeNsec] = commonMtime(recs);
  const chunkBits = chunkBitsFor(input.chunkSize, BLOCK_BITS);

  // 1. Per-inode shape.
  for (const r of recs) {
    const n = r.node;
    const size = n.kind === 'file' ? n.size : 0;
    r.extended = !fitsCompact({ layout: 0, xattrIcount: 0, mode: 0, nlink: r.nlink, size, iu: 0, ino: 0, uid: n.uid, gid: n.gid, mtime: n.mtimeSec, mtimeNsec: n.mtimeNsec }, buildTime, buildTimeNsec);
    if (n.kind === 'dir') {
      planFlat(r, directorySize([1, 2, ...r.entries!.map((e) => e.name.length)], bs), bs);
    } else if (n.kind === 'symlink') {
      planFlat(r, nameToBytes(n.target ?? '').length, bs);
    } else if (n.kind === 'file' && n.size > 0) {
      r.layout = DataLayout.ChunkBased;
      r.chunkCount = Math.ceil(n.size / input.chunkSize);
      const content = n.content as ChunkedContent | undefined;
      if (!content || content.chunks.length !== r.chunkCount) {
        throw new InvalidArgumentError(`file of ${n.size} bytes has ${content?.chunks.length ?? 0} chunks, expected ${r.chunkCount}`);
      }
    }
  }

  // 2. Placement. Block 0 holds the superblocks and the device table; inodes follow.
  const devtEnd = RAFS_DEVICE_TABLE_OFFSET + input.blobs.length * DEVICE_SLOT_SIZE;
  const metaBlkaddr = Math.ceil(devtEnd / bs);
  const metaStart = metaBlkaddr * bs;
  let pos = metaStart;
  for (const r of recs) {
    pos = alignUp(pos, INODE_SLOT_SIZE);
    const head = inodeSize(r.extended) + r.xattrs.length;
    if (r.inlineTail && ((pos + head) % bs) + r.inlineTail > bs) pos = alignUp(pos, bs);
    r.offset = pos;
    r.nid = (pos - metaStart) / INODE_SLOT_SIZE;
    pos += head;
    if (r.inlineTail) pos += r.inlineTail;
    if (r.chunkCount) pos = alignUp(pos, CHUNK_INDEX_SIZE) + r.chunkCount * CHUNK_INDEX_SIZE;
  }
  if (recs[0]!.nid > 0xffff) throw new InvalidArgumentError('root inode nid does not fit 16 bits');
  let blk = Math.ceil(pos / bs);
  for (const r of recs) {
    if (r.headBlocks) { r.blkaddr = blk; blk += r.headBlocks; }
  }

  // 3. RAFS tables after the metadata (the kernel never reads them).
  const chunkEntries: ChunkTableEntry[] = [];
  const chunkSeen = new Map<ChunkLocation, number>();
  let chunkRefs = 0;
  for (const r of recs) {
    if (!r.chunkCount) continue;
    const content = r.node.content as ChunkedContent;
    content.chunks.forEach((loc, i) => {
      if (!loc) return;
      chunkRefs++;
      if (chunkSeen.has(loc)) return;
      chunkSeen.set(loc, chunkEntries.length);
      chunkEntries.push({
        digest: loc.digest, blobIndex: input.blobIndexOf(loc), flags: loc.compressed ? CHUNK_FLAG_COMPRESSED : 0,
        compressedSize: loc.compressedSize, uncompressedSize: loc.uncompressedSize,
        compressedOffset: loc.compressedOffset, uncompressedOffset: loc.uncompressedOffset,
        fileOffset: i * input.chunkSize, index: loc.ciIndex, crc32: 0,
      });
    });
  }
  const blobTableOffset = blk * bs;
  const blobTableSize = input.blobs.length * BLOB_TABLE_ENTRY_SIZE;
  const chunkTableOffset = alignUp(blobTableOffset + blobTableSize, 8);
  const chunkTableSize = chunkEntries.length * CHUNK_TABLE_ENTRY_SIZE;
  const total = alignUp(chunkTableOffset + chunkTableSize, bs);
  const out = Buffer.alloc(total);

  // 4. Encode inodes and their payloads.
  let hasXattr = false;
  for (const r of recs) {
    const n = r.node;
    let iu = 0;
    if (n.kind === 'chardev' || n.kind === 'blockdev') iu = encodeRdev(n.rdevMajor ?? 0, n.rdevMinor ?? 0);
    else if (r.layout === DataLayout.ChunkBased) iu = CHUNK_FORMAT_INDEXES | chunkBits;
    else if (r.headBlocks) iu = r.blkaddr;
    else if (n.kind === 'file' || n.kind === 'dir' || n.kind === 'symlink') iu = NULL_ADDR;
    const size = n.kind === 'file' ? n.size : r.flatSize;
    encodeInode(out, r.offset, {
      extended: r.extended, layout: r.layout, xattrIcount: xattrIcountFor(r.xattrs.length),
      mode: TYPE_BITS[n.kind] | (n.mode & 0o7777), nlink: r.nlink, size, iu, ino: r.ino,
      uid: n.uid, gid: n.gid, mtime: n.mtimeSec, mtimeNsec: n.mtimeNsec,
    });
    const payload = r.offset + inodeSize(r.extended);
    if (r.xattrs.length) { r.xattrs.copy(out, payload); hasXattr = true; }
    let flat: Buffer | undefined;
    if (n.kind === 'dir') {
      const entries: DirEntry[] = [
        { name: Buffer.from('.'), nid: r.nid, fileType: FileType.Directory },
        { name: Buffer.from('..'), nid: r.parent!.nid, fileType: FileType.Directory },
        ...r.entries!.map((e) => ({ name: e.name, nid: e.rec.nid, fileType: FILE_TYPES[e.rec.node.kind] })),
      ].sort((a, b) => Buffer.compare(a.name, b.name));
      flat = Buffer.concat(packDirectory(entries, bs));
    } else if (n.kind === 'symlink') {
      flat = nameToBytes(n.target ?? '');
    }
    if (flat) {
      if (flat.length !== r.flatSize) throw new Error(`internal: flat size ${flat.length} != planned ${r.flatSize}`);
      const headBytes = r.layout === DataLayout.FlatInline ? r.headBlocks * bs : flat.length;
      if (headBytes) flat.copy(out, r.blkaddr * bs, 0, headBytes);
      if (r.inlineTail) flat.copy(out, payload + r.xattrs.length, headBytes);
    }
    if (r.chunkCount) {
      const base = alignUp(payload + r.xattrs.length, CHUNK_INDEX_SIZE);
      (n.content as ChunkedContent).chunks.forEach((loc, i) => {
        encodeChunkIndex(out, base + i * CHUNK_INDEX_SIZE, loc
          ? { deviceId: input.blobIndexOf(loc) + 1, blkaddr: loc.uncompressedOffset / bs, blobCiIndex: loc.ciIndex }
          : HOLE);
      });
    }
  }

  // 5. Tables and block 0.
  input.blobs.forEach((b, i) => encodeBlobTableEntry(out, blobTableOffset + i * BLOB_TABLE_ENTRY_SIZE, { ...b, blobIndex: i }));
  chunkEntries.forEach((c, i) => encodeChunkTableEntry(out, chunkTableOffset + i * CHUNK_TABLE_ENTRY_SIZE, c));
  input.blobs.forEach((b, i) => encodeDeviceSlot(out, RAFS_DEVICE_TABLE_OFFSET + i * DEVICE_SLOT_SIZE, {
    tag: b.blobId, blocks: Math.ceil(b.uncompressedSize / bs), mappedBlkaddr: 0,
  }));
  const compressorFlag = { [Compressor.None]: RAFS_COMPRESSION_NONE, [Compressor.Lz4Block]: RAFS_COMPRESSION_LZ4, [Compressor.Gzip]: RAFS_COMPRESSION_GZIP, [Compressor.Zstd]: RAFS_COMPRESSION_ZSTD }[input.compressor];
  encodeRafsSuperblock(out, {
    flags: compressorFlag | (input.digester === DigestAlgo.Sha256 ? RAFS_HASH_SHA256 : RAFS_HASH_BLAKE3) |
      RAFS_EXPLICIT_UID_GID | RAFS_INLINED_CHUNK_DIGEST | (hasXattr ? RAFS_HAS_XATTR : 0),
    blobTableOffset, blobTableSize, chunkSize: input.chunkSize,
    chunkTableOffset, chunkTableSize, prefetchTableOffset: 0, prefetchTableSize: 0,
  });
  const dataBlocks = input.blobs.reduce((s, b) => s + Math.ceil(b.uncompressedSize / bs), 0);
  encodeSuperblock(out, {
    checksum: 0, featureCompat: COMPAT_RAFS_V6, blkszbits: BLOCK_BITS, sbExtslots: 0, rootNid: recs[0]!.nid,
    inos: recs.length, buildTime, buildTimeNsec, blocks: total / bs + dataBlocks, metaBlkaddr, xattrBlkaddr: 0,
    uuid: new Uint8Array(16), volumeName: '',
    featureIncompat: INCOMPAT_CHUNKED_FILE | (input.blobs.length ? INCOMPAT_DEVICE_TABLE : 0),
    availableComprAlgs: 0, extraDevices: input.blobs.length, devtSlotoff: input.blobs.length ? RAFS_DEVICE_TABLE_OFFSET / DEVICE_SLOT_SIZE : 0,
  });
  sealSuperblock(out);
  return { bootstrap: out, stats: { inodes: recs.length, bytes: total, chunkRefs, uniqueChunks: chunkEntries.length } };
}
