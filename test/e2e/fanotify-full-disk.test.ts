// A cache directory whose filesystem is full: the fill cannot be written, so the reader gets
// EIO (never zeros, never a hang), the daemon keeps serving, and what fits is still served.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { MNT_DETACH, umount2 } from '../../src/native/index.js';
import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { pseudoRandomBytes, readInChild, startFanotifyDaemon } from '../helpers/fanotify-daemon.js';

describe('fanotify: a full cache filesystem', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());

  test('a fill that does not fit ends in EIO for that reader; small files still read', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'fan-enospc');
    const src = join(work, 'src');
    mkdirSync(src);
    const big = pseudoRandomBytes(21, 24 << 20);
    writeFileSync(join(src, 'big'), big);
    writeFileSync(join(src, 'small.txt'), 'fits\n');
    await cliOk(['build', src, '-o', join(work, 'img')]);
    // A 16 MiB ext4 on a loop device as the cache directory: the 24 MiB blob cannot fit.
    const fsImage = join(work, 'cachefs.img');
    execFileSync('truncate', ['-s', '16M', fsImage]);
    execFileSync('mkfs.ext4', ['-q', '-F', fsImage]);
    const cacheDir = join(work, 'cache');
    mkdirSync(cacheDir);
    execFileSync('mount', ['-o', 'loop', fsImage, cacheDir]);
    t.after(() => { try { umount2(cacheDir, MNT_DETACH); } catch { /* gone */ } });
    const d = await startFanotifyDaemon(t, work, { cacheDir, readTimeoutMs: 5000 });
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    await d.mount(join(work, 'img'), mnt);
    assert.equal(readFileSync(join(mnt, 'small.txt'), 'utf8'), 'fits\n');
    const r = await readInChild(work, [{ path: join(mnt, 'big') }]);
    assert.ok(!r.hung, 'the read of a file that cannot be cached hung');
    const o = r.outcomes[0];
    assert.ok(o, `the reader reported nothing: ${r.stderr.slice(-300)}`);
    assert.notEqual(o.result, 'ok', 'a 24 MiB file was read whole through a 16 MiB cache');
    assert.equal(o.result, 'EIO');
    assert.ok((await d.status()).workerPid, 'the daemon stopped answering');
  });
});
