// The socket's lock: one holder at a time, a refusal that names the holder, and "held" as
// long as any process keeps the open file description (here: a child that inherited it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DaemonRunningError, lockHeld, readHolder, SocketLock } from '../../src/daemon/socket-lock.js';

test('a second taker is refused naming the holder; the lock lives while an inheriting process does', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ondine-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'run', 'ondine.sock');
  assert.equal(lockHeld(socket), false, 'no lock file: not held');
  const lock = SocketLock.take(socket);
  lock.record({ pid: 4242, cacheDir: '/var/cache/x' });
  assert.deepEqual(readHolder(socket), { pid: 4242, cacheDir: '/var/cache/x' });
  assert.equal(lockHeld(socket), true);
  assert.throws(() => SocketLock.take(socket), (e: unknown) => e instanceof DaemonRunningError && /pid 4242, cache directory \/var\/cache\/x/.test(e.message) && e.code === 'ONDINE_ERR_BUSY');

  // A child holding the same open file description keeps the lock after this process lets go.
  const child = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', lock.fd] });
  t.after(() => { child.kill('SIGKILL'); });
  await new Promise((r) => child.once('spawn', r));
  lock.close();
  assert.equal(lockHeld(socket), true, 'held by the child');
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
  assert.equal(lockHeld(socket), false, 'free once the last holder is gone');
  const again = SocketLock.take(socket);
  again.close();
});
