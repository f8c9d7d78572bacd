// The 4096-byte chunk-info header at the end of a blob's meta section: magic at both ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBlobMetaHeader, encodeBlobMetaHeader, type BlobMetaHeader } from '../../src/format/blob-meta-header.js';
import { BLOB_META_HEADER_SIZE, BLOB_META_MAGIC } from '../../src/format/constants.js';
import { assertOndine, rd32, rd64, wr64, CORRUPT } from './support.js';

const sample: BlobMetaHeader = {
  features: 0x70000025,
  ciCompressor: 3,
  ciEntries: 0xffffffff,
  ciOffset: 2 ** 45 + 8314,
  ciCompressedSize: 2 ** 33,
  ciUncompressedSize: 24 * 0xffffffff,
};

test('4096 bytes; magic @0 and @4092, fields @4/@8/@12/@16/@24/@32, the rest zero', () => {
  assert.equal(BLOB_META_HEADER_SIZE, 4096);
  const b = encodeBlobMetaHeader(sample);
  assert.equal(b.length, 4096);
  assert.equal(rd32(b, 0), BLOB_META_MAGIC);
  assert.equal(rd32(b, 4092), BLOB_META_MAGIC);
  assert.equal(rd32(b, 4), 0x70000025);
  assert.equal(rd32(b, 8), 3);
  assert.equal(rd32(b, 12), 0xffffffff);
  assert.equal(rd64(b, 16), BigInt(2 ** 45 + 8314));
  assert.equal(rd64(b, 24), BigInt(2 ** 33));
  assert.equal(rd64(b, 32), BigInt(24 * 0xffffffff));
  assert.ok(b.subarray(40, 4092).every((x) => x === 0));
});

test('round trip, at an offset inside a larger buffer', () => {
  const buf = Buffer.concat([Buffer.alloc(100, 1), encodeBlobMetaHeader(sample), Buffer.alloc(7)]);
  assert.deepEqual(decodeBlobMetaHeader(buf, 100), sample);
});

test('either magic wrong, truncation or a huge u64 is corrupt, with the absolute offset', () => {
  const h = encodeBlobMetaHeader(sample);
  for (const at of [0, 3, 4092, 4095]) {
    const b = Buffer.from(h);
    b[at] ^= 0x40;
    assertOndine(() => decodeBlobMetaHeader(b, 0, 50_000), CORRUPT, { structure: 'blob chunk-info header', offset: 50_000, message: /bad magic/ });
  }
  assertOndine(() => decodeBlobMetaHeader(h.subarray(0, 4095)), CORRUPT, { offset: 0 });
  assertOndine(() => decodeBlobMetaHeader(h.subarray(0, 4095), 0, 8346), CORRUPT, { offset: 8346 });
  const b = Buffer.from(h);
  wr64(b, 24, 1n << 63n);
  assertOndine(() => decodeBlobMetaHeader(b, 0, 1000), CORRUPT, { offset: 1000 + 24 });
});
