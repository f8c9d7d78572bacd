import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  NativeError,
  closeFd,
  recvMessage,
  sendMessage,
  socketpair,
} from '../../src/native/index.js';
import { tempDir } from './util.js';

test('sendMessage/recvMessage keep datagram boundaries and carry an optional fd', (t) => {
  const [a, b] = socketpair({ nonBlocking: true });
  t.after(() => { closeFd(a); closeFd(b); });
  const file = join(tempDir(t), 'f');
  writeFileSync(file, 'by datagram');
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(64);

  assert.deepEqual(recvMessage(b, buf), { length: -1, fd: -1 }, 'nothing pending yet');
  assert.equal(sendMessage(a, Buffer.from('first')), true);
  assert.equal(sendMessage(a, Buffer.from('second, with an fd'), fd), true);
  closeSync(fd);

  assert.deepEqual(recvMessage(b, buf), { length: 5, fd: -1 });
  assert.equal(buf.toString('utf8', 0, 5), 'first');
  const got = recvMessage(b, buf);
  assert.equal(buf.toString('utf8', 0, got.length), 'second, with an fd');
  assert.ok(got.fd >= 0);
  assert.equal(fstatSync(got.fd).ino, statSync(file).ino);
  const flags = parseInt(readFileSync(`/proc/self/fdinfo/${got.fd}`, 'utf8').match(/flags:\s+(\d+)/)![1]!, 8);
  assert.ok((flags & 0o2000000) !== 0, 'the received fd is close-on-exec');
  closeSync(got.fd);
  assert.deepEqual(recvMessage(b, buf), { length: -1, fd: -1 });
});

test('recvMessage refuses a datagram longer than its buffer and reports a closed peer', () => {
  const [a, b] = socketpair({ nonBlocking: true });
  sendMessage(a, Buffer.alloc(32, 1));
  assert.throws(() => recvMessage(b, Buffer.alloc(16)), (e: unknown) => e instanceof NativeError && e.code === 'EMSGSIZE');
  closeFd(a);
  assert.throws(() => recvMessage(b, Buffer.alloc(16)), (e: unknown) => e instanceof NativeError && e.code === 'ECONNRESET');
  closeFd(b);
});

test('sendMessage reports a full socket as false, not an error', (t) => {
  const [a, b] = socketpair({ nonBlocking: true });
  t.after(() => { closeFd(a); closeFd(b); });
  let sent = 0;
  while (sendMessage(a, Buffer.alloc(1024))) sent++;
  assert.ok(sent > 0);
  assert.equal(recvMessage(b, Buffer.alloc(1024)).length, 1024);
  assert.equal(sendMessage(a, Buffer.alloc(16)), true, 'room again once the reader drains one');
});
