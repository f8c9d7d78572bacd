// `ondine mount <ref>` through the fanotify front end against a real docker-registry on
// 127.0.0.1: an image built by `ondine build` and pushed by `ondine push` mounts by reference,
// reads back identical to its source, and lazily (one small file costs a small part of the
// blob, fetched with Range requests); a plain OCI image is refused with advice to convert it,
// and the advice, followed, gives an image that mounts and equals the original; a reference
// the registry does not have is a clear "not found". Nydus's own RAFS v6 fixture mounts by
// reference too, from a static "registry" (nginx serving files): its blob's id is not its
// sha256, so no real registry would take the upload.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { parseBootstrap } from '../../src/format/bootstrap.js';
import { makeBootstrapLayer } from '../../src/oci/bootstrap-layer.js';
import { ANNOTATION, MEDIA_TYPE } from '../../src/registry/media-types.js';
import { Cleanup, cliOk, requireKernelFs, scratchDir, sharedDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { mountErofs, unpackWithCli } from '../helpers/kernel-mount.js';
import { startNginx } from '../helpers/nginx.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import type { PushedLazyImage } from '../helpers/lazy-push.js';
import { startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { makeUmociImage, umociUnpack } from '../helpers/oci-image.js';
import { assertSameTree } from '../helpers/tree-compare.js';

const NYDUS = join(sharedDir, 'fixtures', 'nydus-rafs-v6');
const NYDUS_BOOT = join(NYDUS, 'rafs-v6-2.2.boot');
const NYDUS_BLOB = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';

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
    // Pushed the way a user would: `ondine push` (H-oci's), then its blobs listed for the checks.
    await cliOk(['push', join(work, 'img'), `${registry.host}/team/app:1`]);
    const b = parseBootstrap(readFileSync(join(work, 'img', 'bootstrap')));
    pushed = { manifestDigest: '', bootstrapLayerDigest: '', blobs: b.blobs.map((e) => ({ id: e.blobId, size: statSync(join(work, 'img', 'blobs', e.blobId)).size })) };
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
    // Sequential reads fetch a chunk and the read-ahead behind it as one run: one Range
    // request for several adjacent chunks.
    const chunks = parseBootstrap(readFileSync(join(work, 'img', 'bootstrap'))).blobs[0]!.chunkCount;
    assert.ok(all.requests < chunks, `${all.requests} requests for ${chunks} chunks: adjacent chunks share requests`);
    await d.umount(mnt);
  });

  test("Nydus's RAFS v6 fixture, served as a Nydus image, mounts by reference and reads like a plain mount of its blob", { skip: existsSync(NYDUS_BOOT) ? false : `${NYDUS_BOOT} not found` }, async (t) => {
    // A static registry: the manifest and blobs as files, Range served by nginx itself.
    const www = join(work, 'static-registry');
    const repo = join(www, 'v2', 'nydus', 'fixture');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(join(repo, 'manifests'), { recursive: true });
    const blob = readFileSync(join(NYDUS, NYDUS_BLOB));
    copyFileSync(join(NYDUS, NYDUS_BLOB), join(repo, 'blobs', `sha256:${NYDUS_BLOB}`));
    const boot = await makeBootstrapLayer(readFileSync(NYDUS_BOOT));
    writeFileSync(join(repo, 'blobs', boot.digest), boot.bytes);
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${NYDUS_BLOB}`, boot.diffId] } }));
    const configDigest = `sha256:${sha256(config)}`;
    writeFileSync(join(repo, 'blobs', configDigest), config);
    writeFileSync(join(repo, 'manifests', 'v6'), JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest,
      config: { mediaType: MEDIA_TYPE.ociConfig, digest: configDigest, size: config.length },
      layers: [
        { mediaType: MEDIA_TYPE.nydusBlob, digest: `sha256:${NYDUS_BLOB}`, size: blob.length, annotations: { [ANNOTATION.nydusBlob]: 'true' } },
        boot.descriptor,
      ],
    }));
    const nginx = await startNginx({
      server: () => `location = /v2/ { default_type application/json; return 200 '{}'; }
      location ~ /manifests/ { root ${www}; default_type ${MEDIA_TYPE.ociManifest}; }
      location /v2/ { root ${www}; default_type application/octet-stream; }`,
    });
    t.after(() => nginx.stop());

    const devices = await unpackWithCli(NYDUS_BOOT, NYDUS, join(work, 'nydus-unpacked'));
    const plain = await mountErofs(t, NYDUS_BOOT, devices, join(work, 'mnt-nydus-plain'));
    const mnt = join(work, 'mnt-nydus-ref');
    await d.mount(`${nginx.host}/nydus/fixture:v6`, mnt);
    dropCaches();
    const stats = await assertSameTree(t, 'Nydus fixture by reference vs plain mount', plain.dir, mnt, { dirNlink: true });
    assert.equal(stats.files, 2, 'lib.rs and sync_io.rs');
    const ranged = nginx.log().filter((e) => e.path.endsWith(NYDUS_BLOB));
    assert.ok(ranged.length > 0 && ranged.every((e) => e.status === 206), `the blob was read by Range: ${JSON.stringify(ranged)}`);
    await d.umount(mnt);
  });

  test('a plain OCI image is refused with the convert command to run; run as advised, the result mounts and equals the image', async (t) => {
    const img = makeUmociImage(work, 'plain', { seed: 31 });
    const root = umociUnpack(img, join(work, 'plain-unpacked'));
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', img.ref, `docker://${registry.host}/plain/app:v1`]);
    const mnt = join(work, 'mnt-plain');
    mkdirSync(mnt);
    const r = await d.cli(['mount', `${registry.host}/plain/app:v1`, mnt, '--mode', 'fanotify']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ONDINE_ERR_NOT_LAZY/);
    assert.match(r.stderr, /plain OCI image, not a lazy one/);
    assert.equal((await d.status()).mounts.filter((x) => x.mountpoint === mnt).length, 0);
    const advice = /`ondine (convert \S+ \S+)`/.exec(r.stderr);
    assert.ok(advice, r.stderr);
    assert.equal(advice[1], `convert ${registry.host}/plain/app:v1 ${registry.host}/plain/app:v1-lazy`);
    await cliOk(advice[1]!.split(' '));
    await d.mount(`${registry.host}/plain/app:v1-lazy`, mnt);
    dropCaches();
    await assertSameTree(t, 'converted image by reference vs umoci unpack', root, mnt, { dirNlink: true });
    await d.umount(mnt);
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
