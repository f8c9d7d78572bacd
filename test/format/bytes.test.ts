// The bounds-checked helpers every decoder relies on: a short buffer must end in a CorruptError
// naming the structure and offset, and out-of-range u64s must not silently lose precision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { need, u64, setU64, checkUint, readFixedString, writeFixedString, alignUp, isAllZero, hex, view } from '../../src/format/bytes.js';
import { assertOndine, CORRUPT, INVALID } from './support.js';

test('need() accepts exact fits and refuses overruns, negative and fractional offsets', () => {
  const b = new Uint8Array(16);
  need(b, 0, 16, 'thing');
  need(b, 16, 0, 'thing');
  assertOndine(() => need(b, 1, 16, 'thing'), CORRUPT, { structure: 'thing', offset: 1, message: /needs 16 bytes but only 15/ });
  assertOndine(() => need(b, -1, 1, 'thing'), CORRUPT, { offset: -1 });
  assertOndine(() => need(b, 0.5, 1, 'thing'), CORRUPT);
  assertOndine(() => need(b, 2 ** 60, 1, 'thing'), CORRUPT, { message: /only 0 are available/ });
});

test('u64() reads up to 2^53-1 and refuses larger values with the absolute offset', () => {
  const b = new Uint8Array(16);
  const d = view(b);
  d.setBigUint64(8, BigInt(Number.MAX_SAFE_INTEGER), true);
  assert.equal(u64(d, 8, 's'), Number.MAX_SAFE_INTEGER);
  d.setBigUint64(8, BigInt(Number.MAX_SAFE_INTEGER) + 1n, true);
  assertOndine(() => u64(d, 8, 's', 1000), CORRUPT, { structure: 's', offset: 1008 });
  d.setBigUint64(0, 0xffff_ffff_ffff_ffffn, true);
  assertOndine(() => u64(d, 0, 's'), CORRUPT, { offset: 0 });
});

test('setU64() writes little endian and refuses negative, fractional and unsafe values', () => {
  const b = new Uint8Array(8);
  setU64(view(b), 0, 0x0102_0304_0506);
  assert.deepEqual([...b], [6, 5, 4, 3, 2, 1, 0, 0]);
  assertOndine(() => setU64(view(b), 0, -1), INVALID);
  assertOndine(() => setU64(view(b), 0, 1.5), INVALID);
  assertOndine(() => setU64(view(b), 0, 2 ** 53), INVALID);
});

test('checkUint() bounds', () => {
  assert.equal(checkUint(0xffff, 16, 'f'), 0xffff);
  assert.equal(checkUint(0xffffffff, 32, 'f'), 0xffffffff);
  assertOndine(() => checkUint(0x10000, 16, 'f'), INVALID, { message: /f = 65536 does not fit in 16 bits/ });
  assertOndine(() => checkUint(-1, 8, 'f'), INVALID);
  assertOndine(() => checkUint(NaN, 8, 'f'), INVALID);
});

test('fixed strings: NUL padded, full-width without NUL, too long refused', () => {
  const b = new Uint8Array(8).fill(0xaa);
  writeFixedString(b, 2, 4, 'ab', 'name');
  assert.deepEqual([...b], [0xaa, 0xaa, 0x61, 0x62, 0, 0, 0xaa, 0xaa]);
  assert.equal(readFixedString(b, 2, 4), 'ab');
  writeFixedString(b, 2, 4, 'abcd', 'name');
  assert.equal(readFixedString(b, 2, 4), 'abcd', 'a name filling the field has no NUL');
  assertOndine(() => writeFixedString(b, 2, 4, 'abcde', 'name'), INVALID);
});

test('alignUp, isAllZero, hex', () => {
  assert.equal(alignUp(0, 4), 0);
  assert.equal(alignUp(1, 4), 4);
  assert.equal(alignUp(4096, 4096), 4096);
  assert.equal(alignUp(4097, 4096), 8192);
  assert.equal(isAllZero(new Uint8Array(4)), true);
  assert.equal(isAllZero(Uint8Array.of(0, 1, 0), 0, 1), true);
  assert.equal(isAllZero(Uint8Array.of(0, 1, 0)), false);
  assert.equal(hex(Uint8Array.of(0, 0xab, 0x10).subarray(1)), 'ab10');
});
