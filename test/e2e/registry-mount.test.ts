// `ondine mount <ref>` through the fanotify front end against a real docker-registry on
// 127.0.0.1: an image built by `ondine build` and pushed with the Nydus conventions mounts by
// reference, reads back identical to its source, and lazily (one small file costs a small
// part of the blob, fetched with Range requests); a plain OCI image is refused with advice to
// convert it; a reference the registry does not have is a clear "not found".
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { pushLazy, type PushedLazyImage } from '../helpers/lazy-push.js';
import { pushTestImage, startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { assertSameTree } from '../helpers/tree-compare.js';

describe('mount by registry reference (fanotify)', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let registry: RegistryServer;
  let d: FanotifyDaemon;
  let src: string;
  let pushed: PushedLazyImage;

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'reg-mount');
    registry = await startRegistry();
    suite.after(() => registry.stop());
    src = join(work, 'src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    mkdirSync(join(src, 'usr/lib'), { recursive: true });
    writeFileSync(join(src, 'usr/lib/big.bin'), pseudoRandomBytes(7, 24 << 20));
    writeFileSync(join(src, 'etc/hostname'), 'ondine-from-a-registry\n');
    for (let i = 0; i < 30; i++) writeFileSync(join(src, 'etc', `conf-${i}`), pseudoRandomBytes(50 + i, 2000 + i * 333));
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    pushed = await pushLazy(registry, 'team/app', '1', join(work, 'img', 'bootstrap'), join(work, 'img', 'blobs'));
    d = await startFanotifyDaemon(suite, work);
  });

  test('one small file of a pushed image costs a small part of its blob, then every file equals the source', async (t) => {
    const ref = `${registry.host}/team/app:1`;
    const mnt = join(work, 'mnt-app');
    await d.mount(ref, mnt);
    const s0 = await d.status();
    const m = s0.mounts.find((x) => x.mountpoint === mnt) as unknown as { source: string; ref: string; blobs: unknown[] };
    assert.equal(m.source, `${registry.host}/team/app`);
    assert.equal(m.ref, ref);
    dropCaches();
    const r = await readInChild(work, [{ path: join(mnt, 'etc/hostname') }]);
    assert.equal(r.outcomes[0]?.result, 'ok', JSON.stringify(r));
    assert.equal(r.outcomes[0]?.sha, sha256(Buffer.from('ondine-from-a-registry\n')));
    const s1 = await d.status();
    const counted = s1.sources[`${registry.host}/team/app`];
    assert.ok(counted, `registry source counted in status: ${JSON.stringify(s1.sources)}`);
    const blob = pushed.blobs[0]!;
    const bytes = counted[blob.id]?.bytes ?? 0;
    t.diagnostic(`one small file: ${bytes} of ${blob.size} blob bytes in ${counted[blob.id]?.requests} requests`);
    assert.ok(bytes > 0 && bytes < blob.size / 10, `lazy: ${bytes} bytes of a ${blob.size}-byte blob`);
    const gets = (await registry.requests()).filter((e) => e.method === 'GET' && e.path.includes(`/blobs/sha256:${blob.id}`));
    assert.ok(gets.length >= 1 && gets.every((e) => e.status === 206), `blob reads are Range reads: ${JSON.stringify(gets.map((e) => e.status))}`);

    await assertSameTree(t, 'mount by reference vs source', src, mnt, { dirNlink: true });
    const s2 = await d.status();
    const all = s2.sources[`${registry.host}/team/app`]![blob.id]!;
    t.diagnostic(`whole tree: ${all.bytes} bytes in ${all.requests} requests for a ${blob.size}-byte blob`);
    assert.ok(all.bytes >= blob.size * 0.9, 'reading everything fetched (nearly) the whole blob');
    await d.umount(mnt);
  });

  test('a plain OCI image is refused: not a lazy image, convert it', async () => {
    await pushTestImage(registry, 'plain/app', 'v1', [Buffer.from('not a tar, never read')]);
    const mnt = join(work, 'mnt-plain');
    mkdirSync(mnt);
    const r = await d.cli(['mount', `${registry.host}/plain/app:v1`, mnt, '--mode', 'fanotify']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ONDINE_ERR_NOT_LAZY/);
    assert.match(r.stderr, /plain OCI image, not a lazy one/);
    assert.match(r.stderr, new RegExp(`ondine convert ${registry.host}/plain/app:v1 ${registry.host}/plain/app:v1-lazy`));
    assert.equal((await d.status()).mounts.filter((x) => x.mountpoint === mnt).length, 0);
  });

  test('a tag the registry does not have is not found, and nothing is mounted', async () => {
    const mnt = join(work, 'mnt-missing');
    mkdirSync(mnt);
    const r = await d.cli(['mount', `${registry.host}/team/app:nope`, mnt, '--mode', 'fanotify']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ONDINE_ERR_NOT_FOUND/);
    assert.equal((await d.status()).mounts.filter((x) => x.mountpoint === mnt).length, 0);
  });
});
