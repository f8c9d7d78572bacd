import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NativeArgumentError, addressOf, alignedBuffer } from '../../src/native/index.js';

test('alignedBuffer returns zero-filled memory at the requested alignment', () => {
  for (const [size, align] of [
    [4096, 4096],
    [1 << 20, 4096],
    [100, 512],
    [3, 65536],
    [0, 4096],
  ] as const) {
    const buf = alignedBuffer(size, align);
    assert.equal(buf.length, size);
    assert.equal(addressOf(buf) % BigInt(align), 0n, `size ${size} align ${align}`);
    assert.ok(buf.every((b) => b === 0), 'zero-filled');
  }
});

test('alignedBuffer defaults to page alignment and stays writable', () => {
  const buf = alignedBuffer(8192);
  assert.equal(addressOf(buf) % 4096n, 0n);
  buf.fill(0xab);
  assert.equal(buf[8191], 0xab);
});

test('addressOf counts the byteOffset of a view', () => {
  const buf = alignedBuffer(8192);
  assert.equal(addressOf(buf.subarray(4096)) - addressOf(buf), 4096n);
  assert.equal(addressOf(buf.subarray(1)) % 4096n, 1n);
  // An ordinary Buffer is generally not page aligned: this is why alignedBuffer exists.
  const plain = Buffer.allocUnsafe(16);
  assert.equal(addressOf(plain) - addressOf(new Uint8Array(plain.buffer)), BigInt(plain.byteOffset));
});

test('alignedBuffer rejects bad sizes and alignments before calling native code', () => {
  assert.throws(() => alignedBuffer(-1), NativeArgumentError);
  assert.throws(() => alignedBuffer(1.5), NativeArgumentError);
  assert.throws(() => alignedBuffer(4096, 3000), /power of two/);
  assert.throws(() => alignedBuffer(4096, 4), NativeArgumentError);
  assert.throws(() => alignedBuffer('10' as unknown as number), NativeArgumentError);
});

test('aligned buffers are freed once collected', async () => {
  // 1 GiB allocated and touched in total, 4 MiB at a time. If the finalizer did not free
  // them, resident memory would grow by all of it (1025 MiB seen with the free() removed);
  // with it, growth stays near one GC cycle's worth (about 300 MiB seen).
  const start = process.memoryUsage().rss;
  let peak = start;
  for (let i = 0; i < 256; i++) {
    const buf = alignedBuffer(4 << 20);
    buf.fill(1);
    peak = Math.max(peak, process.memoryUsage().rss);
    if (i % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(peak - start < 768 << 20, `resident memory grew by ${(peak - start) >> 20} MiB`);
});
