// Chunk digests: the native blake3 must agree with the portable one byte for byte (an image
// built on one machine is verified on another), both must match the published vectors, and
// ids/names map as the format says (blake3 0, sha256 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  blake3Digester, blake3Portable, digestMatchesHex, digesterById, digesterByName, isNativeBlake3, sha256Digester,
} from '../../src/storage/digests.js';
import { DigestAlgo } from '../../src/format/constants.js';
import { MiB, randomBytes, textBytes, throwsWith } from './support.js';

const ABC_BLAKE3 = '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85';
const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const EMPTY_BLAKE3 = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

test('the native blake3 is installed here (the fast path the builder relies on)', () => {
  // An optional dependency: if it silently failed to install, builds would run ~100x slower.
  assert.equal(isNativeBlake3(), true);
});

test('known vectors: blake3 and sha256 of "abc" and of nothing', () => {
  const abc = Buffer.from('abc');
  assert.equal(blake3Digester.digest(abc), ABC_BLAKE3);
  assert.equal(blake3Portable(abc), ABC_BLAKE3);
  assert.equal(sha256Digester.digest(abc), ABC_SHA256);
  assert.equal(blake3Digester.digest(new Uint8Array(0)), EMPTY_BLAKE3);
  assert.equal(blake3Portable(new Uint8Array(0)), EMPTY_BLAKE3);
  assert.equal(sha256Digester.digest(new Uint8Array(0)), EMPTY_SHA256);
});

test('blake3 native == portable on random data of many sizes, 0 to > 1 MiB', () => {
  // Sizes around blake3's 64-byte block and 1 KiB chunk boundaries, and the tree above them.
  const sizes = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4097, 31 * 1024 + 7, 65_536, 1_000_003, MiB, MiB + 1, 2 * MiB + 4095];
  for (const n of sizes) {
    const d = randomBytes(n, n + 1);
    assert.equal(blake3Digester.digest(d), blake3Portable(d), `size ${n}`);
  }
});

test('blake3 hashes the view, not the buffer behind it', () => {
  const big = textBytes(10_000, 3);
  const view = big.subarray(1000, 5000);
  const copy = Buffer.from(view);
  assert.equal(blake3Digester.digest(view), blake3Portable(copy));
  assert.equal(sha256Digester.digest(view), createHash('sha256').update(copy).digest('hex'));
  const u8 = new Uint8Array(big.buffer, big.byteOffset + 17, 333);
  assert.equal(blake3Digester.digest(u8), blake3Portable(Buffer.from(u8)));
});

test('one flipped bit changes the digest', () => {
  const d = randomBytes(MiB, 7);
  const before = blake3Digester.digest(d);
  const shaBefore = sha256Digester.digest(d);
  d[MiB - 1]! ^= 1;
  assert.notEqual(blake3Digester.digest(d), before);
  assert.notEqual(sha256Digester.digest(d), shaBefore);
});

test('sha256 matches node:crypto on several sizes', () => {
  for (const n of [0, 1, 55, 56, 64, 1000, MiB + 3]) {
    const d = randomBytes(n, 100 + n);
    assert.equal(sha256Digester.digest(d), createHash('sha256').update(d).digest('hex'));
  }
});

test('digests are 64 lowercase hex characters', () => {
  for (const g of [blake3Digester, sha256Digester]) assert.match(g.digest(Buffer.from('x')), /^[0-9a-f]{64}$/);
});

test('ids and names: blake3 0, sha256 1; anything else is UnsupportedError', () => {
  assert.equal(digesterById(DigestAlgo.Blake3), blake3Digester);
  assert.equal(digesterById(0), blake3Digester);
  assert.equal(digesterById(1), sha256Digester);
  assert.equal(digesterByName('blake3'), blake3Digester);
  assert.equal(digesterByName('sha256'), sha256Digester);
  assert.equal(blake3Digester.id, 0);
  assert.equal(sha256Digester.id, 1);
  for (const id of [2, 3, -1, 255]) throwsWith(() => digesterById(id), 'ONDINE_ERR_UNSUPPORTED', /digest algorithm id/);
  for (const name of ['md5', 'BLAKE3', 'sha-256', '']) throwsWith(() => digesterByName(name), 'ONDINE_ERR_UNSUPPORTED');
});

test('digestBytes is digest() as bytes, and digestMatchesHex accepts exactly the lower-case hex of it', () => {
  for (const d of [new Uint8Array(0), Buffer.from('abc'), randomBytes(4096, 9)]) {
    for (const g of [blake3Digester, sha256Digester]) {
      const bytes = g.digestBytes(d);
      const hex = g.digest(d);
      assert.equal(Buffer.from(bytes).toString('hex'), hex);
      assert.equal(digestMatchesHex(bytes, hex), true);
      assert.equal(digestMatchesHex(bytes, hex.toUpperCase()), /[a-f]/.test(hex) ? false : true);
      assert.equal(digestMatchesHex(bytes, hex.slice(0, -2)), false);
      assert.equal(digestMatchesHex(bytes, `${hex}00`), false);
      // Every digit of every position matters: change each in turn.
      for (let i = 0; i < hex.length; i++) {
        const flipped = hex.slice(0, i) + (hex[i] === '0' ? '1' : '0') + hex.slice(i + 1);
        assert.equal(digestMatchesHex(bytes, flipped), false, `digit ${i}`);
      }
      assert.equal(digestMatchesHex(bytes, hex.replace(/^./, 'g')), false);
    }
  }
});
