// Nydus RAFS v6 extended superblock: 256 bytes at 1152, fields at Nydus's offsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRafsSuperblock, encodeRafsSuperblock, RAFS_EXT_SUPERBLOCK_SIZE, type RafsSuperblock } from '../../src/format/rafs-superblock.js';
import { assertOndine, rd32, rd64, wr64, CORRUPT } from './support.js';

const AT = 1152;
const sample: RafsSuperblock = {
  flags: 0x194,
  blobTableOffset: 2 ** 40 + 4096,
  blobTableSize: 0xffffff00,
  chunkSize: 0x100000,
  chunkTableOffset: 0x1_0000_4000,
  chunkTableSize: 2 ** 45,
  prefetchTableOffset: 0x7777,
  prefetchTableSize: 0xffffffff,
};

test('size 256; fields at @0 flags, @8 blob table offset, @16 size, @20 chunk size, @24/@32 chunk table, @40/@48 prefetch', () => {
  assert.equal(RAFS_EXT_SUPERBLOCK_SIZE, 256);
  const block = Buffer.alloc(4096, 0xee);
  encodeRafsSuperblock(block, sample);
  const b = block.subarray(AT);
  assert.equal(rd64(b, 0), 0x194n);
  assert.equal(rd64(b, 8), BigInt(2 ** 40 + 4096));
  assert.equal(rd32(b, 16), 0xffffff00);
  assert.equal(rd32(b, 20), 0x100000);
  assert.equal(rd64(b, 24), 0x1_0000_4000n);
  assert.equal(rd64(b, 32), BigInt(2 ** 45));
  assert.equal(rd64(b, 40), 0x7777n);
  assert.equal(rd32(b, 48), 0xffffffff);
  assert.ok(b.subarray(52, 256).every((x) => x === 0), 'reserved bytes zeroed');
  assert.ok(block.subarray(0, AT).every((x) => x === 0xee), 'bytes before 1152 untouched');
  assert.ok(block.subarray(AT + 256).every((x) => x === 0xee), 'bytes after 1408 untouched');
});

test('round trip', () => {
  const block = Buffer.alloc(4096);
  encodeRafsSuperblock(block, sample);
  assert.deepEqual(decodeRafsSuperblock(block), sample);
});

test('decode refuses a truncated block and u64 fields beyond 2^53', () => {
  const block = Buffer.alloc(4096);
  encodeRafsSuperblock(block, sample);
  assertOndine(() => decodeRafsSuperblock(block.subarray(0, AT + 255)), CORRUPT, { structure: 'RAFS v6 extended superblock', offset: AT });
  for (const field of [0, 8, 24, 32, 40]) {
    const b = Buffer.from(block);
    wr64(b, AT + field, 0xffff_ffff_ffff_ffffn);
    assertOndine(() => decodeRafsSuperblock(b), CORRUPT, { offset: AT + field });
  }
});
