// crc32c against published vectors (the "check" value and RFC 3720's iSCSI vectors), and the
// relation between the raw update the superblock uses and the standard (inverted) form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cUpdate } from '../../src/format/crc32c.js';
import { mulberry32 } from './support.js';

/** Bit-at-a-time reference, independent of the module's table. */
function crcBitwise(seed: number, data: Uint8Array): number {
  let c = seed >>> 0;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return c >>> 0;
}

test('crc32c("123456789") = 0xE3069283', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('RFC 3720 iSCSI vectors', () => {
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test('crc32cUpdate is the raw form: no inversion, chainable, equal to a bitwise reference', () => {
  const rnd = mulberry32(7);
  const data = Uint8Array.from({ length: 3000 }, () => Math.floor(rnd() * 256));
  const whole = crc32cUpdate(0xffffffff, data);
  assert.equal(whole, crcBitwise(0xffffffff, data));
  assert.equal(crc32cUpdate(crc32cUpdate(0xffffffff, data.subarray(0, 1234)), data.subarray(1234)), whole);
  assert.equal((whole ^ 0xffffffff) >>> 0, crc32c(data));
  assert.equal(crc32cUpdate(0, new Uint8Array(10)), 0, 'seed 0 over zeros stays 0 (no pre-inversion)');
  assert.equal(crc32cUpdate(0x12345678, new Uint8Array(0)), 0x12345678);
});
