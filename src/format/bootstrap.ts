// Reading a whole bootstrap held in memory: superblock, device table, RAFS tables, inodes,
// directories, symlinks and chunk maps. Pure: callers bring the bytes. Every step checks
// bounds and refuses loops, so a hostile image ends in a CorruptError, never a hang.
import { CorruptError, UnsupportedError } from '../errors.js';
import { need } from './bytes.js';
import {
  BLOCK_SIZE, COMPAT_RAFS_V6, CHUNK_FORMAT_BLKBITS_MASK, CHUNK_FORMAT_INDEXES, DataLayout,
  FileType, INCOMPAT_CHUNKED_FILE, INCOMPAT_DEVICE_TABLE, INODE_SLOT_SIZE, NULL_ADDR,
  S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_IFCHR, S_IFBLK, fileTypeOfMode,
} from './constants.js';
import { decodeSuperblock, verifySuperblockChecksum, type Superblock } from './superblock.js';
import { decodeInode, inodeSize, xattrSize, decodeRdev, type Inode } from './inode.js';
import { decodeInlineXattrs } from './xattr.js';
import { decodeDirBlock, type DirEntry } from './dirent.js';
import { CHUNK_INDEX_SIZE, decodeChunkIndex, type ChunkIndex } from './chunk-index.js';
import { DEVICE_SLOT_SIZE, decodeDeviceSlot, type DeviceSlot } from './device-slot.js';
import { decodeRafsSuperblock, type RafsSuperblock } from './rafs-superblock.js';
import { BLOB_TABLE_ENTRY_SIZE, decodeBlobTableEntry, type BlobTableEntry } from './blob-table.js';
import { CHUNK_TABLE_ENTRY_SIZE, ChunkTable, type ChunkTableEntry } from './chunk-table.js';

const KNOWN_INCOMPAT = INCOMPAT_CHUNKED_FILE | INCOMPAT_DEVICE_TABLE | 0x1 /* zero padding: harmless for uncompressed */;

export interface InodeInfo extends Inode {
  nid: number;
  /** Absolute offset of the inode in the bootstrap. */
  offset: number;
  xattrs: Map<string, Buffer>;
  /** Absolute offset where inline data / chunk indexes begin (after inode and xattrs). */
  payloadOffset: number;
}

export interface ChunkMapping {
  /** Chunk number within the file. */
  index: number;
  fileOffset: number;
  length: number;
  chunk: ChunkIndex;
}

export class Bootstrap {
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly rafs: RafsSuperblock | undefined;
  readonly devices: DeviceSlot[];
  readonly blobs: BlobTableEntry[];
  /** The RAFS chunk table, read in place (entries are decoded when asked for). */
  readonly chunkTable: ChunkTable;
  readonly chunkSize: number;
  private decodedChunks: ChunkTableEntry[] | undefined;

  constructor(readonly buf: Uint8Array, opts: { verifyChecksum?: boolean } = {}) {
    this.sb = decodeSuperblock(buf);
    this.blockSize = 1 << this.sb.blkszbits;
    need(buf, 0, this.blockSize, 'EROFS superblock block');
    if (opts.verifyChecksum !== false) verifySuperblockChecksum(buf, this.sb);
    const unknown = this.sb.featureIncompat & ~KNOWN_INCOMPAT;
    if (unknown) throw new UnsupportedError(`EROFS incompatible features 0x${unknown.toString(16)} (compressed or newer layouts)`);
    if (this.sb.metaBlkaddr * this.blockSize >= buf.length) {
      throw new CorruptError('EROFS superblock', 1024 + 40, `meta_blkaddr ${this.sb.metaBlkaddr} beyond the image (${buf.length} bytes)`);
    }
    this.devices = [];
    if (this.sb.extraDevices) {
      if (!(this.sb.featureIncompat & INCOMPAT_DEVICE_TABLE)) {
        throw new CorruptError('EROFS superblock', 1024 + 86, 'extra devices without a device table');
      }
      const base = this.sb.devtSlotoff * DEVICE_SLOT_SIZE;
      need(buf, base, this.sb.extraDevices * DEVICE_SLOT_SIZE, 'EROFS device table');
      for (let i = 0; i < this.sb.extraDevices; i++) this.devices.push(decodeDeviceSlot(buf, base + i * DEVICE_SLOT_SIZE));
    }
    this.rafs = this.sb.featureCompat & COMPAT_RAFS_V6 ? decodeRafsSuperblock(buf) : undefined;
    this.blobs = [];
    let chunkTable = ChunkTable.EMPTY;
    this.chunkSize = this.rafs?.chunkSize ?? 0;
    if (this.rafs) {
      const r = this.rafs;
      if (r.blobTableSize % BLOB_TABLE_ENTRY_SIZE) {
        throw new CorruptError('RAFS v6 extended superblock', 1152 + 16, `blob table size ${r.blobTableSize} not a multiple of ${BLOB_TABLE_ENTRY_SIZE}`);
      }
      need(buf, r.blobTableOffset, r.blobTableSize, 'RAFS blob table');
      for (let at = r.blobTableOffset; at < r.blobTableOffset + r.blobTableSize; at += BLOB_TABLE_ENTRY_SIZE) {
        this.blobs.push(decodeBlobTableEntry(buf, at));
      }
      if (r.chunkTableSize % CHUNK_TABLE_ENTRY_SIZE) {
        throw new CorruptError('RAFS v6 extended superblock', 1152 + 32, `chunk table size ${r.chunkTableSize} not a multiple of ${CHUNK_TABLE_ENTRY_SIZE}`);
      }
      need(buf, r.chunkTableOffset, r.chunkTableSize, 'RAFS chunk table');
      // Checked whole here (what decoding every entry would refuse), decoded only when used.
      chunkTable = new ChunkTable(buf, r.chunkTableOffset, r.chunkTableSize / CHUNK_TABLE_ENTRY_SIZE);
      chunkTable.check();
      this.blobs.forEach((b, i) => {
        if (b.blobIndex !== i) throw new CorruptError('RAFS blob table', r.blobTableOffset + i * BLOB_TABLE_ENTRY_SIZE + 64, `blob index ${b.blobIndex} at position ${i}`);
      });
    }
    this.chunkTable = chunkTable;
    this.inode(this.sb.rootNid); // an image without a readable root is refused up front
  }

  /** Every chunk table entry decoded (an object each: for the builder's chunk dict and tools, not a mount). */
  get chunks(): readonly ChunkTableEntry[] {
    this.decodedChunks ??= this.chunkTable.entries();
    return this.decodedChunks;
  }

  get isRafs(): boolean {
    return this.rafs !== undefined;
  }

  /** Blob id of extra device `deviceId` (1-based): the device tag, or the blob table's id. */
  blobIdOfDevice(deviceId: number): string {
    const d = this.devices[deviceId - 1];
    if (!d) throw new CorruptError('EROFS chunk index', 0, `device id ${deviceId} beyond ${this.devices.length} devices`);
    return d.tag || this.blobs[deviceId - 1]?.blobId || '';
  }

  inodeOffset(nid: number): number {
    return this.sb.metaBlkaddr * this.blockSize + nid * INODE_SLOT_SIZE;
  }

  inode(nid: number): InodeInfo {
    const offset = this.inodeOffset(nid);
    if (!Number.isSafeInteger(offset) || offset + 32 > this.buf.length) {
      throw new CorruptError('EROFS inode', offset, `nid ${nid} is beyond the image`);
    }
    const ino = decodeInode(this.buf, offset, 0);
    const xsize = xattrSize(ino.xattrIcount);
    const payloadOffset = offset + inodeSize(ino.extended) + xsize;
    const xattrs = decodeInlineXattrs(this.buf, offset + inodeSize(ino.extended), xsize, 0);
    if (xattrs.sharedIds.length) throw new UnsupportedError(`shared xattrs (inode ${nid})`);
    const type = ino.mode & S_IFMT;
    if (fileTypeOfMode(ino.mode) === FileType.Unknown) throw new CorruptError('EROFS inode', offset + 4, `bad file type in mode 0${ino.mode.toString(8)}`);
    if (!ino.extended) {
      ino.mtime = this.sb.buildTime;
      ino.mtimeNsec = this.sb.buildTimeNsec;
    }
    if (ino.layout === DataLayout.CompressedFull || ino.layout === DataLayout.CompressedCompact) {
      if (type === S_IFDIR || type === S_IFLNK) throw new UnsupportedError(`compressed ${type === S_IFDIR ? 'directory' : 'symlink'} (inode ${nid})`);
    }
    return { ...ino, nid, offset, xattrs: xattrs.entries, payloadOffset };
  }

  /** Reads an uncompressed flat (plain or inline) inode's data from the bootstrap itself. */
  readFlat(ino: InodeInfo, maxSize = 64 << 20): Buffer {
    if (ino.layout !== DataLayout.FlatPlain && ino.layout !== DataLayout.FlatInline) {
      throw new UnsupportedError(`data layout ${DataLayout[ino.layout]} for inline read (inode ${ino.nid})`);
    }
    if (ino.size > maxSize) throw new CorruptError('EROFS inode', ino.offset + 8, `size ${ino.size} too large for metadata`);
    if (ino.size === 0) return Buffer.alloc(0);
    const bs = this.blockSize;
    const tail = ino.layout === DataLayout.FlatInline ? ((ino.size % bs) || bs) : 0;
    const head = ino.size - tail;
    const at = ino.iu * bs;
    // Every bound is checked before allocating, so a hostile size costs nothing.
    if (head) {
      if (ino.iu === NULL_ADDR) throw new CorruptError('EROFS inode', ino.offset + 16, 'data block address is null');
      need(this.buf, at, head, 'EROFS inode data');
    }
    if (tail) {
      if ((ino.payloadOffset % bs) + tail > bs) {
        throw new CorruptError('EROFS inode', ino.offset, `inline data of ${tail} bytes crosses a block boundary`);
      }
      need(this.buf, ino.payloadOffset, tail, 'EROFS inline data');
    }
    const out = Buffer.alloc(ino.size);
    if (head) out.set(this.buf.subarray(at, at + head), 0);
    if (tail) out.set(this.buf.subarray(ino.payloadOffset, ino.payloadOffset + tail), head);
    return out;
  }

  readDir(ino: InodeInfo): DirEntry[] {
    if ((ino.mode & S_IFMT) !== S_IFDIR) throw new CorruptError('EROFS inode', ino.offset + 4, `inode ${ino.nid} is not a directory`);
    const data = this.readFlat(ino);
    const out: DirEntry[] = [];
    const bs = this.blockSize;
    // Error offsets name the block in the image: the inline tail sits after the inode, the rest at i_u.
    const head = ino.layout === DataLayout.FlatInline ? data.length - ((data.length % bs) || bs) : data.length;
    for (let at = 0; at < data.length; at += bs) {
      const len = Math.min(bs, data.length - at);
      out.push(...decodeDirBlock(data.subarray(at, at + len), len, at >= head ? ino.payloadOffset : ino.iu * bs + at));
    }
    return out;
  }

  readSymlink(ino: InodeInfo): string {
    if ((ino.mode & S_IFMT) !== S_IFLNK) throw new CorruptError('EROFS inode', ino.offset + 4, `inode ${ino.nid} is not a symlink`);
    if (ino.size > 4096) throw new CorruptError('EROFS inode', ino.offset + 8, `symlink of ${ino.size} bytes`);
    return this.readFlat(ino).toString('utf8');
  }

  rdev(ino: InodeInfo): { major: number; minor: number } {
    const t = ino.mode & S_IFMT;
    if (t !== S_IFCHR && t !== S_IFBLK) return { major: 0, minor: 0 };
    return decodeRdev(ino.iu);
  }

  /** The chunk size of a chunk-based inode (bytes). */
  inodeChunkSize(ino: InodeInfo): number {
    const format = ino.iu & 0xffff;
    if (!(format & CHUNK_FORMAT_INDEXES)) throw new UnsupportedError(`block-map chunk format (inode ${ino.nid}); only 8-byte chunk indexes are supported`);
    const bits = this.sb.blkszbits + (format & CHUNK_FORMAT_BLKBITS_MASK);
    if (bits > 40) throw new CorruptError('EROFS inode', ino.offset + 16, `chunk bits ${bits} out of range`);
    return 2 ** bits;
  }

  /** Chunk indexes of a regular chunk-based file, with their file ranges. */
  chunkMap(ino: InodeInfo): ChunkMapping[] {
    if ((ino.mode & S_IFMT) !== S_IFREG) throw new CorruptError('EROFS inode', ino.offset + 4, `inode ${ino.nid} is not a regular file`);
    if (ino.layout !== DataLayout.ChunkBased) throw new UnsupportedError(`data layout ${DataLayout[ino.layout]} (inode ${ino.nid}) in chunk map`);
    const chunkSize = this.inodeChunkSize(ino);
    const count = Math.ceil(ino.size / chunkSize);
    const base = Math.ceil(ino.payloadOffset / CHUNK_INDEX_SIZE) * CHUNK_INDEX_SIZE;
    need(this.buf, base, count * CHUNK_INDEX_SIZE, `chunk indexes of inode ${ino.nid}`);
    const deviceMask = (1 << Math.ceil(Math.log2(this.sb.extraDevices + 1))) - 1;
    const out: ChunkMapping[] = [];
    for (let i = 0; i < count; i++) {
      const c = decodeChunkIndex(this.buf, base + i * CHUNK_INDEX_SIZE);
      if (c.blkaddr !== NULL_ADDR) {
        const dev = c.deviceId & deviceMask;
        if (dev > this.sb.extraDevices) {
          throw new CorruptError('EROFS chunk index', base + i * CHUNK_INDEX_SIZE + 2, `device id ${dev} beyond ${this.sb.extraDevices} extra devices`);
        }
        c.deviceId = dev;
      }
      const fileOffset = i * chunkSize;
      out.push({ index: i, fileOffset, length: Math.min(chunkSize, ino.size - fileOffset), chunk: c });
    }
    return out;
  }

  /** Depth-first walk in directory order; refuses directory loops and over-deep trees. */
  *walk(): Generator<{ path: string; ino: InodeInfo; parentNid: number }> {
    const root = this.inode(this.sb.rootNid);
    yield { path: '/', ino: root, parentNid: root.nid };
    const seenDirs = new Set<number>([root.nid]);
    const stack: Array<{ path: string; ino: InodeInfo }> = [{ path: '', ino: root }];
    // Directories of a real image never share data, so together they fit in the image. More
    // means overlapping directories, whose walk would take time quadratic in the image size.
    let dirBytes = 0;
    while (stack.length) {
      const { path, ino } = stack.pop()!;
      const entries = this.readDir(ino);
      dirBytes += ino.size;
      if (dirBytes > this.buf.length) {
        throw new CorruptError('EROFS directory', ino.offset + 8, `directories hold ${dirBytes} bytes, more than the ${this.buf.length}-byte image: their data overlaps`);
      }
      const children: Array<{ path: string; ino: InodeInfo }> = [];
      for (const e of entries) {
        const name = e.name.toString('utf8');
        if (name === '.' || name === '..') continue;
        if (name.includes('/')) throw new CorruptError('EROFS directory', ino.offset, `entry name "${name}" contains '/'`);
        const child = this.inode(e.nid);
        if (fileTypeOfMode(child.mode) !== e.fileType) {
          throw new CorruptError('EROFS directory', ino.offset, `entry "${name}" type ${e.fileType} disagrees with inode ${e.nid} mode 0${child.mode.toString(8)}`);
        }
        const childPath = `${path}/${name}`;
        yield { path: childPath, ino: child, parentNid: ino.nid };
        if ((child.mode & S_IFMT) === S_IFDIR) {
          if (seenDirs.has(child.nid)) throw new CorruptError('EROFS directory', ino.offset, `directory loop at "${childPath}" (inode ${child.nid})`);
          seenDirs.add(child.nid);
          children.push({ path: childPath, ino: child });
        }
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
    }
  }

  /** Looks up a path ("/a/b") by directory reads. */
  lookup(path: string): InodeInfo {
    let ino = this.inode(this.sb.rootNid);
    for (const part of path.split('/').filter(Boolean)) {
      const e = this.readDir(ino).find((d) => d.name.toString('utf8') === part);
      if (!e) throw new CorruptError('EROFS directory', ino.offset, `no entry "${part}" in path "${path}"`);
      ino = this.inode(e.nid);
    }
    return ino;
  }
}

export function parseBootstrap(buf: Uint8Array, opts?: { verifyChecksum?: boolean }): Bootstrap {
  return new Bootstrap(buf, opts);
}

export { BLOCK_SIZE };
