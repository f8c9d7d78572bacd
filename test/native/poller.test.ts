import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { FdPoller, NativeArgumentError, NativeError, devRead } from '../../src/native/index.js';
import { settle, tempDir, until } from './util.js';

const INDEX = new URL('../../src/native/index.js', import.meta.url).href;

/** A FIFO opened read-write (never blocks on open, never hits EOF): a pollable fd. */
function fifo(t: TestContext): number {
  const path = join(tempDir(t), 'fifo');
  execFileSync('mkfifo', [path]);
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  t.after(() => closeSync(fd));
  return fd;
}

function drain(fd: number): string {
  const buf = Buffer.alloc(4096);
  let text = '';
  for (let n = devRead(fd, buf); n > 0; n = devRead(fd, buf)) text += buf.toString('utf8', 0, n);
  return text;
}

function runChild(code: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 30000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('FdPoller reports readability of a pipe and stays silent after close', async (t) => {
  const fd = fifo(t);
  const seen: string[] = [];
  let calls = 0;
  const poller = new FdPoller(fd, () => {
    calls++;
    seen.push(drain(fd));
  });
  await settle();
  assert.equal(calls, 0, 'nothing readable yet: no callback');

  writeSync(fd, 'one');
  await until(() => seen.join('') === 'one');
  writeSync(fd, 'two');
  await until(() => seen.join('') === 'onetwo');
  assert.equal(poller.closed, false);

  poller.close();
  poller.close(); // idempotent
  assert.equal(poller.closed, true);
  const before = calls;
  writeSync(fd, 'three');
  await settle();
  assert.equal(calls, before, 'no callback after close');
  assert.equal(drain(fd), 'three');
});

test('an undrained fd fires again (level triggered); close() inside the callback stops it', async (t) => {
  const fd = fifo(t);
  let calls = 0;
  const poller = new FdPoller(fd, () => {
    calls++;
    if (calls === 3) poller.close();
  });
  writeSync(fd, 'x');
  await until(() => calls >= 3);
  await settle();
  assert.equal(calls, 3);
  assert.equal(drain(fd), 'x');
});

test('FdPoller refuses what epoll cannot watch, and bad arguments', (t) => {
  const file = join(tempDir(t), 'regular');
  const fd = openSync(file, 'w');
  t.after(() => closeSync(fd));
  assert.throws(() => new FdPoller(fd, () => {}), (e: unknown) =>
    e instanceof NativeError && e.code === 'EPERM' && e.syscall === 'uv_poll_init');
  assert.throws(() => new FdPoller(-1, () => {}), NativeArgumentError);
  assert.throws(() => new FdPoller(fd, 'cb' as unknown as () => void), NativeArgumentError);
});

test('an exception in the callback reaches uncaughtException', () => {
  const r = runChild(`
    import { FdPoller, socketpair, writeBuffer } from ${JSON.stringify(INDEX)};
    const [a, b] = socketpair({ nonBlocking: true });
    process.on('uncaughtException', (err) => { console.log('caught:' + err.message); process.exit(0); });
    new FdPoller(a, () => { throw new Error('boom'); });
    writeBuffer(b, Buffer.from('x'));
  `);
  assert.equal(r.stdout.trim(), 'caught:boom', r.stderr);
  assert.equal(r.status, 0);
});

test('an open poller keeps the process alive unless unref()d', () => {
  const code = (unref: boolean) => `
    import { FdPoller, socketpair } from ${JSON.stringify(INDEX)};
    const [a] = socketpair({ nonBlocking: true });
    const p = new FdPoller(a, () => {});
    ${unref ? 'p.unref();' : 'setTimeout(() => { console.log("still alive"); process.exit(0); }, 300);'}
  `;
  const unrefd = runChild(code(true));
  assert.equal(unrefd.status, 0, unrefd.stderr);
  assert.equal(unrefd.stdout, '');
  const held = runChild(code(false));
  assert.equal(held.stdout.trim(), 'still alive', held.stderr);
});

test('a worker thread that exits with a poller still open tears down cleanly', () => {
  const r = runChild(`
    import { Worker } from 'node:worker_threads';
    const src = \`
      import { FdPoller, socketpair } from ${JSON.stringify(INDEX)};
      import { parentPort } from 'node:worker_threads';
      const [a] = socketpair({ nonBlocking: true });
      new FdPoller(a, () => {});
      parentPort.postMessage('polling');
    \`;
    for (let i = 0; i < 3; i++) {
      const w = new Worker(new URL('data:text/javascript,' + encodeURIComponent(src)));
      await new Promise((resolve) => w.once('message', resolve));
      const code = await w.terminate();
      console.log('worker exit ' + code);
    }
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 3, r.stdout + r.stderr);
});
