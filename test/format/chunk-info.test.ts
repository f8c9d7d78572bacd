// Blob chunk-info entries. v1 (16 bytes): uncomp = size-1 low 20 bits @44 | offset (4 KiB
// aligned, bits 12-43) | size-1 high 4 bits @8 | 8 reserved bits; comp = size-1 low 20 bits @44 |
// size-1 high 4 bits @40 | offset (40 bits). v2 (24 bytes): uncomp = offset/4096 (32 bits) |
// size-1 (24 bits) @32 | flags @56; comp = offset (40 bits) | size (24 bits) @40; data u64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeChunkInfoV1, decodeChunkInfoV1, encodeChunkInfoV2, decodeChunkInfoV2,
  CHUNK_INFO_V1_SIZE, CHUNK_INFO_V2_SIZE, CI_V2_FLAG_COMPRESSED, CI_V2_FLAG_ZRAN, CI_V2_FLAG_BATCH, type ChunkInfo,
} from '../../src/format/chunk-info.js';
import { assertOndine, mulberry32, rd64, wr64, CORRUPT, INVALID, UNSUPPORTED } from './support.js';

const MiB = 1 << 20;

function raw(uncomp: bigint, comp: bigint, data = 0n): Buffer {
  const b = Buffer.alloc(24);
  wr64(b, 0, uncomp);
  wr64(b, 8, comp);
  wr64(b, 16, data);
  return b;
}

test('sizes: v1 16, v2 24', () => {
  assert.equal(CHUNK_INFO_V1_SIZE, 16);
  assert.equal(CHUNK_INFO_V2_SIZE, 24);
});

test('v1: hand-packed bits decode to the documented fields', () => {
  // uncompressed: offset 0x5000, size 0x123457 (size-1 = 0x123456: low 20 bits 0x23456, high 4 bits 0x1)
  // compressed: offset 0x1_0000_0000, size 0xabcdf0 (size-1 = 0xabcdef: low 0xbcdef, high 0xa)
  const b = raw((0x23456n << 44n) | 0x5000n | (0x1n << 8n), (0xbcdefn << 44n) | (0xan << 40n) | 0x1_0000_0000n);
  assert.deepEqual(decodeChunkInfoV1(b, 0), {
    uncompressedOffset: 0x5000, uncompressedSize: 0x123457,
    compressedOffset: 0x1_0000_0000, compressedSize: 0xabcdf0, compressed: true,
  });
});

test('v1: Nydus\'s own compatibility vectors', () => {
  // Old-format entry from Nydus's chunk_info_v1 tests: all-ones fields with size high bits clear.
  const b = raw(0xffff_ffff_f100_0000n, 0xffff_f0ff_ffff_ffffn);
  const c = decodeChunkInfoV1(b, 0);
  assert.equal(c.uncompressedSize, 0x10_0000);
  assert.equal(c.uncompressedOffset, 0xffff_1000 * 0x1000);
  assert.equal(c.compressedSize, 0x10_0000);
  assert.equal(c.compressedOffset, 0xff_ffff_ffff);
  assert.equal(c.compressed, false, 'equal sizes mean stored uncompressed');
  // An all-zero entry: sizes 1, offsets 0.
  assert.deepEqual(decodeChunkInfoV1(raw(0n, 0n), 0), { uncompressedOffset: 0, uncompressedSize: 1, compressedOffset: 0, compressedSize: 1, compressed: false });
});

test('v1: 16 MiB sizes and maximal offsets use the split high bits', () => {
  const buf = Buffer.alloc(32, 0xee);
  const c: ChunkInfo = { uncompressedOffset: 0xfff_ffff_f000, uncompressedSize: 16 * MiB, compressedOffset: 0xff_ffff_ffff, compressedSize: 16 * MiB - 1, compressed: true };
  encodeChunkInfoV1(buf, 8, c);
  assert.equal(rd64(buf, 8), 0xffff_ffff_ffff_ff00n, 'uncomp: every non-reserved bit set');
  assert.equal(rd64(buf, 16), (0xffffen << 44n) | (0xfn << 40n) | 0xff_ffff_ffffn);
  assert.ok(buf.subarray(0, 8).every((x) => x === 0xee) && buf.subarray(24).every((x) => x === 0xee));
  assert.deepEqual(decodeChunkInfoV1(buf, 8), c);
  // Exactly 1 MiB + 1: size-1 = 0x100000 lives entirely in the high nibble.
  encodeChunkInfoV1(buf, 0, { uncompressedOffset: 0, uncompressedSize: MiB + 1, compressedOffset: 0, compressedSize: MiB + 1, compressed: false });
  assert.equal(rd64(buf, 0), 0x100n);
  assert.equal(rd64(buf, 8), 1n << 40n);
});

test('v1: seeded random round trips', () => {
  const rnd = mulberry32(1234);
  const buf = Buffer.alloc(16);
  for (let i = 0; i < 2000; i++) {
    const us = 1 + Math.floor(rnd() * 16 * MiB);
    let cs = 1 + Math.floor(rnd() * 16 * MiB);
    if (rnd() < 0.2) cs = us;
    const c: ChunkInfo = {
      uncompressedOffset: Math.floor(rnd() * 2 ** 32) * 4096,
      uncompressedSize: us,
      compressedOffset: Math.floor(rnd() * 2 ** 40),
      compressedSize: cs,
      compressed: cs !== us,
    };
    encodeChunkInfoV1(buf, 0, c);
    assert.deepEqual(decodeChunkInfoV1(buf, 0), c);
  }
});

test('v1: encode refuses what v1 cannot express; decode refuses reserved bits and truncation', () => {
  const ok: ChunkInfo = { uncompressedOffset: 4096, uncompressedSize: 100, compressedOffset: 0, compressedSize: 50, compressed: true };
  const b = Buffer.alloc(16);
  encodeChunkInfoV1(b, 0, ok);
  for (const bad of [
    { uncompressedOffset: 4095 }, { uncompressedOffset: 2 ** 44 }, { compressedOffset: 2 ** 40 },
    { uncompressedSize: 0 }, { uncompressedSize: 16 * MiB + 1 }, { compressedSize: 0 }, { compressedSize: 16 * MiB + 1 },
    { compressedSize: 100, compressed: true }, { compressed: false },
  ]) {
    assertOndine(() => encodeChunkInfoV1(b, 0, { ...ok, ...bad }), INVALID, { message: /./ });
  }
  for (const bit of [0x1n, 0x80n]) {
    assertOndine(() => decodeChunkInfoV1(raw(bit, 0n), 0, 9000), CORRUPT, { structure: 'chunk info v1', offset: 9000, message: /reserved/ });
  }
  assertOndine(() => decodeChunkInfoV1(Buffer.alloc(31), 16), CORRUPT, { offset: 16 });
  assertOndine(() => decodeChunkInfoV1(Buffer.alloc(31), 16, 8314), CORRUPT, { offset: 8314 + 16 });
});

test('v2: fields at their bit positions, data word zero', () => {
  const buf = Buffer.alloc(24 + 24, 0xaa);
  encodeChunkInfoV2(buf, 24, { uncompressedOffset: 0x1234_5000, uncompressedSize: 0x10_0001, compressedOffset: 0x12_3456_789a, compressedSize: 0xfedcba, compressed: true });
  assert.equal(rd64(buf, 24), (0x1n << 56n) | (0x10_0000n << 32n) | 0x12345n);
  assert.equal(rd64(buf, 32), (0xfedcban << 40n) | 0x12_3456_789an);
  assert.equal(rd64(buf, 40), 0n);
  assert.ok(buf.subarray(0, 24).every((x) => x === 0xaa));
});

test('v2: flags decide "compressed", not the sizes; 16 MiB sizes; round trips', () => {
  const buf = Buffer.alloc(24);
  const cases: ChunkInfo[] = [
    { uncompressedOffset: 0, uncompressedSize: 16 * MiB, compressedOffset: 0, compressedSize: 0xffffff, compressed: true },
    { uncompressedOffset: 0xffff_ffff * 4096, uncompressedSize: 1, compressedOffset: 2 ** 40 - 1, compressedSize: 1, compressed: false },
    { uncompressedOffset: 8192, uncompressedSize: 5000, compressedOffset: 77, compressedSize: 5000, compressed: true },
    { uncompressedOffset: 8192, uncompressedSize: 5000, compressedOffset: 77, compressedSize: 0, compressed: false },
  ];
  for (const c of cases) {
    encodeChunkInfoV2(buf, 0, c);
    assert.equal(Number(rd64(buf, 0) >> 56n), c.compressed ? CI_V2_FLAG_COMPRESSED : 0);
    assert.deepEqual(decodeChunkInfoV2(buf, 0), c);
  }
  // Nydus's v2 compatibility vector (its zran bit cleared): offset 0x100 blocks, size 0x101.
  const n = decodeChunkInfoV2(raw(0x0100_0100_0000_0100n, 0x0fff_ffff_ffff_ffffn), 0);
  assert.deepEqual(n, { uncompressedOffset: 0x100000, uncompressedSize: 0x101, compressedOffset: 0xff_ffff_ffff, compressedSize: 0xfffff, compressed: true });
});

test('v2: zran, batch and encrypted chunks are unsupported; unknown flags are corrupt', () => {
  for (const f of [CI_V2_FLAG_ZRAN, CI_V2_FLAG_BATCH, 0x8, CI_V2_FLAG_COMPRESSED | CI_V2_FLAG_BATCH]) {
    assertOndine(() => decodeChunkInfoV2(raw(BigInt(f) << 56n, 0n), 0, 48), UNSUPPORTED, { message: /offset 48/ });
  }
  for (const f of [0x10, 0x80, 0xf1]) {
    assertOndine(() => decodeChunkInfoV2(raw(BigInt(f) << 56n, 0n), 0, 48), CORRUPT, { structure: 'chunk info v2', offset: 48, message: /unknown chunk flags/ });
  }
  assertOndine(() => decodeChunkInfoV2(Buffer.alloc(23), 0), CORRUPT, { offset: 0 });
  assertOndine(() => decodeChunkInfoV2(Buffer.alloc(47), 24, 1000), CORRUPT, { offset: 1024 });
});

test('v2: encode refuses out-of-range sizes and (regression) offsets that would wrap silently', () => {
  const ok: ChunkInfo = { uncompressedOffset: 4096, uncompressedSize: 100, compressedOffset: 0, compressedSize: 50, compressed: true };
  const b = Buffer.alloc(24);
  for (const bad of [
    { uncompressedOffset: 100 }, { uncompressedSize: 0 }, { uncompressedSize: 16 * MiB + 1 },
    { compressedSize: -1 }, { compressedSize: 16 * MiB },
    { uncompressedOffset: 2 ** 44 }, { compressedOffset: 2 ** 40 }, { compressedOffset: -4096 },
  ]) {
    assertOndine(() => encodeChunkInfoV2(b, 0, { ...ok, ...bad }), INVALID);
  }
});
