// Two mounts of one image, and images sharing a blob, share one cache file per blob: the
// shared blob is fetched once, whichever mount reads it, and one mark serves them all.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { parseBootstrap } from '../../src/format/bootstrap.js';
import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, sourceBytes, startFanotifyDaemon } from '../helpers/fanotify-daemon.js';

describe('fanotify cache files are shared', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());

  test('two mounts of one image and a second image with the same blob fetch it once', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'fan-share');
    const base = join(work, 'base');
    mkdirSync(base);
    const big = pseudoRandomBytes(7, 6 << 20);
    writeFileSync(join(base, 'big'), big);
    writeFileSync(join(base, 'a.txt'), 'image a\n');
    // The same tree built twice: byte-identical blobs, so the same blob id in both images.
    await cliOk(['build', base, '-o', join(work, 'img1')]);
    await cliOk(['build', base, '-o', join(work, 'img2')]);
    const id1 = parseBootstrap(readFileSync(join(work, 'img1/bootstrap'))).blobs[0]!.blobId;
    const id2 = parseBootstrap(readFileSync(join(work, 'img2/bootstrap'))).blobs[0]!.blobId;
    assert.equal(id1, id2, 'the two builds do not share their blob');
    const d = await startFanotifyDaemon(t, work);
    const mnts = ['m1', 'm2', 'm3'].map((m) => join(work, m));
    for (const m of mnts) mkdirSync(m);
    await d.mount(join(work, 'img1'), mnts[0]!);
    await d.mount(join(work, 'img1'), mnts[1]!);
    await d.mount(join(work, 'img2'), mnts[2]!);
    const s = await d.status();
    const files = new Set(s.mounts.flatMap((m) => m.blobs.map((b) => b.cacheFile)));
    assert.equal(files.size, 1, `expected one cache file for the shared blob, got ${[...files].join(', ')}`);
    assert.deepEqual(readdirSync(join(d.cacheDir, 'ondine', 'blobs')), [id1]);
    // Half the big file through the first mount, the rest through the other image.
    const half = big.length / 2;
    assert.ok(readFileSync(join(mnts[0]!, 'big')).subarray(0, half).equals(big.subarray(0, half)));
    dropCaches();
    for (const m of mnts) assert.ok(readFileSync(join(m, 'big')).equals(big), `${m}/big differs`);
    const fetched = [...sourceBytes(await d.status()).values()].reduce((a, b) => a + b, 0);
    const blobBytes = readFileSync(join(work, 'img1', 'blobs', id1)).length;
    assert.ok(fetched <= blobBytes, `fetched ${fetched} bytes for a ${blobBytes}-byte blob: something was fetched twice`);
    // Unmounting one user keeps the cache file served for the others.
    await d.umount(mnts[0]!);
    dropCaches();
    assert.ok(readFileSync(join(mnts[2]!, 'big')).equals(big));
  });
});
