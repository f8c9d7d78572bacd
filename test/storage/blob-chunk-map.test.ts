// A blob's chunk map: loaded with one range read of its chunk-info table, digests from the
// table or the bootstrap, cross-checked against the bootstrap, and answering covering()
// exactly (checked against a brute-force scan) on images built by build() and by Nydus.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { BlobChunkMap, loadBlobChunkMap, type BlobChunk } from '../../src/storage/blob-chunk-map.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import type { BlobTableEntry } from '../../src/format/blob-table.js';
import type { ChunkTableEntry } from '../../src/format/chunk-table.js';
import { BLOB_FEATURE_INLINED_CHUNK_DIGEST } from '../../src/format/constants.js';
import {
  buildImage, FIXTURE_BLOB_ID, FIXTURE_BOOT, FIXTURE_DIR, KiB, prng, randomBytes, rejectsWith, ScriptedSource,
  textBytes, throwsWith, type BuiltImage,
} from './support.js';

const CORRUPT = 'ONDINE_ERR_CORRUPT';
const CS = 64 * KiB;

let img: BuiltImage;
let entry: BlobTableEntry;

before(async () => {
  img = await buildImage({
    'a.bin': textBytes(200_000, 1), // 3 full chunks + a 3392-byte tail: a gap before the next chunk
    'b.bin': randomBytes(100 * KiB, 2), // incompressible: stored raw
    'small.txt': 'hello',
  }, { chunkSize: CS });
  assert.equal(img.bootstrap.blobs.length, 1);
  entry = img.bootstrap.blobs[0]!;
});
after(() => img?.cleanup());

function bruteCovering(chunks: readonly BlobChunk[], off: number, len: number): number[] {
  return chunks.filter((c) => c.uncompressedOffset < off + len && c.uncompressedOffset + c.uncompressedSize > off && len > 0).map((c) => c.index);
}

test('built blob: one range read of the chunk-info table, digests inlined and equal to the bootstrap\'s', async () => {
  const src = new LocalDirSource(img.blobDir);
  try {
    assert.ok(entry.features & BLOB_FEATURE_INLINED_CHUNK_DIGEST);
    const map = await loadBlobChunkMap(src, entry, img.bootstrap.chunks);
    assert.equal(src.counters.requests.get(entry.blobId), 1);
    assert.equal(src.counters.bytes.get(entry.blobId), entry.ciCompressedSize);
    assert.equal(map.chunks.length, 7);
    assert.equal(map.blobId, entry.blobId);
    const byIndex = new Map(img.bootstrap.chunks.map((c) => [c.index, c]));
    for (const c of map.chunks) {
      const b = byIndex.get(c.index)!;
      assert.equal(c.digest, b.digest);
      assert.equal(c.compressedOffset, b.compressedOffset);
      assert.equal(c.uncompressedOffset, b.uncompressedOffset);
      assert.equal(c.uncompressedSize, b.uncompressedSize);
    }
    // The same table without the bootstrap's help: digests come from the blob alone.
    const alone = await loadBlobChunkMap(src, entry, []);
    assert.deepEqual(alone.chunks.map((c) => c.digest), map.chunks.map((c) => c.digest));
  } finally {
    await src.close();
  }
});

test('built blob: chunks sorted by uncompressed offset, 4 KiB aligned, sizes as the files were cut', async () => {
  const src = new LocalDirSource(img.blobDir);
  const map = await loadBlobChunkMap(src, entry, img.bootstrap.chunks);
  await src.close();
  assert.deepEqual(map.chunks.map((c) => c.uncompressedSize), [CS, CS, CS, 200_000 - 3 * CS, CS, 100 * KiB - CS, 5]);
  assert.deepEqual(map.chunks.map((c) => c.uncompressedOffset), [0, CS, 2 * CS, 3 * CS, 3 * CS + 4096, 4 * CS + 4096, 4 * CS + 4096 + 36 * KiB]);
  for (const c of map.chunks) assert.equal(c.uncompressedOffset % 4096, 0);
  // Text compresses, random data is stored raw.
  assert.equal(map.chunks[0]!.compressed, true);
  assert.equal(map.chunks[4]!.compressed, false);
  assert.equal(map.chunks[4]!.compressedSize, CS);
});

test('covering(): ranges starting and ending inside chunks, across gaps, past the end', async () => {
  const src = new LocalDirSource(img.blobDir);
  const map = await loadBlobChunkMap(src, entry, img.bootstrap.chunks);
  await src.close();
  const idx = (off: number, len: number) => map.covering(off, len).map((c) => c.index);
  const tailEnd = 3 * CS + (200_000 - 3 * CS); // a.bin's last chunk ends here; the gap runs to 3*CS+4096
  assert.deepEqual(idx(0, 1), [0]);
  assert.deepEqual(idx(CS - 1, 1), [0], 'last byte of the first chunk');
  assert.deepEqual(idx(CS - 1, 2), [0, 1], 'one byte each side of a boundary');
  assert.deepEqual(idx(CS, 1), [1], 'first byte of the second chunk');
  assert.deepEqual(idx(100, 2 * CS), [0, 1, 2], 'start and end inside chunks');
  assert.deepEqual(idx(tailEnd - 1, 1), [3]);
  assert.deepEqual(idx(tailEnd, 10), [], 'inside the alignment gap');
  assert.deepEqual(idx(tailEnd, 3 * CS + 4096 - tailEnd), [], 'the whole gap, ending where the next chunk starts');
  assert.deepEqual(idx(tailEnd, 3 * CS + 4096 - tailEnd + 1), [4], 'from the gap into the next chunk');
  assert.deepEqual(idx(tailEnd - 1, CS + 500), [3, 4], 'across the gap');
  assert.deepEqual(idx(tailEnd - 1, 2 * CS), [3, 4, 5, 6], 'across the gap and to the end');
  assert.deepEqual(idx(0, entry.uncompressedSize), [0, 1, 2, 3, 4, 5, 6], 'the whole blob');
  const last = map.chunks[6]!;
  assert.deepEqual(idx(last.uncompressedOffset + 5, 100), [], 'after the last chunk\'s 5 bytes');
  assert.deepEqual(idx(entry.uncompressedSize, 4096), [], 'at the end of the blob');
  assert.deepEqual(idx(entry.uncompressedSize * 10, 1), [], 'far past the end');
  assert.deepEqual(idx(100, 0), [], 'an empty range overlaps nothing');
  assert.deepEqual(idx(0, 0), []);
});

test('covering(): agrees with a brute-force scan on 2000 random ranges', async () => {
  const src = new LocalDirSource(img.blobDir);
  const map = await loadBlobChunkMap(src, entry, img.bootstrap.chunks);
  await src.close();
  const r = prng(7);
  const span = entry.uncompressedSize + 8192;
  for (let i = 0; i < 2000; i++) {
    const off = Math.floor(r() * span);
    const len = Math.floor(r() * (r() < 0.5 ? 8192 : span));
    assert.deepEqual(map.covering(off, len).map((c) => c.index), bruteCovering(map.chunks, off, len), `covering(${off}, ${len})`);
  }
});

test('position(): a chunk\'s place in offset order', async () => {
  const src = new LocalDirSource(img.blobDir);
  const map = await loadBlobChunkMap(src, entry, img.bootstrap.chunks);
  await src.close();
  map.chunks.forEach((c, i) => assert.equal(map.position(c), i));
});

test('Nydus fixture: v1 table too small for inlined digests, so digests come from the bootstrap', async () => {
  const boot = parseBootstrap(await readFile(FIXTURE_BOOT));
  const e = boot.blobs[0]!;
  assert.equal(e.blobId, FIXTURE_BLOB_ID);
  const src = new LocalDirSource(FIXTURE_DIR);
  try {
    const map = await loadBlobChunkMap(src, e, boot.chunks);
    assert.equal(src.counters.requests.get(FIXTURE_BLOB_ID), 1);
    assert.equal(src.counters.bytes.get(FIXTURE_BLOB_ID), 32, 'two 16-byte v1 entries');
    assert.deepEqual(map.chunks.map((c) => [c.index, c.uncompressedOffset, c.uncompressedSize, c.compressedOffset, c.compressedSize, c.compressed]), [
      [0, 0, 16931, 0, 4828, true],
      [1, 20480, 13400, 4828, 2974, true],
    ]);
    const byIndex = new Map(boot.chunks.map((c) => [c.index, c.digest]));
    for (const c of map.chunks) assert.equal(c.digest, byIndex.get(c.index));
    assert.deepEqual(map.covering(16931, 20480 - 16931).map((c) => c.index), [], 'the gap between the two chunks');
    assert.deepEqual(map.covering(16930, 20480 - 16930 + 1).map((c) => c.index), [0, 1]);
    // Without the bootstrap the fixture's chunks have no digest at all.
    const bare = await loadBlobChunkMap(src, e, []);
    assert.deepEqual(bare.chunks.map((c) => c.digest), [undefined, undefined]);
  } finally {
    await src.close();
  }
});

test('chunk-info table disagreeing with the bootstrap is CorruptError (offsets, sizes, digests)', async () => {
  const src = new LocalDirSource(img.blobDir);
  try {
    const mutate = (i: number, f: (c: ChunkTableEntry) => void): ChunkTableEntry[] =>
      img.bootstrap.chunks.map((c, j) => { const copy = { ...c }; if (j === i) f(copy); return copy; });
    await rejectsWith(() => loadBlobChunkMap(src, entry, mutate(2, (c) => { c.compressedOffset += 1; })), CORRUPT, /disagrees with the bootstrap/);
    await rejectsWith(() => loadBlobChunkMap(src, entry, mutate(3, (c) => { c.uncompressedOffset += 4096; })), CORRUPT, /disagrees/);
    await rejectsWith(() => loadBlobChunkMap(src, entry, mutate(0, (c) => { c.compressedSize -= 1; })), CORRUPT, /disagrees/);
    await rejectsWith(() => loadBlobChunkMap(src, entry, mutate(1, (c) => { c.digest = 'ab'.repeat(32); })), CORRUPT, /digest disagrees/);
    // Chunks of another blob index are not compared.
    await loadBlobChunkMap(src, entry, mutate(1, (c) => { c.blobIndex = 5; c.compressedOffset += 1; }));
  } finally {
    await src.close();
  }
});

test('Nydus fixture: a bootstrap entry that disagrees with the blob\'s table is CorruptError', async () => {
  const boot = parseBootstrap(await readFile(FIXTURE_BOOT));
  const src = new LocalDirSource(FIXTURE_DIR);
  try {
    const chunks = boot.chunks.map((c) => (c.index === 1 ? { ...c, compressedOffset: c.compressedOffset + 16 } : c));
    await rejectsWith(() => loadBlobChunkMap(src, boot.blobs[0]!, chunks), CORRUPT, /chunk 1 .*disagrees/);
  } finally {
    await src.close();
  }
});

test('a chunk-info table damaged in the blob is CorruptError (overlap, size past the blob)', async () => {
  const inner = new LocalDirSource(img.blobDir);
  try {
    // Entry 1's compressed word: make its uncompressed offset equal entry 0's (overlap).
    const overlap = new ScriptedSource(inner);
    overlap.corrupt = (_r, bytes) => { bytes.writeBigUInt64LE(bytes.readBigUInt64LE(16) & ~0xfff_ffff_f000n, 16); };
    await rejectsWith(() => loadBlobChunkMap(overlap, entry, []), CORRUPT, /overlaps/);
    // The last entry's uncompressed offset pushed far past the blob's uncompressed size.
    const past = new ScriptedSource(inner);
    past.corrupt = (_r, bytes) => { const at = 6 * 16; bytes.writeBigUInt64LE(bytes.readBigUInt64LE(at) | 0x0_0fff_0000_0000n, at); };
    await rejectsWith(() => loadBlobChunkMap(past, entry, []), CORRUPT, /past the blob's uncompressed size/);
  } finally {
    await inner.close();
  }
});

test('a table too short for its entry count, or implausibly large, is CorruptError', async () => {
  const src = new LocalDirSource(img.blobDir);
  try {
    await rejectsWith(() => loadBlobChunkMap(src, { ...entry, chunkCount: entry.chunkCount + 100 }, []), CORRUPT, /do not fit/);
    const before = src.counters.requests.get(entry.blobId) ?? 0;
    await rejectsWith(() => loadBlobChunkMap(src, { ...entry, ciCompressedSize: 1 << 30, ciUncompressedSize: 1 << 30 }, []), CORRUPT, /implausible/);
    assert.equal(src.counters.requests.get(entry.blobId) ?? 0, before, 'nothing read for an implausible table');
  } finally {
    await src.close();
  }
});

test('a blob without a chunk-info table is mapped from the bootstrap\'s chunk table alone', async () => {
  const src = new LocalDirSource(img.blobDir);
  try {
    const map = await loadBlobChunkMap(src, { ...entry, ciCompressedSize: 0, ciUncompressedSize: 0 }, img.bootstrap.chunks);
    assert.equal(src.counters.requests.size, 0, 'no read at all');
    assert.equal(map.chunks.length, 7);
    const byIndex = new Map(img.bootstrap.chunks.map((c) => [c.index, c]));
    for (const c of map.chunks) {
      assert.equal(c.digest, byIndex.get(c.index)!.digest);
      assert.equal(c.compressed, (byIndex.get(c.index)!.flags & 1) === 1);
    }
  } finally {
    await src.close();
  }
});

test('a missing blob is NotFoundError', async () => {
  const src = new LocalDirSource(img.blobDir);
  try {
    await rejectsWith(() => loadBlobChunkMap(src, { ...entry, blobId: 'f'.repeat(64) }, []), 'ONDINE_ERR_NOT_FOUND');
  } finally {
    await src.close();
  }
});

test('BlobChunkMap refuses chunks that overlap, overrun the blob, or have absurd sizes', () => {
  const e: BlobTableEntry = { ...entryShape(), uncompressedSize: 3 * 4096, compressedSize: 10_000 };
  const c = (index: number, uoff: number, usize: number, coff = index * 100, csize = 100): BlobChunk =>
    ({ index, uncompressedOffset: uoff, uncompressedSize: usize, compressedOffset: coff, compressedSize: csize, compressed: true, digest: undefined });
  assert.equal(new BlobChunkMap(e, [c(1, 4096, 4096), c(0, 0, 4096)]).chunks[0]!.index, 0, 'sorted on construction');
  throwsWith(() => new BlobChunkMap(e, [c(0, 0, 8192), c(1, 4096, 4096)]), CORRUPT, /overlaps/);
  throwsWith(() => new BlobChunkMap(e, [c(0, 8192, 8192)]), CORRUPT, /past the blob's uncompressed size/);
  throwsWith(() => new BlobChunkMap(e, [c(0, 0, 4096, 9_950, 100)]), CORRUPT, /compressed range past/);
  throwsWith(() => new BlobChunkMap(e, [c(0, 0, 0)]), CORRUPT, /out of range/);
  throwsWith(() => new BlobChunkMap({ ...e, uncompressedSize: 1 << 30 }, [c(0, 0, (16 << 20) + 1)]), CORRUPT, /out of range/);
});

function entryShape(): BlobTableEntry {
  return {
    blobId: 'a'.repeat(64), blobIndex: 0, chunkSize: 4096, chunkCount: 0, compressor: 3, digester: 0, features: 0,
    compressedSize: 0, uncompressedSize: 0, tocSize: 0, ciCompressor: 0, ciOffset: 0, ciCompressedSize: 0,
    ciUncompressedSize: 0, tocDigest: '', metaDigest: '', metaSize: 0,
  };
}

