import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { NativeError, closeFd, recvFd, sendFd, socketpair, writeBuffer } from '../../src/native/index.js';
import { tempDir } from './util.js';

test('sendFd/recvFd pass an open file over a unix socket', (t) => {
  const [a, b] = socketpair({ nonBlocking: true });
  t.after(() => { closeFd(a); closeFd(b); });
  const file = join(tempDir(t), 'f');
  writeFileSync(file, 'passed along');
  const fd = openSync(file, 'r');

  assert.equal(recvFd(b), -1, 'nothing pending yet');
  sendFd(a, fd);
  closeSync(fd); // the receiver's copy stays open
  const got = recvFd(b);
  assert.ok(got >= 0);
  const buf = Buffer.alloc(64);
  const n = readSync(got, buf, 0, buf.length, 0);
  assert.equal(buf.toString('utf8', 0, n), 'passed along');
  assert.equal(fstatSync(got).ino, statSync(file).ino);
  closeSync(got);
});

test('several fds in a row arrive one per recvFd', (t) => {
  const [a, b] = socketpair({ nonBlocking: true });
  t.after(() => { closeFd(a); closeFd(b); });
  const dir = tempDir(t);
  const inodes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const f = join(dir, `f${i}`);
    writeFileSync(f, String(i));
    const fd = openSync(f, 'r');
    inodes.push(fstatSync(fd).ino);
    sendFd(a, fd);
    closeSync(fd);
  }
  for (let i = 0; i < 3; i++) {
    const got = recvFd(b);
    assert.equal(fstatSync(got).ino, inodes[i]);
    closeSync(got);
  }
  assert.equal(recvFd(b), -1);
});

test('recvFd refuses a message without an fd, and reports a closed peer', () => {
  const [a, b] = socketpair({ nonBlocking: true });
  writeBuffer(a, Buffer.from('z'));
  assert.throws(() => recvFd(b), (e: unknown) => e instanceof NativeError && e.code === 'EPROTO');
  closeFd(a);
  assert.throws(() => recvFd(b), (e: unknown) => e instanceof NativeError && e.code === 'ECONNRESET');
  closeFd(b);
  assert.throws(() => sendFd(b, 0), (e: unknown) => e instanceof NativeError && e.code === 'EBADF');
});
