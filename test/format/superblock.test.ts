// The EROFS superblock: every field at its erofs_fs.h offset, round trip, and the checksum rule
// (crc32c seeded with ~0, no final xor, over bytes 1024..blocksize with the checksum zeroed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeSuperblock, encodeSuperblock, sealSuperblock, superblockChecksum, verifySuperblockChecksum,
  requireBlockSize, uuidString, SUPERBLOCK_SIZE, type Superblock,
} from '../../src/format/superblock.js';
import { crc32c, crc32cUpdate } from '../../src/format/crc32c.js';
import { COMPAT_SB_CHKSUM, EROFS_MAGIC } from '../../src/format/constants.js';
import { assertOndine, rd16, rd32, rd64, wr32, wr64, CORRUPT, UNSUPPORTED } from './support.js';

const SB = 1024;

function sample(over: Partial<Superblock> = {}): Superblock {
  return {
    checksum: 0,
    featureCompat: 0x40000000,
    blkszbits: 12,
    sbExtslots: 3,
    rootNid: 0xfedc,
    inos: 2 ** 40 + 7,
    buildTime: 1_700_000_000,
    buildTimeNsec: 999_999_999,
    blocks: 0xffffffff,
    metaBlkaddr: 0x11223344,
    xattrBlkaddr: 0x55667788,
    uuid: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
    volumeName: 'ondine-volume-16',
    featureIncompat: 0xc,
    availableComprAlgs: 0x1234,
    extraDevices: 0x0102,
    devtSlotoff: 11,
    ...over,
  };
}

test('superblock size is 128 and encode writes only bytes 1024..1152', () => {
  assert.equal(SUPERBLOCK_SIZE, 128);
  const block = Buffer.alloc(4096, 0x5a);
  encodeSuperblock(block, sample());
  assert.ok(block.subarray(0, SB).every((b) => b === 0x5a), 'bytes before 1024 untouched');
  assert.ok(block.subarray(SB + 128).every((b) => b === 0x5a), 'bytes after 1152 untouched');
});

test('every field lands at its erofs_fs.h offset', () => {
  const block = Buffer.alloc(4096);
  const s = sample({ checksum: 0xdeadbeef });
  encodeSuperblock(block, s);
  const b = block.subarray(SB);
  assert.equal(rd32(b, 0), EROFS_MAGIC);
  assert.equal(rd32(b, 4), 0xdeadbeef);
  assert.equal(rd32(b, 8), 0x40000000);
  assert.equal(b[12], 12);
  assert.equal(b[13], 3);
  assert.equal(rd16(b, 14), 0xfedc);
  assert.equal(rd64(b, 16), BigInt(2 ** 40 + 7));
  assert.equal(rd64(b, 24), 1_700_000_000n);
  assert.equal(rd32(b, 32), 999_999_999);
  assert.equal(rd32(b, 36), 0xffffffff);
  assert.equal(rd32(b, 40), 0x11223344);
  assert.equal(rd32(b, 44), 0x55667788);
  assert.deepEqual([...b.subarray(48, 64)], [...s.uuid]);
  assert.equal(b.subarray(64, 80).toString('latin1'), 'ondine-volume-16');
  assert.equal(rd32(b, 80), 0xc);
  assert.equal(rd16(b, 84), 0x1234);
  assert.equal(rd16(b, 86), 0x0102);
  assert.equal(rd16(b, 88), 11);
  assert.ok(b.subarray(90, 128).every((x) => x === 0), 'reserved tail is zero');
});

test('round trip, including u32 max, a full-width volume name and a short one', () => {
  for (const s of [sample(), sample({ volumeName: 'v', blocks: 0, rootNid: 0 }), sample({ volumeName: '' })]) {
    const block = Buffer.alloc(4096);
    encodeSuperblock(block, s);
    assert.deepEqual(decodeSuperblock(block), s);
  }
  assert.equal(uuidString(sample()), 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
});

test('decode refuses bad magic, short buffers, block size bits out of range and huge u64s', () => {
  const block = Buffer.alloc(4096);
  encodeSuperblock(block, sample());
  assertOndine(() => decodeSuperblock(block.subarray(0, SB + 127)), CORRUPT, { structure: 'EROFS superblock', offset: SB });
  const badMagic = Buffer.from(block);
  badMagic[SB] ^= 1;
  assertOndine(() => decodeSuperblock(badMagic), CORRUPT, { offset: SB, message: /bad magic/ });
  for (const bits of [0, 8, 17, 255]) {
    const b = Buffer.from(block);
    b[SB + 12] = bits;
    assertOndine(() => decodeSuperblock(b), CORRUPT, { offset: SB + 12 });
  }
  const b = Buffer.from(block);
  wr64(b, SB + 16, 1n << 60n);
  assertOndine(() => decodeSuperblock(b), CORRUPT, { offset: SB + 16 });
});

test('checksum rule: seed ~0, no final xor, over 1024..blocksize with the field zeroed', () => {
  const block = Buffer.alloc(4096);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31) & 0xff;
  encodeSuperblock(block, sample({ checksum: 0x12345678 }));
  const expect = (() => {
    const copy = Buffer.from(block.subarray(SB));
    copy.fill(0, 4, 8);
    return crc32cUpdate(0xffffffff, copy);
  })();
  assert.equal(superblockChecksum(block), expect);
  // The same value via the standard crc32c, which differs only by the final inversion.
  const copy = Buffer.from(block.subarray(SB));
  copy.fill(0, 4, 8);
  assert.equal(superblockChecksum(block), (~crc32c(copy)) >>> 0);
  // The stored checksum does not feed into the computation.
  wr32(block, SB + 4, 0xffffffff);
  assert.equal(superblockChecksum(block), expect);
  // Bytes before 1024 are outside the checksum; bytes up to the end of the block are inside.
  block[0] ^= 0xff;
  block[1023] ^= 0xff;
  assert.equal(superblockChecksum(block), expect);
  block[4095] ^= 0xff;
  assert.notEqual(superblockChecksum(block), expect);
});

test('seal then verify; a flipped byte anywhere in 1024..4096 makes verify throw', () => {
  const block = Buffer.alloc(4096);
  for (let i = SB + 128; i < 4096; i++) block[i] = i & 0xff;
  encodeSuperblock(block, sample({ featureCompat: 0x40000000 }));
  sealSuperblock(block);
  const sb = decodeSuperblock(block);
  assert.equal(sb.featureCompat & COMPAT_SB_CHKSUM, COMPAT_SB_CHKSUM, 'seal sets the compat bit');
  assert.equal(sb.featureCompat & 0x40000000, 0x40000000, 'seal keeps the other compat bits');
  assert.equal(sb.checksum, superblockChecksum(block));
  verifySuperblockChecksum(block, sb);
  for (const at of [SB + 8, SB + 12 + 2, SB + 200, 2048, 4095]) {
    const flipped = Buffer.from(block);
    flipped[at] ^= 0x10;
    // decode the flipped copy only where that still succeeds; verify uses the original fields.
    assertOndine(() => verifySuperblockChecksum(flipped, sb), CORRUPT, { structure: 'EROFS superblock', offset: SB + 4, message: /checksum mismatch/ });
  }
  const outside = Buffer.from(block);
  outside[100] ^= 0xff;
  verifySuperblockChecksum(outside, sb);
});

test('verify honours the block size from blkszbits and skips images without the compat bit', () => {
  const block = Buffer.alloc(8192);
  encodeSuperblock(block, sample({ blkszbits: 13 }));
  sealSuperblock(block); // seals with the 4096 default
  const sb = decodeSuperblock(block);
  assertOndine(() => verifySuperblockChecksum(block, sb), CORRUPT, { message: /checksum mismatch/ });
  wr32(block, SB + 4, superblockChecksum(block, 8192));
  verifySuperblockChecksum(block, decodeSuperblock(block));
  assertOndine(() => superblockChecksum(block.subarray(0, 8191), 8192), CORRUPT);

  const plain = Buffer.alloc(4096);
  encodeSuperblock(plain, sample({ featureCompat: 0, checksum: 0xbad }));
  verifySuperblockChecksum(plain, decodeSuperblock(plain));
});

test('requireBlockSize', () => {
  requireBlockSize(sample(), 4096);
  assertOndine(() => requireBlockSize(sample({ blkszbits: 9 }), 4096), UNSUPPORTED, { message: /block size 512/ });
});

test('a RAFS v4/v5 bootstrap is refused as unsupported, by name', () => {
  for (const [version, name] of [[0x500, 'RAFS v5'], [0x400, 'RAFS v4']] as const) {
    const b = new Uint8Array(8192);
    wr32(b, 0, 0x52414653);
    wr32(b, 4, version);
    assertOndine(() => decodeSuperblock(b), UNSUPPORTED, { message: new RegExp(`^${name} is not supported`) });
  }
});
