// Compatibility with images made by Nydus's own builder: the RAFS v6 bootstrap, its data blob
// (chunk-info header, v1 chunk infos, chunk data, TOC and tar headers) and the TOC sample blob,
// decoded with src/format and cross-checked against each other, sha256, blake3 and zstd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { decompress } from 'zstd-napi';
import { blake3 } from '@noble/hashes/blake3.js';
import { parseBootstrap, type Bootstrap } from '../../src/format/bootstrap.js';
import {
  BLOB_FEATURE_ALIGNED, BLOB_FEATURE_CHUNK_INFO_V2, BLOB_FEATURE_HAS_TAR_HEADER, BLOB_FEATURE_HAS_TOC,
  BLOB_FEATURE_INLINED_CHUNK_DIGEST, BLOB_META_MAGIC, CHUNK_FLAG_COMPRESSED, COMPAT_RAFS_V6, COMPAT_SB_CHKSUM, Compressor,
  DataLayout, DigestAlgo, INCOMPAT_CHUNKED_FILE, INCOMPAT_DEVICE_TABLE, RAFS_COMPRESSION_GZIP, RAFS_COMPRESSION_LZ4,
  RAFS_COMPRESSION_NONE, RAFS_COMPRESSION_ZSTD, RAFS_EXPLICIT_UID_GID, RAFS_HAS_XATTR, RAFS_HASH_BLAKE3, RAFS_HASH_SHA256,
  RAFS_INLINED_CHUNK_DIGEST, S_IFDIR, S_IFMT, S_IFREG,
} from '../../src/format/constants.js';
import { decodeBlobMetaHeader } from '../../src/format/blob-meta-header.js';
import { decodeChunkInfoV1, CHUNK_INFO_V1_SIZE } from '../../src/format/chunk-info.js';
import { decodeToc, tarHeaderName, tarHeaderSize, TAR_HEADER_SIZE, TOC_ENTRY_SIZE } from '../../src/format/toc.js';
import { assertOndine, fixture, rd32, wr64, BOOT_NAME, BLOB_ID, TOC_BLOB_NAME, CORRUPT } from './support.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const boot = fixture(BOOT_NAME);
const blob = fixture(BLOB_ID);
const tocBlob = fixture(TOC_BLOB_NAME);

/** Sections of a tar-structured blob, found from its end: each section is followed by its header. */
function tarSections(buf: Buffer): Array<{ name: string; offset: number; size: number; header: number }> {
  const out: Array<{ name: string; offset: number; size: number; header: number }> = [];
  let end = buf.length;
  while (end > 0) {
    const header = end - TAR_HEADER_SIZE;
    assert.ok(header >= 0, 'a tar header before every section');
    const h = buf.subarray(header, end);
    const size = tarHeaderSize(h, header);
    assert.ok(size <= header, `section of ${size} bytes fits before its header at ${header}`);
    out.unshift({ name: tarHeaderName(h, header), offset: header - size, size, header });
    end = header - size;
  }
  return out;
}

test('fixture files are the documented sizes', () => {
  assert.equal(boot.length, 20480);
  assert.equal(blob.length, 14554);
  assert.equal(tocBlob.length, 10034);
});

test('bootstrap superblock fields', () => {
  const b = parseBootstrap(boot);
  assert.equal(b.blockSize, 4096);
  assert.equal(b.sb.blkszbits, 12);
  assert.equal(b.sb.featureCompat, COMPAT_RAFS_V6, 'RAFS v6, no superblock checksum');
  assert.equal(b.sb.featureCompat & COMPAT_SB_CHKSUM, 0);
  assert.equal(b.sb.featureIncompat, INCOMPAT_CHUNKED_FILE | INCOMPAT_DEVICE_TABLE);
  assert.equal(b.sb.rootNid, 128);
  assert.equal(b.sb.inos, 3);
  assert.equal(b.sb.blocks, 9);
  assert.equal(b.sb.metaBlkaddr, 2);
  assert.equal(b.sb.xattrBlkaddr, 0);
  assert.equal(b.sb.extraDevices, 1);
  assert.equal(b.sb.devtSlotoff, 11);
  assert.equal(b.sb.buildTime, 0);
  assert.equal(b.isRafs, true);
  assert.equal(rd32(boot, 1024), 0xe0f5e1e2);
});

test('RAFS extended superblock: zstd, blake3, explicit uid/gid, inlined chunk digest', () => {
  const r = parseBootstrap(boot).rafs!;
  assert.equal(r.flags, RAFS_COMPRESSION_ZSTD | RAFS_HASH_BLAKE3 | RAFS_EXPLICIT_UID_GID | RAFS_INLINED_CHUNK_DIGEST);
  for (const off of [RAFS_COMPRESSION_NONE, RAFS_COMPRESSION_LZ4, RAFS_COMPRESSION_GZIP, RAFS_HASH_SHA256, RAFS_HAS_XATTR]) {
    assert.equal(r.flags & off, 0, `flag 0x${off.toString(16)} clear`);
  }
  assert.equal(r.chunkSize, 1 << 20);
  assert.equal(r.blobTableOffset, 4096);
  assert.equal(r.blobTableSize, 256);
  assert.equal(r.chunkTableOffset, 16384);
  assert.equal(r.chunkTableSize, 2 * 80);
  assert.equal(r.prefetchTableOffset, 0);
  assert.equal(r.prefetchTableSize, 0);
});

test('one blob, whose id is the device tag and the blob file\'s name', () => {
  const b = parseBootstrap(boot);
  assert.equal(b.devices.length, 1);
  assert.equal(b.blobs.length, 1);
  const [dev] = b.devices;
  const [e] = b.blobs;
  assert.equal(dev!.tag, BLOB_ID);
  assert.equal(e!.blobId, BLOB_ID);
  assert.equal(b.blobIdOfDevice(1), BLOB_ID);
  assert.equal(dev!.blocks * 4096, e!.uncompressedSize, 'device size is the uncompressed blob');
  assert.equal(e!.blobIndex, 0);
  assert.equal(e!.chunkSize, 1 << 20);
  assert.equal(e!.chunkCount, 2);
  assert.equal(e!.compressor, Compressor.Zstd);
  assert.equal(e!.digester, DigestAlgo.Blake3);
  for (const f of [BLOB_FEATURE_ALIGNED, BLOB_FEATURE_INLINED_CHUNK_DIGEST, BLOB_FEATURE_HAS_TAR_HEADER, BLOB_FEATURE_HAS_TOC]) {
    assert.equal(e!.features & f, f, `feature 0x${f.toString(16)}`);
  }
  assert.equal(e!.features & BLOB_FEATURE_CHUNK_INFO_V2, 0, 'chunk info v1');
  assert.equal(e!.compressedSize, blob.length);
  assert.equal(e!.uncompressedSize, 36864);
  assert.equal(e!.ciCompressor, Compressor.None);
  assert.equal(e!.ciOffset, 8314);
  assert.equal(e!.ciCompressedSize, 2 * CHUNK_INFO_V1_SIZE);
  assert.equal(e!.ciUncompressedSize, 2 * CHUNK_INFO_V1_SIZE);
  assert.equal(e!.tocSize, TOC_ENTRY_SIZE * 4 + TAR_HEADER_SIZE);
  assert.equal(e!.tocDigest, sha256(blob.subarray(blob.length - e!.tocSize)), 'TOC digest covers the TOC and its tar header');
  assert.notEqual(sha256(blob), BLOB_ID, 'this sample blob is not named by its digest');
});

test('chunk table read in place: the parse itself refuses an entry whose 64-bit field is past 2^53', () => {
  const b = parseBootstrap(boot);
  assert.equal(b.chunkTable.count, 2);
  for (const field of [48, 56, 64]) {
    const bad = Buffer.from(boot);
    const at = b.rafs!.chunkTableOffset + 80 + field;
    wr64(bad, at, 1n << 60n);
    assertOndine(() => parseBootstrap(bad), CORRUPT, { structure: 'RAFS chunk table entry', offset: at });
  }
});

test('chunk table: two compressed chunks whose blake3 digests match the decompressed data', () => {
  const b = parseBootstrap(boot);
  assert.equal(b.chunks.length, 2);
  const byIndex = [...b.chunks].sort((x, y) => x.index - y.index);
  assert.deepEqual(byIndex.map((c) => c.index), [0, 1]);
  assert.deepEqual(byIndex.map((c) => [c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize]),
    [[0, 4828, 0, 16931], [4828, 2974, 20480, 13400]]);
  for (const c of b.chunks) {
    assert.equal(c.blobIndex, 0);
    assert.equal(c.flags & CHUNK_FLAG_COMPRESSED, CHUNK_FLAG_COMPRESSED);
    assert.equal(c.fileOffset, 0);
    assert.equal(c.uncompressedOffset % 4096, 0);
    const data = decompress(blob.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize));
    assert.equal(data.length, c.uncompressedSize);
    assert.equal(hexOf(blake3(data)), c.digest, `chunk ${c.index}`);
  }
});

test('file tree: /lib.rs (16931 bytes) and /sync_io.rs (13400 bytes)', () => {
  const b = parseBootstrap(boot);
  const tree = [...b.walk()].map(({ path, ino }) => ({ path, size: ino.size, type: ino.mode & S_IFMT, nid: ino.nid }));
  assert.deepEqual(tree.map((t) => t.path), ['/', '/lib.rs', '/sync_io.rs']);
  assert.equal(tree[0]!.type, S_IFDIR);
  assert.equal(tree[0]!.nid, 128);
  assert.deepEqual(tree.slice(1).map((t) => [t.size, t.type]), [[16931, S_IFREG], [13400, S_IFREG]]);
  const root = b.inode(128);
  assert.equal(root.layout, DataLayout.FlatInline);
  assert.deepEqual(b.readDir(root).map((e) => [e.name.toString(), e.nid]), [['.', 128], ['..', 128], ['lib.rs', 133], ['sync_io.rs', 136]]);
  for (const { ino } of b.walk()) {
    assert.equal(ino.uid, 0);
    assert.equal(ino.gid, 0);
    assert.equal(ino.xattrs.size, 0);
  }
});

test('chunk maps: device 1, blkaddr 0 and 5, ci index 0 and 1, agreeing with the chunk table', () => {
  const b = parseBootstrap(boot);
  const maps = ['/lib.rs', '/sync_io.rs'].map((p) => b.chunkMap(b.lookup(p)));
  assert.deepEqual(maps, [
    [{ index: 0, fileOffset: 0, length: 16931, chunk: { deviceId: 1, blkaddr: 0, blobCiIndex: 0 } }],
    [{ index: 0, fileOffset: 0, length: 13400, chunk: { deviceId: 1, blkaddr: 5, blobCiIndex: 1 } }],
  ]);
  for (const [m] of maps) {
    const c = b.chunks.find((x) => x.index === m!.chunk.blobCiIndex)!;
    assert.equal(c.uncompressedOffset, m!.chunk.blkaddr * 4096);
    assert.equal(c.uncompressedSize, m!.length);
  }
  assert.equal(b.inodeChunkSize(b.lookup('/lib.rs')), 1 << 20);
});

test('blob: chunk-info header after the chunk-info array, magic at both ends, 2 entries, v1', () => {
  const e = parseBootstrap(boot).blobs[0]!;
  const at = e.ciOffset + e.ciCompressedSize;
  assert.equal(rd32(blob, at), BLOB_META_MAGIC);
  assert.equal(rd32(blob, at + 4092), BLOB_META_MAGIC);
  const h = decodeBlobMetaHeader(blob, at);
  assert.equal(h.ciEntries, 2);
  assert.equal(h.ciEntries, e.chunkCount);
  assert.equal(h.features & BLOB_FEATURE_CHUNK_INFO_V2, 0);
  assert.equal(h.features, e.features);
  assert.equal(h.ciCompressor, Compressor.None);
  assert.equal(h.ciOffset, e.ciOffset);
  assert.equal(h.ciCompressedSize, e.ciCompressedSize);
  assert.equal(h.ciUncompressedSize, e.ciUncompressedSize);
});

test('blob: both v1 chunk infos agree with the bootstrap\'s chunk table', () => {
  const b = parseBootstrap(boot);
  const e = b.blobs[0]!;
  for (let i = 0; i < e.chunkCount; i++) {
    const ci = decodeChunkInfoV1(blob, e.ciOffset + i * CHUNK_INFO_V1_SIZE, 0);
    const c = b.chunks.find((x) => x.index === i)!;
    assert.deepEqual(ci, {
      compressedOffset: c.compressedOffset, compressedSize: c.compressedSize,
      uncompressedOffset: c.uncompressedOffset, uncompressedSize: c.uncompressedSize, compressed: true,
    }, `chunk ${i}`);
  }
});

test('blob: tar sections from the end name image.blob, blob.meta, blob.digest, rafs.blob.toc', () => {
  const s = tarSections(blob);
  assert.deepEqual(s.map((x) => [x.name, x.offset, x.size]), [
    ['image.blob', 0, 7802], ['blob.meta', 8314, 32 + 4096], ['blob.digest', 12954, 64], ['rafs.blob.toc', 13530, 512],
  ]);
  // blob.digest holds each chunk's blake3 digest in chunk-info order.
  const b = parseBootstrap(boot);
  const digests = blob.subarray(12954, 12954 + 64);
  for (const c of b.chunks) assert.equal(hexOf(digests.subarray(c.index * 32, c.index * 32 + 32)), c.digest);
});

test('blob: TOC entries and their digests', () => {
  const tocEnd = blob.length - TAR_HEADER_SIZE;
  const size = tarHeaderSize(blob.subarray(tocEnd), tocEnd);
  const toc = decodeToc(blob.subarray(tocEnd - size, tocEnd), tocEnd - size);
  assert.deepEqual(toc.map((t) => t.name), ['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest']);
  const get = (n: string) => toc.find((t) => t.name === n)!;
  for (const n of ['blob.meta', 'blob.meta.header', 'blob.digest']) {
    const t = get(n);
    assert.equal(t.flags, 1, `${n} stored uncompressed`);
    assert.equal(t.compressedSize, t.uncompressedSize);
    assert.equal(sha256(blob.subarray(t.compressedOffset, t.compressedOffset + t.compressedSize)), t.uncompressedDigest, n);
  }
  assert.deepEqual([get('blob.meta').compressedOffset, get('blob.meta').compressedSize], [8314, 32]);
  assert.deepEqual([get('blob.meta.header').compressedOffset, get('blob.meta.header').compressedSize], [8346, 4096]);
  assert.deepEqual([get('blob.digest').compressedOffset, get('blob.digest').compressedSize], [12954, 64]);
  // Nydus's image.blob entry is odd: compressed_offset holds where the data ends (its tar header),
  // the digest covers the data plus that header, uncompressed_size is the uncompressed blob.
  const img = get('image.blob');
  assert.deepEqual([img.compressedOffset, img.compressedSize, img.uncompressedSize], [7802, 7802, 36864]);
  assert.equal(sha256(blob.subarray(0, 7802 + TAR_HEADER_SIZE)), img.uncompressedDigest);
});

test('TOC blob: sha256 equals its name; sections and TOC entries verify', () => {
  assert.equal(`toc-${sha256(tocBlob)}`, TOC_BLOB_NAME);
  const s = tarSections(tocBlob);
  assert.deepEqual(s.map((x) => [x.name, x.offset, x.size]), [
    ['image.blob', 0, 2829], ['blob.meta', 3341, 48 + 4096], ['image.boot', 7997, 501], ['rafs.blob.toc', 9010, 512],
  ]);
  const tocSec = s.at(-1)!;
  const toc = decodeToc(tocBlob.subarray(tocSec.offset, tocSec.offset + tocSec.size), tocSec.offset);
  assert.deepEqual(toc.map((t) => [t.name, t.flags]), [['image.blob', 1], ['blob.meta', 1], ['blob.meta.header', 1], ['image.boot', 2]]);
  for (const t of toc.filter((x) => x.flags === 1 && x.name !== 'image.blob')) {
    assert.equal(sha256(tocBlob.subarray(t.compressedOffset, t.compressedOffset + t.compressedSize)), t.uncompressedDigest, t.name);
  }
  const img = toc[0]!;
  assert.equal(sha256(tocBlob.subarray(0, img.compressedSize + TAR_HEADER_SIZE)), img.uncompressedDigest);
  const h = decodeBlobMetaHeader(tocBlob, 3341 + 48);
  assert.deepEqual([h.ciEntries, h.ciOffset, h.ciCompressedSize, h.features & BLOB_FEATURE_CHUNK_INFO_V2], [3, 3341, 48, 0]);
});

test('TOC blob: the zstd image.boot section is a bootstrap whose chunk table matches the blob\'s chunk infos', () => {
  const e = decodeToc(tocBlob.subarray(9010, 9522), 9010).find((t) => t.name === 'image.boot')!;
  const raw = decompress(tocBlob.subarray(e.compressedOffset, e.compressedOffset + e.compressedSize));
  assert.equal(raw.length, e.uncompressedSize);
  assert.equal(sha256(raw), e.uncompressedDigest);
  const b: Bootstrap = parseBootstrap(raw);
  assert.deepEqual([...b.walk()].map(({ path, ino }) => [path, ino.size]), [['/', 86], ['/error.rs', 2816], ['/lib.rs', 678], ['/logger.rs', 3115]]);
  const be = b.blobs[0]!;
  assert.equal(b.blobIdOfDevice(1), be.blobId);
  assert.equal(be.compressedSize, 2829, 'the blob table counts chunk data only');
  assert.equal(be.ciOffset, 3341);
  assert.equal(b.chunks.length, 3);
  for (const c of b.chunks) {
    const ci = decodeChunkInfoV1(tocBlob, be.ciOffset + c.index * CHUNK_INFO_V1_SIZE);
    assert.deepEqual([ci.compressedOffset, ci.compressedSize, ci.uncompressedOffset, ci.uncompressedSize],
      [c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize]);
    const data = decompress(tocBlob.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize));
    assert.equal(hexOf(blake3(data)), c.digest);
  }
  for (const { path, ino } of b.walk()) {
    if (path === '/') continue;
    const [m] = b.chunkMap(ino);
    const c = b.chunks.find((x) => x.index === m!.chunk.blobCiIndex)!;
    assert.equal(c.uncompressedOffset, m!.chunk.blkaddr * 4096, path);
    assert.equal(c.uncompressedSize, ino.size, path);
  }
});
