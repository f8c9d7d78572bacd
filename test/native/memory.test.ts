import assert from 'node:assert/strict';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { NativeArgumentError, alignedBuffer } from '../../src/native/index.js';
import { tempDir } from './util.js';

/**
 * An O_DIRECT file (on /var/tmp: tmpfs, a common /tmp, has no O_DIRECT), or undefined where
 * the filesystem refuses O_DIRECT. The kernel takes only aligned memory for O_DIRECT writes
 * (EINVAL otherwise), which is what alignedBuffer is for.
 */
function directFile(t: TestContext): number | undefined {
  try {
    const fd = openSync(join(tempDir(t, '/var/tmp'), 'f'), constants.O_RDWR | constants.O_CREAT | constants.O_DIRECT, 0o600);
    t.after(() => closeSync(fd));
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

test('alignedBuffer returns zero-filled memory of the requested size', () => {
  for (const [size, align] of [
    [4096, 4096],
    [1 << 20, 4096],
    [100, 512],
    [3, 65536],
    [0, 4096],
  ] as const) {
    const buf = alignedBuffer(size, align);
    assert.equal(buf.length, size);
    assert.ok(buf.every((b) => b === 0), 'zero-filled');
  }
});

test('alignedBuffer memory is aligned as O_DIRECT needs, by default and when asked', (t) => {
  const fd = directFile(t);
  if (fd === undefined) {
    t.skip('the filesystem of /var/tmp does not support O_DIRECT');
    return;
  }
  for (const buf of [alignedBuffer(8192), alignedBuffer(4096, 4096), alignedBuffer(1 << 20, 65536), alignedBuffer(8192).subarray(4096)]) {
    buf.fill(0xab);
    assert.equal(buf[buf.length - 1], 0xab, 'writable');
    assert.equal(writeSync(fd, buf, 0, buf.length, 0), buf.length);
  }
  // The control: one byte off, the kernel refuses the same write.
  const off = alignedBuffer(8192).subarray(1, 4097);
  assert.throws(() => writeSync(fd, off, 0, off.length, 0), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
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
