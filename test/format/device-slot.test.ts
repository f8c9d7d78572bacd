// EROFS device table slots: tag[64] (the blob id), blocks u32 @64, mapped_blkaddr u32 @68.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeDeviceSlot, encodeDeviceSlot, DEVICE_SLOT_SIZE, DEVICE_TAG_SIZE } from '../../src/format/device-slot.js';
import { assertOndine, rd32, CORRUPT, INVALID, BLOB_ID } from './support.js';

test('size 128, tag 64; fields at their offsets; rest of the slot zero', () => {
  assert.equal(DEVICE_SLOT_SIZE, 128);
  assert.equal(DEVICE_TAG_SIZE, 64);
  const buf = Buffer.alloc(128 * 3, 0xcc);
  encodeDeviceSlot(buf, 128, { tag: BLOB_ID, blocks: 0xffffffff, mappedBlkaddr: 0x200 });
  const s = buf.subarray(128, 256);
  assert.equal(s.subarray(0, 64).toString('latin1'), BLOB_ID);
  assert.equal(rd32(s, 64), 0xffffffff);
  assert.equal(rd32(s, 68), 0x200);
  assert.ok(s.subarray(72).every((x) => x === 0));
  assert.ok(buf.subarray(0, 128).every((x) => x === 0xcc) && buf.subarray(256).every((x) => x === 0xcc), 'neighbours untouched');
});

test('round trip with a full 64-char tag, a short tag and an empty one', () => {
  const buf = Buffer.alloc(512);
  for (const d of [
    { tag: BLOB_ID, blocks: 9, mappedBlkaddr: 512 },
    { tag: 'short', blocks: 0, mappedBlkaddr: 0xffffffff },
    { tag: '', blocks: 1, mappedBlkaddr: 0 },
  ]) {
    encodeDeviceSlot(buf, 256, d);
    assert.deepEqual(decodeDeviceSlot(buf, 256), d);
  }
});

test('refuses a tag over 64 bytes and a truncated slot', () => {
  assertOndine(() => encodeDeviceSlot(Buffer.alloc(128), 0, { tag: 'x'.repeat(65), blocks: 0, mappedBlkaddr: 0 }), INVALID);
  assertOndine(() => decodeDeviceSlot(Buffer.alloc(255), 128), CORRUPT, { structure: 'EROFS device slot', offset: 128 });
});
