// 8-byte chunk indexes {advise u16, device_id u16, blkaddr u32} with Nydus's 24-bit blob
// chunk-info index hidden in advise (low 16 bits) and the high byte of device_id (bits 16-23).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeChunkIndex, decodeChunkIndex, isHole, chunkBitsFor, HOLE, CHUNK_INDEX_SIZE } from '../../src/format/chunk-index.js';
import { NULL_ADDR } from '../../src/format/constants.js';
import { assertOndine, rd16, rd32, CORRUPT, INVALID } from './support.js';

test('size 8; device id in the low byte of the second u16; blkaddr u32 @4', () => {
  assert.equal(CHUNK_INDEX_SIZE, 8);
  const b = Buffer.alloc(24, 0x5c);
  encodeChunkIndex(b, 8, { deviceId: 1, blkaddr: 5, blobCiIndex: 0 });
  assert.deepEqual([...b.subarray(8, 16)], [0, 0, 1, 0, 5, 0, 0, 0]);
  assert.ok(b.subarray(0, 8).every((x) => x === 0x5c) && b.subarray(16).every((x) => x === 0x5c));
});

test('24-bit ci index split exactly as Nydus: low 16 bits in advise, bits 16-23 in device_id\'s high byte', () => {
  const cases: Array<[number, number, number, number]> = [
    // ci index, device, expected advise, expected device_id u16
    [0x000000, 1, 0x0000, 0x0001],
    [0x00ffff, 2, 0xffff, 0x0002],
    [0x010000, 3, 0x0000, 0x0103],
    [0xabcdef, 0x7f, 0xcdef, 0xab7f],
    [0xffffff, 0xff, 0xffff, 0xffff],
    [0x123456, 0, 0x3456, 0x1200],
  ];
  const b = Buffer.alloc(8);
  for (const [ci, dev, advise, devField] of cases) {
    encodeChunkIndex(b, 0, { deviceId: dev, blkaddr: 0xfffffffe, blobCiIndex: ci });
    assert.equal(rd16(b, 0), advise, `advise for ${ci.toString(16)}`);
    assert.equal(rd16(b, 2), devField, `device_id for ${ci.toString(16)}`);
    assert.equal(rd32(b, 4), 0xfffffffe);
    assert.deepEqual(decodeChunkIndex(b, 0), { deviceId: dev, blkaddr: 0xfffffffe, blobCiIndex: ci });
  }
});

test('decode of raw bytes written by hand (as Nydus would write index 0x020001 on device 1, blkaddr 9)', () => {
  const b = Buffer.from([0x01, 0x00, 0x01, 0x02, 0x09, 0x00, 0x00, 0x00]);
  assert.deepEqual(decodeChunkIndex(b, 0), { deviceId: 1, blobCiIndex: 0x020001, blkaddr: 9 });
});

test('holes', () => {
  const b = Buffer.alloc(8);
  encodeChunkIndex(b, 0, HOLE);
  assert.equal(rd32(b, 4), NULL_ADDR);
  assert.equal(isHole(decodeChunkIndex(b, 0)), true);
  assert.equal(isHole({ deviceId: 1, blkaddr: 0, blobCiIndex: 0 }), false);
  assert.ok(Object.isFrozen(HOLE));
});

test('encode refuses a ci index over 24 bits, a device over 8 bits, a bad blkaddr; decode refuses truncation', () => {
  const b = Buffer.alloc(8);
  assertOndine(() => encodeChunkIndex(b, 0, { deviceId: 1, blkaddr: 0, blobCiIndex: 0x1000000 }), INVALID);
  assertOndine(() => encodeChunkIndex(b, 0, { deviceId: 256, blkaddr: 0, blobCiIndex: 0 }), INVALID);
  assertOndine(() => encodeChunkIndex(b, 0, { deviceId: 1, blkaddr: 2 ** 32, blobCiIndex: 0 }), INVALID);
  assertOndine(() => encodeChunkIndex(b, 0, { deviceId: 1, blkaddr: -1, blobCiIndex: 0 }), INVALID);
  assertOndine(() => decodeChunkIndex(Buffer.alloc(15), 8), CORRUPT, { structure: 'EROFS chunk index', offset: 8 });
});

test('chunkBitsFor: log2(chunk size) - block bits', () => {
  assert.equal(chunkBitsFor(4096, 12), 0);
  assert.equal(chunkBitsFor(1 << 20, 12), 8);
  assert.equal(chunkBitsFor(2 ** 43, 12), 31);
  for (const bad of [2048, 3 * 4096, 2 ** 44, 0]) assertOndine(() => chunkBitsFor(bad, 12), INVALID);
});
