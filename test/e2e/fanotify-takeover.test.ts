// The supervisor holds the fanotify group; the worker holds a copy. If the supervisor dies,
// the group must not close (the kernel would then allow every unfilled range: zeros): the
// worker takes the group over and keeps serving, and says so in /v1/health.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, startFanotifyDaemon } from '../helpers/fanotify-daemon.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('fanotify: losing the supervisor', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());

  test('the worker takes the group over: cold reads still return the right bytes, health says what happened', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'fan-takeover');
    const src = join(work, 'src');
    mkdirSync(src);
    const big = pseudoRandomBytes(11, 8 << 20);
    writeFileSync(join(src, 'big'), big);
    await cliOk(['build', src, '-o', join(work, 'img')]);
    const d = await startFanotifyDaemon(t, work);
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    await d.mount(join(work, 'img'), mnt);
    const before = await d.status();
    assert.ok(before.supervisorPid, 'no supervisor');
    // Once the supervisor is gone the command the helper started exits, so its cleanup cannot
    // find the worker by that process: stop the worker here, and kill it if it is still there.
    t.after(() => { try { process.kill(before.workerPid, 'SIGKILL'); } catch { /* gone */ } });
    assert.ok(readFileSync(join(mnt, 'big')).subarray(0, 1 << 20).equals(big.subarray(0, 1 << 20)));
    process.kill(before.supervisorPid!, 'SIGKILL');
    // Cold data after the loss: only the worker can fill it now.
    dropCaches();
    const got = readFileSync(join(mnt, 'big'));
    assert.ok(got.equals(big), 'the big file differs after the supervisor died');
    const health = (await d.client.health()) as unknown as { ok: boolean; problems?: string[]; supervisorPid: number | null; workerPid: number };
    assert.equal(health.ok, false);
    assert.match((health.problems ?? []).join(' '), /supervisor lost/);
    assert.equal(health.supervisorPid, null);
    assert.equal(health.workerPid, before.workerPid);
    // The worker still stops cleanly on request, unmounting first.
    await d.client.shutdown(true);
    for (let i = 0; i < 100 && alive(before.workerPid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(before.workerPid), false, 'the worker did not exit after stop --force');
  });
});
