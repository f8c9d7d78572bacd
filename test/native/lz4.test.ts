import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import {
  NativeArgumentError,
  NativeError,
  lz4Compress,
  lz4Decompress,
} from '../../src/native/index.js';

function samples(): Buffer[] {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(3000));
  const mixed = Buffer.concat([randomBytes(5000), Buffer.alloc(70000, 7), randomBytes(123)]);
  return [Buffer.alloc(0), Buffer.from('x'), text, mixed, randomBytes(1 << 20), Buffer.alloc(4 << 20)];
}

function isBadMessage(err: unknown): boolean {
  return err instanceof NativeError && err.code === 'EBADMSG' && err.errno === 74 &&
    err.syscall === 'LZ4_decompress_safe';
}

test('lz4 decodes blocks written by hand from the block format spec', () => {
  // token 0x50: 5 literals, no match (a block's last sequence).
  assert.equal(lz4Decompress(Buffer.from([0x50, ...Buffer.from('hello')]), 5).toString(), 'hello');
  // 3 literals "abc", then a match at offset 3 of length 4+5=9, then 5 final literals.
  const block = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x50, ...Buffer.from('defgh')]);
  assert.equal(lz4Decompress(block, 17).toString(), 'abcabcabcabcdefgh');
});

test('lz4 round trip', () => {
  for (const src of samples()) {
    const packed = lz4Compress(src);
    assert.deepEqual(lz4Decompress(packed, src.length), src);
  }
  // Repetitive input really shrinks, so the output is not padded to the bound.
  const zeros = Buffer.alloc(1 << 20);
  assert.ok(lz4Compress(zeros).length < 5000);
});

test('a corrupt block is rejected with NativeError EBADMSG', () => {
  const src = Buffer.from('some text that compresses, some text that compresses, some text');
  const packed = lz4Compress(src);
  // An offset pointing before the start of the output is invalid in any block.
  const badOffset = Buffer.from([0x14, 0x61, 0xff, 0xff, 0x50, 0x61, 0x62, 0x63, 0x64, 0x65]);
  const truncated = packed.subarray(0, packed.length - 3);
  for (const bad of [badOffset, truncated, Buffer.alloc(0), Buffer.from([0xff])]) {
    assert.throws(() => lz4Decompress(bad, src.length), isBadMessage);
  }
});

test('a block of the wrong size is rejected, larger or smaller', () => {
  const src = randomBytes(1000);
  const packed = lz4Compress(src);
  for (const size of [999, 1001, 0, 4096]) {
    assert.throws(() => lz4Decompress(packed, size), (err) => isBadMessage(err));
  }
  assert.throws(() => lz4Decompress(packed, 1001), /decodes to 1000 bytes, expected 1001/);
});

test('lz4 arguments are checked before native code runs', () => {
  assert.throws(() => lz4Decompress('abc' as unknown as Uint8Array, 3), NativeArgumentError);
  assert.throws(() => lz4Decompress(Buffer.alloc(1), -1), NativeArgumentError);
  assert.throws(() => lz4Decompress(Buffer.alloc(1), 2 ** 31), NativeArgumentError);
  assert.throws(() => lz4Compress([1, 2] as unknown as Uint8Array), NativeArgumentError);
  assert.throws(() => lz4Decompress(Buffer.alloc(1), 0.5), NativeArgumentError);
  assert.throws(() => lz4Compress(null as unknown as Uint8Array), NativeArgumentError);
});
