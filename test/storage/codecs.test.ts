// Chunk codecs: every codec round-trips, every decoder insists on the recorded size, corrupt
// input ends in CorruptError (never a library error or a wrong-sized buffer), and a zstd
// chunk cannot make the decoder allocate more than the chunk's recorded size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import * as zstd from 'zstd-napi';
import { codecById, codecByName, type Codec } from '../../src/storage/codecs.js';
import { CorruptError } from '../../src/errors.js';
import { Compressor } from '../../src/format/constants.js';
import { KiB, MiB, randomBytes, textBytes, throwsWith } from './support.js';

const CORRUPT = 'ONDINE_ERR_CORRUPT';
const NAMES = ['none', 'lz4', 'gzip', 'zstd'] as const;
const IDS: Record<(typeof NAMES)[number], Compressor> = { none: Compressor.None, lz4: Compressor.Lz4Block, gzip: Compressor.Gzip, zstd: Compressor.Zstd };

const SAMPLES: Array<[string, Buffer]> = [
  ['1 byte', Buffer.from('x')],
  ['4 KiB of text', textBytes(4 * KiB, 1)],
  ['1 MiB of text', textBytes(MiB, 2)],
  ['1 MiB random', randomBytes(MiB, 3)],
  ['1 MiB of zeros', Buffer.alloc(MiB)],
  ['odd size, mixed', Buffer.concat([textBytes(300_001, 4), randomBytes(77_777, 5)])],
];

test('codecById and codecByName agree on the on-disk ids (none 0, lz4 1, gzip 2, zstd 3)', () => {
  for (const name of NAMES) {
    const c = codecByName(name);
    assert.equal(c.name, name);
    assert.equal(c.id, IDS[name]);
    assert.equal(codecById(IDS[name]), c);
  }
});

for (const name of NAMES) {
  test(`${name}: round trips keep every byte`, () => {
    const codec = codecByName(name);
    for (const [what, data] of SAMPLES) {
      const packed = codec.compress(data);
      const back = codec.decompress(packed, data.length);
      assert.ok(back.equals(data), `${name} ${what}`);
    }
  });
}

test('compressible data shrinks with every real codec; zeros shrink a lot', () => {
  const text = textBytes(MiB, 9);
  for (const name of ['lz4', 'gzip', 'zstd'] as const) {
    const c = codecByName(name);
    assert.ok(c.compress(text).length < text.length / 2, `${name} on text`);
    assert.ok(c.compress(Buffer.alloc(MiB)).length < 8 * KiB, `${name} on zeros`);
  }
  assert.equal(codecByName('none').compress(text).length, text.length);
});

test('none: returns the same bytes, and a wrong expected size is corrupt', () => {
  const d = textBytes(1000, 5);
  assert.ok(codecByName('none').decompress(d, 1000).equals(d));
  throwsWith(() => codecByName('none').decompress(d, 999), CORRUPT, /1000 bytes, expected 999/);
  throwsWith(() => codecByName('none').decompress(d, 1001), CORRUPT);
});

for (const name of ['lz4', 'gzip', 'zstd'] as const) {
  test(`${name}: a wrong expected size is CorruptError, smaller or larger`, () => {
    const codec = codecByName(name);
    const data = textBytes(64 * KiB, 11);
    const packed = codec.compress(data);
    for (const want of [data.length - 1, data.length + 1, 1, data.length * 2]) {
      const err = throwsWith(() => codec.decompress(packed, want), CORRUPT);
      assert.ok(err instanceof CorruptError);
      assert.equal(err.errno, 117, 'EFSCORRUPTED');
    }
  });

  test(`${name}: corrupt input is CorruptError, never a library error`, () => {
    const codec = codecByName(name);
    const data = textBytes(256 * KiB, 12);
    const packed = codec.compress(data);
    const cases: Array<[string, Buffer]> = [
      ['garbage', randomBytes(packed.length, 13)],
      ['truncated to half', packed.subarray(0, packed.length >> 1)],
      ['first bytes only', packed.subarray(0, 3)],
      ['empty', Buffer.alloc(0)],
    ];
    // Bit flips at a few places: each must be caught by the decoder or by the size check.
    // (A flip can decode to different bytes of the right size; the chunk digest catches those,
    // so only flips that the codec itself must notice are asserted here: in the header.)
    const flipped = Buffer.from(packed);
    flipped[0]! ^= 0xff;
    cases.push(['header byte flipped', flipped]);
    for (const [what, bad] of cases) {
      const err = throwsWith(() => codec.decompress(bad, data.length), CORRUPT);
      assert.ok(err instanceof CorruptError, `${name} ${what}`);
    }
  });
}

test('lz4: a block that decodes to fewer bytes than promised is corrupt', () => {
  const lz4 = codecByName('lz4');
  const packed = lz4.compress(textBytes(10_000, 14));
  throwsWith(() => lz4.decompress(packed, 20_000), CORRUPT);
});

test('gzip: a stream longer than promised is refused without inflating it whole', () => {
  const gz = gzipSync(Buffer.alloc(64 * MiB));
  const err = throwsWith(() => codecByName('gzip').decompress(gz, MiB), CORRUPT);
  assert.ok(err instanceof CorruptError);
  assert.doesNotMatch(err.message, /decompressed to/, 'the whole stream was inflated before being refused');
});

// ---- zstd frame checks ----

/** A zstd frame header announcing `size` bytes in an 8-byte content-size field, then one raw block. */
function frameAnnouncing(size: bigint, payload: Buffer): Buffer {
  const h = Buffer.alloc(4 + 1 + 1 + 8);
  h.writeUInt32LE(0xfd2fb528, 0);
  h[4] = 0xc0; // FCS field 8 bytes, not single-segment, no checksum, no dictionary
  h[5] = 0x58; // window descriptor: 2^(10+11) = 2 MiB window
  h.writeBigUInt64LE(size, 6);
  const bh = Buffer.alloc(3);
  const v = 1 | (0 << 1) | (payload.length << 3); // last block, raw
  bh[0] = v & 0xff;
  bh[1] = (v >> 8) & 0xff;
  bh[2] = (v >> 16) & 0xff;
  return Buffer.concat([h, bh, payload]);
}

test('zstd: a hand-made frame with a raw block decodes (the frame builder below is right)', () => {
  const payload = textBytes(5000, 15);
  const frame = frameAnnouncing(BigInt(payload.length), payload);
  assert.ok(codecByName('zstd').decompress(frame, payload.length).equals(payload));
  assert.ok(zstd.decompress(frame).equals(payload));
});

test('zstd: a frame announcing a huge content size is refused before allocation', () => {
  const z = codecByName('zstd');
  // 1 TiB announced: zstd-napi would Buffer.allocUnsafe it; our check must refuse first and
  // say why (the library's own error would be an allocation failure, not this message).
  const frame = frameAnnouncing(1n << 40n, textBytes(100, 16));
  throwsWith(() => z.decompress(frame, MiB), CORRUPT, /announces 1099511627776 bytes, expected 1048576/);
  // The same with a realistic frame whose announced size is merely off by one.
  const real = z.compress(textBytes(MiB, 17));
  throwsWith(() => z.decompress(real, MiB - 1), CORRUPT, /announces 1048576 bytes, expected 1048575/);
});

test('zstd: every content-size field width is read right (1, 2, 4 and 8 bytes)', () => {
  const z = codecByName('zstd');
  for (const n of [1, 200, 255, 256, 300, 65_791, 65_792, 100_000, 3 * MiB]) {
    const data = textBytes(n, n);
    const packed = z.compress(data);
    assert.ok(z.decompress(packed, n).equals(data), `size ${n}`);
    throwsWith(() => z.decompress(packed, n + 1), CORRUPT, /announces/);
  }
});

test('zstd: bad magic and truncated headers are corrupt', () => {
  const z = codecByName('zstd');
  const packed = z.compress(textBytes(10_000, 18));
  throwsWith(() => z.decompress(Buffer.concat([Buffer.from([0, 0, 0, 0]), packed.subarray(4)]), 10_000), CORRUPT, /magic/);
  throwsWith(() => z.decompress(packed.subarray(0, 6), 10_000), CORRUPT);
});

test('zstd: a second frame after the chunk\'s frame is refused before anything is inflated', () => {
  // zstd-napi sizes its output by summing every frame's announced size, so a valid first frame
  // followed by a bomb would be decoded in full before the size check could see it.
  const z = codecByName('zstd');
  const data = textBytes(64 * KiB, 19);
  const bomb = Buffer.concat([z.compress(data), z.compress(Buffer.alloc(64 * MiB))]);
  const err = throwsWith(() => z.decompress(bomb, data.length), CORRUPT);
  assert.doesNotMatch(err.message, /decompressed to/, 'the bomb was inflated before being refused');
  assert.match(err.message, /after the frame/);
});

test('zstd: a frame without a content size decodes when it holds exactly the promised bytes', () => {
  const data = textBytes(300 * KiB, 20);
  const packed = zstd.compress(data, { contentSizeFlag: false });
  assert.equal((packed[4]! >> 6), 0, 'frame carries no content size');
  assert.ok(codecByName('zstd').decompress(packed, data.length).equals(data));
  throwsWith(() => codecByName('zstd').decompress(packed, data.length - 1), CORRUPT);
  throwsWith(() => codecByName('zstd').decompress(packed, data.length + 1), CORRUPT);
});

test('zstd: a frame without a content size cannot inflate past the promised size', () => {
  // 256 MiB of zeros in a few KiB: decoding it whole before checking the size would be a
  // decompression bomb. The decoder must stop at the promised 1 MiB.
  const bomb = zstd.compress(Buffer.alloc(256 * MiB), { contentSizeFlag: false });
  assert.ok(bomb.length < 64 * KiB);
  const err = throwsWith(() => codecByName('zstd').decompress(bomb, MiB), CORRUPT);
  assert.doesNotMatch(err.message, /decompressed to/, 'the bomb was inflated before being refused');
});

test('zstd: a frame with a content checksum is accepted and a flipped checksum is corrupt', () => {
  const data = textBytes(50_000, 21);
  const packed = zstd.compress(data, { checksumFlag: true });
  const z = codecByName('zstd');
  assert.ok(z.decompress(packed, data.length).equals(data));
  const bad = Buffer.from(packed);
  bad[bad.length - 1]! ^= 0x01;
  throwsWith(() => z.decompress(bad, data.length), CORRUPT);
});

test('unknown codecs are UnsupportedError by id and by name', () => {
  for (const id of [4, 5, 99, -1, 0xffffffff]) {
    const err = throwsWith(() => codecById(id), 'ONDINE_ERR_UNSUPPORTED', new RegExp(`compressor id ${id}`));
    assert.equal(err.errno, 95, 'EOPNOTSUPP');
  }
  for (const name of ['brotli', 'ZSTD', '', 'lz4_block']) {
    throwsWith(() => codecByName(name), 'ONDINE_ERR_UNSUPPORTED');
  }
});

test('codecs are stateless ops objects: interleaved use does not mix outputs', () => {
  const all: Codec[] = NAMES.map((n) => codecByName(n));
  const inputs = [textBytes(10_000, 30), randomBytes(10_000, 31), textBytes(20_000, 32)];
  const packed = inputs.map((d) => all.map((c) => c.compress(d)));
  for (let i = inputs.length - 1; i >= 0; i--) {
    all.forEach((c, j) => assert.ok(c.decompress(packed[i]![j]!, inputs[i]!.length).equals(inputs[i]!)));
  }
});

test('zstd compressInto writes the very bytes compress() returns, at every level it is asked for, into caller memory', () => {
  const zstdCodec = codecByName('zstd');
  assert.ok(zstdCodec.compressInto && zstdCodec.compressBound);
  // Levels alternate so the context's parameters change between calls, as they would not in a build.
  for (const level of [3, 1, 3, 19, 3]) {
    for (const [name, data] of SAMPLES) {
      const want = zstdCodec.compress(data, level);
      const out = Buffer.alloc(zstdCodec.compressBound(data.length) + 16, 0xee);
      const n = zstdCodec.compressInto(data, out.subarray(16), level);
      assert.ok(out.subarray(16, 16 + n).equals(want), `${name}, level ${level}`);
      assert.ok(out.subarray(0, 16).equals(Buffer.alloc(16, 0xee)), `${name}: nothing written before the given memory`);
    }
  }
});
