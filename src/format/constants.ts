// Numbers of the EROFS on-disk format (include/uapi erofs_fs.h) and Nydus RAFS v6 additions.
export const EROFS_MAGIC = 0xe0f5e1e2;
export const SUPERBLOCK_OFFSET = 1024;
export const BLOCK_BITS = 12;
export const BLOCK_SIZE = 1 << BLOCK_BITS;
/** Address meaning "no block": a hole in a chunk index. */
export const NULL_ADDR = 0xffffffff;
/** Inodes are addressed by nid = offset-in-meta-area / 32. */
export const INODE_SLOT_BITS = 5;
export const INODE_SLOT_SIZE = 1 << INODE_SLOT_BITS;

export const COMPAT_SB_CHKSUM = 0x1;
export const COMPAT_MTIME = 0x2;
export const COMPAT_RAFS_V6 = 0x40000000;

export const INCOMPAT_ZERO_PADDING = 0x1;
export const INCOMPAT_COMPR_CFGS = 0x2;
export const INCOMPAT_CHUNKED_FILE = 0x4;
export const INCOMPAT_DEVICE_TABLE = 0x8;

export enum DataLayout {
  FlatPlain = 0,
  CompressedFull = 1,
  FlatInline = 2,
  CompressedCompact = 3,
  ChunkBased = 4,
}

export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
export const CHUNK_FORMAT_INDEXES = 0x20;

/** Directory entry file types (EROFS_FT_*). */
export enum FileType {
  Unknown = 0,
  Regular = 1,
  Directory = 2,
  CharDevice = 3,
  BlockDevice = 4,
  Fifo = 5,
  Socket = 6,
  Symlink = 7,
}

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export function fileTypeOfMode(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFREG: return FileType.Regular;
    case S_IFDIR: return FileType.Directory;
    case S_IFCHR: return FileType.CharDevice;
    case S_IFBLK: return FileType.BlockDevice;
    case S_IFIFO: return FileType.Fifo;
    case S_IFSOCK: return FileType.Socket;
    case S_IFLNK: return FileType.Symlink;
    default: return FileType.Unknown;
  }
}

// RAFS v6 extended superblock flags.
export const RAFS_COMPRESSION_NONE = 0x1;
export const RAFS_COMPRESSION_LZ4 = 0x2;
export const RAFS_HASH_BLAKE3 = 0x4;
export const RAFS_HASH_SHA256 = 0x8;
export const RAFS_EXPLICIT_UID_GID = 0x10;
export const RAFS_HAS_XATTR = 0x20;
export const RAFS_COMPRESSION_GZIP = 0x40;
export const RAFS_COMPRESSION_ZSTD = 0x80;
export const RAFS_INLINED_CHUNK_DIGEST = 0x100;

/** Where Nydus puts its structures in block 0 of a bootstrap. */
export const RAFS_EXT_SUPERBLOCK_OFFSET = 1152;
export const RAFS_DEVICE_TABLE_OFFSET = 1408;

/** Compressor and digest ids as stored in blob tables. */
export enum Compressor {
  None = 0,
  Lz4Block = 1,
  Gzip = 2,
  Zstd = 3,
}
export enum DigestAlgo {
  Blake3 = 0,
  Sha256 = 1,
}

// Blob features (blob table entry and chunk-info header).
export const BLOB_FEATURE_ALIGNED = 0x1;
export const BLOB_FEATURE_INLINED_FS_META = 0x2;
export const BLOB_FEATURE_CHUNK_INFO_V2 = 0x4;
export const BLOB_FEATURE_ZRAN = 0x8;
export const BLOB_FEATURE_SEPARATE = 0x10;
export const BLOB_FEATURE_INLINED_CHUNK_DIGEST = 0x20;
export const BLOB_FEATURE_HAS_TAR_HEADER = 0x10000000;
export const BLOB_FEATURE_HAS_TOC = 0x20000000;

export const BLOB_META_MAGIC = 0xb10bb10b;
export const BLOB_META_HEADER_SIZE = 4096;

export const CHUNK_FLAG_COMPRESSED = 0x1;
