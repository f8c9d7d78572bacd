// Every structure size and format number against the kernel's include/uapi erofs_fs.h and
// Nydus's RAFS v6 / blob-meta definitions, in one table, so a drifting constant is caught here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as F from '../../src/format/index.js';

test('structure sizes match erofs_fs.h and Nydus', () => {
  const sizes: Array<[string, number, number]> = [
    ['EROFS superblock', F.SUPERBLOCK_SIZE, 128],
    ['compact inode', F.COMPACT_INODE_SIZE, 32],
    ['extended inode', F.EXTENDED_INODE_SIZE, 64],
    ['dirent', F.DIRENT_SIZE, 12],
    ['xattr ibody header', F.XATTR_IBODY_HEADER_SIZE, 12],
    ['xattr entry header', F.XATTR_ENTRY_HEADER_SIZE, 4],
    ['chunk index', F.CHUNK_INDEX_SIZE, 8],
    ['device slot', F.DEVICE_SLOT_SIZE, 128],
    ['device tag', F.DEVICE_TAG_SIZE, 64],
    ['RAFS v6 extended superblock', F.RAFS_EXT_SUPERBLOCK_SIZE, 256],
    ['blob table entry', F.BLOB_TABLE_ENTRY_SIZE, 256],
    ['chunk table entry', F.CHUNK_TABLE_ENTRY_SIZE, 80],
    ['blob meta (chunk-info) header', F.BLOB_META_HEADER_SIZE, 4096],
    ['chunk info v1', F.CHUNK_INFO_V1_SIZE, 16],
    ['chunk info v2', F.CHUNK_INFO_V2_SIZE, 24],
    ['TOC entry', F.TOC_ENTRY_SIZE, 128],
    ['tar header', F.TAR_HEADER_SIZE, 512],
    ['inode slot', F.INODE_SLOT_SIZE, 32],
  ];
  for (const [name, actual, want] of sizes) assert.equal(actual, want, name);
});

test('fixed positions of the superblock and RAFS structures in block 0', () => {
  assert.equal(F.SUPERBLOCK_OFFSET, 1024);
  assert.equal(F.RAFS_EXT_SUPERBLOCK_OFFSET, 1152);
  // The extended superblock sits right after the EROFS one, and the device table right after it
  // (devt_slotoff 11 in 128-byte units, as Nydus writes).
  assert.equal(F.RAFS_EXT_SUPERBLOCK_OFFSET, F.SUPERBLOCK_OFFSET + F.SUPERBLOCK_SIZE);
  assert.equal(F.RAFS_DEVICE_TABLE_OFFSET, F.RAFS_EXT_SUPERBLOCK_OFFSET + F.RAFS_EXT_SUPERBLOCK_SIZE);
  assert.equal(F.RAFS_DEVICE_TABLE_OFFSET / F.DEVICE_SLOT_SIZE, 11);
  assert.equal(F.BLOCK_SIZE, 4096);
  assert.equal(F.BLOCK_BITS, 12);
});

test('magics, null address and feature bits', () => {
  assert.equal(F.EROFS_MAGIC, 0xe0f5e1e2);
  assert.equal(F.BLOB_META_MAGIC, 0xb10bb10b);
  assert.equal(F.NULL_ADDR, 0xffffffff);
  assert.equal(F.COMPAT_SB_CHKSUM, 0x1);
  assert.equal(F.COMPAT_MTIME, 0x2);
  assert.equal(F.COMPAT_RAFS_V6, 0x40000000);
  assert.equal(F.INCOMPAT_ZERO_PADDING, 0x1);
  assert.equal(F.INCOMPAT_COMPR_CFGS, 0x2);
  assert.equal(F.INCOMPAT_CHUNKED_FILE, 0x4);
  assert.equal(F.INCOMPAT_DEVICE_TABLE, 0x8);
  assert.equal(F.CHUNK_FORMAT_BLKBITS_MASK, 0x1f);
  assert.equal(F.CHUNK_FORMAT_INDEXES, 0x20);
  assert.deepEqual(
    [F.DataLayout.FlatPlain, F.DataLayout.CompressedFull, F.DataLayout.FlatInline, F.DataLayout.CompressedCompact, F.DataLayout.ChunkBased],
    [0, 1, 2, 3, 4],
  );
});

test('RAFS superblock flags, blob features, compressor and digest ids', () => {
  assert.deepEqual(
    [F.RAFS_COMPRESSION_NONE, F.RAFS_COMPRESSION_LZ4, F.RAFS_HASH_BLAKE3, F.RAFS_HASH_SHA256, F.RAFS_EXPLICIT_UID_GID,
      F.RAFS_HAS_XATTR, F.RAFS_COMPRESSION_GZIP, F.RAFS_COMPRESSION_ZSTD, F.RAFS_INLINED_CHUNK_DIGEST],
    [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100],
  );
  assert.equal(F.BLOB_FEATURE_ALIGNED, 0x1);
  assert.equal(F.BLOB_FEATURE_CHUNK_INFO_V2, 0x4);
  assert.equal(F.BLOB_FEATURE_INLINED_CHUNK_DIGEST, 0x20);
  assert.equal(F.BLOB_FEATURE_HAS_TAR_HEADER, 0x10000000);
  assert.equal(F.BLOB_FEATURE_HAS_TOC, 0x20000000);
  assert.deepEqual([F.Compressor.None, F.Compressor.Lz4Block, F.Compressor.Gzip, F.Compressor.Zstd], [0, 1, 2, 3]);
  assert.deepEqual([F.DigestAlgo.Blake3, F.DigestAlgo.Sha256], [0, 1]);
  assert.equal(F.CHUNK_FLAG_COMPRESSED, 0x1);
});

test('file types: EROFS_FT_* numbers and fileTypeOfMode', () => {
  const cases: Array<[number, F.FileType, number]> = [
    [0o100644, F.FileType.Regular, 1],
    [0o040755, F.FileType.Directory, 2],
    [0o020600, F.FileType.CharDevice, 3],
    [0o060600, F.FileType.BlockDevice, 4],
    [0o010644, F.FileType.Fifo, 5],
    [0o140755, F.FileType.Socket, 6],
    [0o120777, F.FileType.Symlink, 7],
    [0o000644, F.FileType.Unknown, 0],
    [0o170644, F.FileType.Unknown, 0],
  ];
  for (const [mode, type, num] of cases) {
    assert.equal(F.fileTypeOfMode(mode), type, `mode 0${mode.toString(8)}`);
    assert.equal(type as number, num);
  }
});
