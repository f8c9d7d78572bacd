// One daemon per socket, no resident launcher, and `ondine stop` that leaves no process
// behind even while a pull hangs on a registry: driven through the CLI on the host kernel.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { lockHeld } from '../../src/daemon/socket-lock.js';
import { Cleanup, cli, cliPath, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { startFanotifyDaemon } from '../helpers/fanotify-daemon.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const t of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) if (t) out.push(Number(t));
  return out;
}

/** A registry that answers the API check and then never answers a manifest. */
async function hangingRegistry(): Promise<{ host: string; manifestAsks: () => number; stop(): Promise<void> }> {
  let asks = 0;
  const held: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/v2/' || req.url === '/v2') {
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      res.end('{}');
      return;
    }
    if (/\/manifests\//.test(req.url ?? '')) asks++;
    held.push(res); // never answered
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    manifestAsks: () => asks,
    stop: () => new Promise<void>((r) => { for (const res of held) res.destroy(); server.closeAllConnections(); server.close(() => r()); }),
  };
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('daemon lifecycle', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());

  test('`ondine daemon` returns once it serves: two processes, and a second daemon on the socket is refused naming the first', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'lifecycle-one');
    const d = await startFanotifyDaemon(t, work);
    const h = await d.client.health();
    assert.ok(h.supervisorPid, 'served by the supervisor');
    // The helper saw `ondine daemon` exit 0; what is left is the supervisor and its worker.
    assert.deepEqual(childrenOf(h.supervisorPid), [h.workerPid], 'the supervisor has one child, the worker');
    const ppid = Number(/^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${h.supervisorPid}/status`, 'utf8'))![1]);
    assert.equal(/\bnode\b/.test(readFileSync(`/proc/${ppid}/cmdline`, 'utf8')) && readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes('daemon'), false, 'no `ondine daemon` launcher is its parent');

    const otherCache = join(work, 'cache-2');
    mkdirSync(otherCache);
    const second = await cli(['daemon', '--cache-dir', otherCache, '--socket', d.socket, '--mode', 'fanotify']);
    assert.equal(second.code, 2, `the second daemon is refused: ${second.stderr}`);
    const lines = second.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${second.stderr}`);
    assert.match(lines[0]!, new RegExp(`pid ${h.supervisorPid}\\b.*${d.cacheDir.replace(/[/.]/g, '\\$&')}`), 'it names the first daemon\'s pid and cache directory');
    const still = await d.client.health();
    assert.equal(still.workerPid, h.workerPid, 'the first daemon still answers on the socket, unchanged');
  });

  test('`ondine stop` with a pull in flight: no daemon process is left 5 s after it answers', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'lifecycle-stop');
    const registry = await hangingRegistry();
    t.after(() => registry.stop());
    const d = await startFanotifyDaemon(t, work);
    const h = await d.client.health();
    const pids = [h.supervisorPid!, h.workerPid];
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    const mount = spawn(process.execPath, [cliPath, 'mount', `${registry.host}/team/app:1`, mnt, '--mode', 'fanotify', '--socket', d.socket, '--cache-dir', d.cacheDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let mountErr = '';
    mount.stderr!.on('data', (b: Buffer) => { mountErr += b.toString('utf8'); });
    const mountExit = new Promise<number | null>((r) => mount.once('exit', (c) => r(c)));
    t.after(() => { if (mount.exitCode === null) mount.kill('SIGKILL'); });
    await until('the daemon asks the registry for the manifest', () => registry.manifestAsks() > 0, 30_000);

    const stop = await d.cli(['stop']);
    const answered = Date.now();
    assert.equal(stop.code, 0, `stop exits 0: ${stop.stderr}`);
    assert.match(stop.stdout, /daemon stopped/);
    await until('every daemon process is gone', () => pids.every((p) => !alive(p)), 5_000);
    assert.ok(Date.now() - answered <= 5_000);
    assert.equal(lockHeld(d.socket), false, 'the socket lock is free');
    // The waiting `ondine mount` hears of it rather than hang.
    const code = await Promise.race([mountExit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
    assert.notEqual(code, 'hung', 'ondine mount still waits after the daemon stopped');
    assert.notEqual(code, 0, `ondine mount failed: ${mountErr}`);
  });

  test('a stale socket (its daemon killed) is replaced by the next daemon', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'lifecycle-stale');
    const first = await startFanotifyDaemon(t, work, { socket: join(work, 'run', 'ondine.sock') });
    process.kill(-first.supervisorPid, 'SIGKILL');
    await first.exited;
    assert.ok(existsSync(first.socket), 'the killed daemon left its socket behind');
    const second = await startFanotifyDaemon(t, work, { socket: first.socket, cacheDir: first.cacheDir });
    const h = await second.client.health();
    assert.notEqual(h.supervisorPid, first.supervisorPid, 'a new daemon answers on the socket');
  });
});
