// RAFS v6 blob table entries (256 bytes), every field at the offset image-format.md documents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBlobTableEntry, encodeBlobTableEntry, BLOB_TABLE_ENTRY_SIZE, type BlobTableEntry } from '../../src/format/blob-table.js';
import { assertOndine, rd32, rd64, wr64, CORRUPT, INVALID, BLOB_ID } from './support.js';

const sample: BlobTableEntry = {
  blobId: BLOB_ID,
  blobIndex: 3,
  chunkSize: 0x100000,
  chunkCount: 0xffffffff,
  compressor: 3,
  digester: 1,
  features: 0x70000021,
  compressedSize: 2 ** 33 + 1,
  uncompressedSize: 2 ** 40,
  tocSize: 1024,
  ciCompressor: 1,
  ciOffset: 2 ** 36 + 8314,
  ciCompressedSize: 0x1234,
  ciUncompressedSize: 0x5678,
  tocDigest: 'cfc89ed0739aef4eb1bf0904f0dfdb1c857134eca7319465baae95a99b84acde',
  metaDigest: '11'.repeat(32),
  metaSize: 4096 + 0x5678,
};

test('size 256; every field at its documented offset', () => {
  assert.equal(BLOB_TABLE_ENTRY_SIZE, 256);
  const buf = Buffer.alloc(768, 0x99);
  encodeBlobTableEntry(buf, 256, sample);
  const e = buf.subarray(256, 512);
  assert.equal(e.subarray(0, 64).toString('latin1'), BLOB_ID);
  assert.equal(rd32(e, 64), 3);
  assert.equal(rd32(e, 68), 0x100000);
  assert.equal(rd32(e, 72), 0xffffffff);
  assert.equal(rd32(e, 76), 3);
  assert.equal(rd32(e, 80), 1);
  assert.equal(rd32(e, 84), 0x70000021);
  assert.equal(rd64(e, 88), BigInt(2 ** 33 + 1));
  assert.equal(rd64(e, 96), BigInt(2 ** 40));
  assert.equal(rd32(e, 104), 1024);
  assert.equal(rd32(e, 108), 1);
  assert.equal(rd64(e, 112), BigInt(2 ** 36 + 8314));
  assert.equal(rd64(e, 120), 0x1234n);
  assert.equal(rd64(e, 128), 0x5678n);
  assert.equal(e.subarray(136, 168).toString('hex'), sample.tocDigest);
  assert.equal(e.subarray(168, 200).toString('hex'), sample.metaDigest);
  assert.equal(rd64(e, 200), BigInt(4096 + 0x5678));
  assert.ok(e.subarray(208).every((x) => x === 0), 'reserved tail zero');
  assert.ok(buf.subarray(0, 256).every((x) => x === 0x99) && buf.subarray(512).every((x) => x === 0x99));
});

test('round trip; empty digests decode as zeros', () => {
  const buf = Buffer.alloc(512);
  encodeBlobTableEntry(buf, 256, sample);
  assert.deepEqual(decodeBlobTableEntry(buf, 256), sample);
  encodeBlobTableEntry(buf, 0, { ...sample, blobId: 'abc', tocDigest: '', metaDigest: '' });
  const d = decodeBlobTableEntry(buf, 0);
  assert.equal(d.blobId, 'abc');
  assert.equal(d.tocDigest, '00'.repeat(32));
  assert.equal(d.metaDigest, '00'.repeat(32));
});

test('refuses a long blob id, truncation and u64s beyond 2^53', () => {
  assertOndine(() => encodeBlobTableEntry(Buffer.alloc(256), 0, { ...sample, blobId: BLOB_ID + 'x' }), INVALID);
  const buf = Buffer.alloc(512);
  encodeBlobTableEntry(buf, 256, sample);
  assertOndine(() => decodeBlobTableEntry(buf.subarray(0, 511), 256), CORRUPT, { structure: 'RAFS blob table entry', offset: 256 });
  for (const f of [88, 96, 112, 120, 128, 200]) {
    const b = Buffer.from(buf);
    wr64(b, 256 + f, 1n << 62n);
    assertOndine(() => decodeBlobTableEntry(b, 256), CORRUPT, { offset: 256 + f });
  }
});
