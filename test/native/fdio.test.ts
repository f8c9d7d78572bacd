import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import {
  NativeArgumentError,
  NativeError,
  alignedBuffer,
  closeFd,
  devRead,
  devWrite,
  ioctlReadComplete,
  pwriteAsync,
  seekData,
  seekHole,
  writeBuffer,
} from '../../src/native/index.js';
import { tempDir } from './util.js';

const MiB = 1 << 20;

function openTemp(t: TestContext, flags: number, base?: string): { path: string; fd: number } {
  const path = join(tempDir(t, base), 'f');
  const fd = openSync(path, flags | constants.O_CREAT, 0o600);
  t.after(() => closeSync(fd));
  return { path, fd };
}

test('seekData/seekHole find the one written block of a sparse file', (t) => {
  const { fd } = openTemp(t, constants.O_RDWR, '/var/tmp');
  ftruncateSync(fd, 4 * MiB);
  writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, MiB);

  assert.equal(seekData(fd, 0), MiB);
  assert.equal(seekHole(fd, 0), 0);
  assert.equal(seekData(fd, MiB + 100), MiB + 100);
  assert.equal(seekHole(fd, MiB), MiB + 4096);
  assert.equal(seekData(fd, MiB + 4096), -1, 'no data after the block: ENXIO becomes -1');
  assert.equal(seekHole(fd, 3 * MiB), 3 * MiB);
  assert.equal(seekHole(fd, 4 * MiB), -1, 'at EOF: ENXIO becomes -1');
});

test('seek errors are NativeErrors; bad offsets are refused in TS', (t) => {
  const { fd } = openTemp(t, constants.O_RDWR);
  assert.throws(() => seekData(999999, 0), (e: unknown) => e instanceof NativeError && e.code === 'EBADF');
  assert.throws(() => seekData(fd, -1), NativeArgumentError);
  assert.throws(() => seekHole(fd, 2 ** 60), NativeArgumentError);
});

test('pwriteAsync writes an aligned buffer through O_DIRECT, also past 4 GiB', async (t) => {
  let file: { path: string; fd: number };
  try {
    file = openTemp(t, constants.O_RDWR | constants.O_DIRECT, '/var/tmp');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') {
      t.skip('the filesystem of /var/tmp does not support O_DIRECT');
      return;
    }
    throw err;
  }
  const buf = alignedBuffer(64 * 1024);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 7) & 0xff;
  const far = 5 * 2 ** 30 + 8192; // beyond 32-bit offsets
  assert.equal(await pwriteAsync(file.fd, buf, 0), buf.length);
  assert.equal(await pwriteAsync(file.fd, buf, far), buf.length);

  assert.equal(statSync(file.path).size, far + buf.length);
  const check = Buffer.alloc(buf.length);
  const reader = openSync(file.path, 'r');
  t.after(() => closeSync(reader));
  readSync(reader, check, 0, check.length, far);
  assert.deepEqual(check, buf);
  readSync(reader, check, 0, check.length, 0);
  assert.deepEqual(check, buf);
  assert.equal(seekData(file.fd, buf.length), far, 'the gap stays a hole');

  // The reason alignedBuffer exists: the kernel refuses misaligned memory under O_DIRECT.
  const misaligned = alignedBuffer(8192).subarray(1, 4097);
  await assert.rejects(pwriteAsync(file.fd, misaligned, 0), (e: unknown) =>
    e instanceof NativeError && e.code === 'EINVAL' && e.syscall === 'pwrite');
});

test('pwriteAsync writes a large buffer whole and reports errors as NativeError', async (t) => {
  const { path, fd } = openTemp(t, constants.O_RDWR);
  const big = Buffer.alloc(48 * MiB, 0x42);
  assert.equal(await pwriteAsync(fd, big, 12345), big.length);
  assert.equal(statSync(path).size, 12345 + big.length);

  const ro = openSync(path, 'r');
  t.after(() => closeSync(ro));
  await assert.rejects(pwriteAsync(ro, Buffer.alloc(1), 0), (e: unknown) =>
    e instanceof NativeError && e.code === 'EBADF' && e.errno === 9);
  await assert.rejects(pwriteAsync(fd, Buffer.alloc(1), -5), NativeArgumentError);
  await assert.rejects(pwriteAsync(fd, Buffer.alloc(1), 2 ** 53), NativeArgumentError);
});

test('devWrite/devRead: one call each; 0 when nothing is pending', (t) => {
  const fifo = join(tempDir(t), 'fifo');
  execFileSync('mkfifo', [fifo]);
  const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
  t.after(() => closeSync(fd));

  devWrite(fd, 'copen 7,4096');
  devWrite(fd, 'bind ondemand');
  const buf = Buffer.alloc(1024);
  const n = devRead(fd, buf);
  assert.equal(buf.subarray(0, n).toString(), 'copen 7,4096bind ondemand');
  assert.equal(devRead(fd, buf), 0);
  assert.equal(writeBuffer(fd, Buffer.from([1, 2, 3])), 3);
  assert.equal(devRead(fd, buf.subarray(10)), 3);
  assert.deepEqual([...buf.subarray(10, 13)], [1, 2, 3]);
});

test('devWrite names the command in its error', (t) => {
  const { path } = openTemp(t, constants.O_RDWR);
  const ro = openSync(path, 'r');
  t.after(() => closeSync(ro));
  assert.throws(() => devWrite(ro, 'copen 3,-2'), (e: unknown) =>
    e instanceof NativeError && e.code === 'EBADF' && e.syscall === 'write' &&
    e.message.includes("'copen 3,-2'"));
  assert.throws(() => devWrite(ro, ''), NativeArgumentError);
});

test('ioctlReadComplete reaches the kernel (ENOTTY on a file that is not an anon fd)', (t) => {
  const { fd } = openTemp(t, constants.O_RDWR);
  assert.throws(() => ioctlReadComplete(fd, 42), (e: unknown) =>
    e instanceof NativeError && e.code === 'ENOTTY' && e.syscall === 'ioctl' &&
    /msg_id 42/.test(e.message));
  assert.throws(() => ioctlReadComplete(fd, 2 ** 32), NativeArgumentError);
});

test('closeFd closes, and a second close is EBADF', (t) => {
  const path = join(tempDir(t), 'f');
  const fd = openSync(path, 'w');
  closeFd(fd);
  assert.throws(() => closeFd(fd), (e: unknown) => e instanceof NativeError && e.code === 'EBADF');
  assert.throws(() => closeFd(-1), NativeArgumentError);
});
