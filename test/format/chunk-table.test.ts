// RAFS v6 chunk table entries (80 bytes): digest[32], blob_index @32, flags @36, sizes @40/@44,
// offsets @48/@56, file_offset @64, index @72, crc32 @76.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkTable, decodeChunkTableEntry, encodeChunkTableEntry, CHUNK_TABLE_ENTRY_SIZE, type ChunkTableEntry } from '../../src/format/chunk-table.js';
import { assertOndine, rd32, rd64, wr64, CORRUPT } from './support.js';

const sample: ChunkTableEntry = {
  digest: 'f7e2735f1c6ae9cde91e537416b09d8bb71b306a421d19cc1012a51f93a7fe69',
  blobIndex: 0xfe,
  flags: 1,
  compressedSize: 0xffffffff,
  uncompressedSize: 0x1000000,
  compressedOffset: 2 ** 40 - 1,
  uncompressedOffset: 2 ** 44 - 4096,
  fileOffset: 5 * 2 ** 32,
  index: 0xffffff,
  crc32: 0xe3069283,
};

test('size 80; every field at its offset', () => {
  assert.equal(CHUNK_TABLE_ENTRY_SIZE, 80);
  const buf = Buffer.alloc(80 * 3, 0x77);
  encodeChunkTableEntry(buf, 80, sample);
  const e = buf.subarray(80, 160);
  assert.equal(e.subarray(0, 32).toString('hex'), sample.digest);
  assert.equal(rd32(e, 32), 0xfe);
  assert.equal(rd32(e, 36), 1);
  assert.equal(rd32(e, 40), 0xffffffff);
  assert.equal(rd32(e, 44), 0x1000000);
  assert.equal(rd64(e, 48), BigInt(2 ** 40 - 1));
  assert.equal(rd64(e, 56), BigInt(2 ** 44 - 4096));
  assert.equal(rd64(e, 64), BigInt(5 * 2 ** 32));
  assert.equal(rd32(e, 72), 0xffffff);
  assert.equal(rd32(e, 76), 0xe3069283);
  assert.ok(buf.subarray(0, 80).every((x) => x === 0x77) && buf.subarray(160).every((x) => x === 0x77));
});

test('round trip', () => {
  const buf = Buffer.alloc(160);
  encodeChunkTableEntry(buf, 80, sample);
  assert.deepEqual(decodeChunkTableEntry(buf, 80), sample);
  const zero = { ...sample, digest: '00'.repeat(32), compressedOffset: 0, uncompressedOffset: 0, fileOffset: 0, index: 0, crc32: 0, flags: 0 };
  encodeChunkTableEntry(buf, 0, zero);
  assert.deepEqual(decodeChunkTableEntry(buf, 0), zero);
});

test('refuses truncation and 64-bit offsets beyond 2^53, naming the absolute offset', () => {
  const buf = Buffer.alloc(160);
  encodeChunkTableEntry(buf, 80, sample);
  assertOndine(() => decodeChunkTableEntry(buf.subarray(0, 159), 80), CORRUPT, { structure: 'RAFS chunk table entry', offset: 80 });
  for (const f of [48, 56, 64]) {
    const b = Buffer.from(buf);
    wr64(b, 80 + f, 1n << 63n);
    assertOndine(() => decodeChunkTableEntry(b, 80), CORRUPT, { offset: 80 + f });
  }
});

// The table read in place (ChunkTable): what a mount uses instead of an object per entry.
const entries: ChunkTableEntry[] = [0, 1, 2, 3].map((i) => ({
  ...sample,
  digest: (i + 10).toString(16).repeat(64).slice(0, 64),
  blobIndex: i % 2,
  index: 3 - i,
  compressedOffset: i * 2 ** 33 + 7,
  uncompressedOffset: i * 2 ** 40,
  fileOffset: i,
  flags: i & 1,
}));

test('ChunkTable: each field read in place equals the entry decoded; positionsOf one blob', () => {
  const t = ChunkTable.fromEntries(entries);
  assert.equal(t.count, 4);
  t.check();
  assert.deepEqual(t.entries(), entries);
  entries.forEach((e, i) => {
    assert.deepEqual(t.entry(i), e);
    assert.equal(t.blobIndex(i), e.blobIndex);
    assert.equal(t.flags(i), e.flags);
    assert.equal(t.compressedSize(i), e.compressedSize);
    assert.equal(t.uncompressedSize(i), e.uncompressedSize);
    assert.equal(t.compressedOffset(i), e.compressedOffset);
    assert.equal(t.uncompressedOffset(i), e.uncompressedOffset);
    assert.equal(t.ciIndex(i), e.index);
    assert.equal(Buffer.from(t.digestBytes(i)).toString('hex'), e.digest);
  });
  assert.deepEqual(t.positionsOf(1), [1, 3]);
  assert.deepEqual(t.positionsOf(0), [0, 2]);
  assert.deepEqual(t.positionsOf(7), []);
  // In place: at an offset inside a larger buffer, the digest a view of that buffer.
  const buf = Buffer.alloc(16 + 4 * 80, 0xee);
  buf.set(t.buf, 16);
  const inner = new ChunkTable(buf, 16, 4);
  assert.deepEqual(inner.entries(), entries);
  assert.equal(inner.digestBytes(2).buffer, buf.buffer);
  assert.equal(ChunkTable.EMPTY.count, 0);
  assert.deepEqual(ChunkTable.EMPTY.entries(), []);
});

test('ChunkTable: check() refuses an unsafe 64-bit field as decoding would, naming its offset; a short buffer is refused', () => {
  for (const f of [48, 56, 64]) {
    const buf = Buffer.from(ChunkTable.fromEntries(entries).buf);
    wr64(buf, 2 * 80 + f, 2n ** 53n);
    const t = new ChunkTable(buf, 0, 4);
    assertOndine(() => t.check(), CORRUPT, { structure: 'RAFS chunk table entry', offset: 2 * 80 + f });
    assertOndine(() => decodeChunkTableEntry(buf, 2 * 80), CORRUPT, { offset: 2 * 80 + f });
    // 2^53 - 1 is still a number.
    wr64(buf, 2 * 80 + f, 2n ** 53n - 1n);
    new ChunkTable(buf, 0, 4).check();
  }
  assertOndine(() => new ChunkTable(new Uint8Array(239), 0, 3), CORRUPT, { structure: 'RAFS chunk table' });
});
