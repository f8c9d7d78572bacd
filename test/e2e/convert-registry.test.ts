// Host end-to-end: `ondine convert` against a real docker-registry on 127.0.0.1. Source images
// are made by umoci (two layers: a whiteout, a symlink, a hardlink) and copied into the
// registry by skopeo. The converted image is fetched back (manifest, bootstrap layer, blobs),
// mounted by the kernel, and compared with `umoci unpack` of the source. Also: a second image
// sharing the base uploads only its new blobs; --chunk-dict from a reference mounts the dict's
// blobs across repositories; a multi-platform index converts every platform into an index;
// build --push / push; an OCI layout as target.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { ANNOTATION, MEDIA_TYPE, NYDUS_OS_FEATURE } from '../../src/registry/media-types.js';
import { blobLayers, extractBootstrap, findBootstrapLayer } from '../../src/oci/nydus-image.js';
import type { ImageConfig, ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { Cleanup, cli, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { mountErofs, unpackWithCli } from '../helpers/kernel-mount.js';
import { deriveUmociImage, makeUmociImage, umociUnpack, type MadeImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { assertSameTree } from '../helpers/tree-compare.js';

interface Summary {
  digest: string;
  bytesRead: number;
  bytesWritten: number;
  push: { blobsUploaded: number; blobsSkipped: number; blobsMounted: number; bytesUploaded: number };
  platforms: Array<{ platform: string; manifestDigest: string }>;
}

describe('ondine convert with a registry', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let reg: RegistryServer;
  let client: RegistryClient;
  let imgA: MadeImage;
  let imgB: MadeImage;
  let rootA: string;
  let rootB: string;

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'convert-registry');
    reg = await startRegistry();
    suite.after(() => reg.stop());
    client = new RegistryClient({ retries: 1 });
    suite.after(() => client.close());
    imgA = makeUmociImage(work, 'a', { seed: 11 });
    imgB = deriveUmociImage(imgA, work, 'b', 12);
    rootA = umociUnpack(imgA, join(work, 'unpacked-a'));
    rootB = umociUnpack(imgB, join(work, 'unpacked-b'));
    for (const [img, tag] of [[imgA, 'a'], [imgB, 'b']] as const) {
      execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', img.ref, `docker://${reg.host}/src/app:${tag}`]);
    }
  });

  async function convert(args: string[]): Promise<Summary> {
    const r = await cliOk(['convert', ...args, '--json', '--chunk-size', '64K']);
    return JSON.parse(r.stdout) as Summary;
  }

  async function manifestOf(ref: string): Promise<{ json: any; digest: string; mediaType: string }> {
    return client.getManifest(parseReference(ref));
  }

  async function blobBytes(ref: string, digest: string): Promise<Buffer> {
    const r = parseReference(ref);
    const parts: Buffer[] = [];
    for await (const c of await client.blobStream(r.registry, r.repository, digest)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  /** Fetches bootstrap and blobs (the manifest's, plus any blob dirs given) and mounts the image. */
  async function mountFromRegistry(t: { after(fn: () => unknown): void }, ref: string, label: string, manifest: ImageManifest, extraRepos: string[] = []): Promise<string> {
    const dir = join(work, label);
    mkdirSync(join(dir, 'blobs'), { recursive: true });
    const boot = findBootstrapLayer(manifest)!;
    writeFileSync(join(dir, 'bootstrap'), await extractBootstrap(await blobBytes(ref, boot.digest)));
    for (const b of blobLayers(manifest)) {
      let bytes: Buffer | undefined;
      for (const r of [ref, ...extraRepos]) {
        bytes = await blobBytes(r, b.digest).catch(() => undefined);
        if (bytes) break;
      }
      assert.ok(bytes, `blob ${b.digest} fetched`);
      assert.equal(bytes.length, b.size);
      writeFileSync(join(dir, 'blobs', b.digest.slice(7)), bytes);
    }
    const devices = await unpackWithCli(join(dir, 'bootstrap'), join(dir, 'blobs'), join(dir, 'unpacked'));
    const m = await mountErofs(t, join(dir, 'bootstrap'), devices, join(dir, 'mnt'));
    return m.dir;
  }

  test('converts a registry image: Nydus manifest shape, config kept, kernel mount equals umoci unpack', async (t) => {
    const ref = `${reg.host}/dst/app:a`;
    const s = await convert([`${reg.host}/src/app:a`, ref]);
    const m = await manifestOf(ref);
    assert.equal(m.digest, s.digest);
    assert.equal(m.mediaType, MEDIA_TYPE.ociManifest);
    const manifest = m.json as ImageManifest;
    const layers = manifest.layers;
    assert.equal(layers.length, 3, 'two blob layers and the bootstrap');
    for (const l of layers.slice(0, -1)) {
      assert.equal(l.mediaType, MEDIA_TYPE.nydusBlob);
      assert.deepEqual(l.annotations, { [ANNOTATION.nydusBlob]: 'true' });
    }
    const last = layers.at(-1)!;
    assert.equal(last.mediaType, MEDIA_TYPE.ociLayerGzip);
    assert.deepEqual(last.annotations, { [ANNOTATION.nydusBootstrap]: 'true', [ANNOTATION.nydusFsVersion]: '6' });
    const config = JSON.parse((await blobBytes(ref, manifest.config.digest)).toString()) as ImageConfig;
    const srcConfig = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/src/app:a`], { encoding: 'utf8' })) as ImageConfig;
    assert.deepEqual(config.config, srcConfig.config);
    assert.deepEqual(config.config?.Entrypoint, ['/bin/sh']);
    assert.ok(config.config?.Env?.includes('FOO=bar'));
    assert.equal(config.config?.WorkingDir, '/data');
    assert.equal(config.config?.User, '1000:1000');
    assert.equal(config.os, srcConfig.os);
    assert.equal(config.architecture, srcConfig.architecture);
    assert.equal(config.rootfs.diff_ids.length, layers.length);
    assert.deepEqual(config.rootfs.diff_ids.slice(0, -1), layers.slice(0, -1).map((l) => l.digest));
    const srcSize = (JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/src/app:a`], { encoding: 'utf8' })) as ImageManifest)
      .layers.reduce((a, l) => a + l.size, 0);
    assert.equal(s.bytesRead, srcSize, 'bytes read = compressed source layers');
    assert.equal(s.push.blobsUploaded, 4);
    const mnt = await mountFromRegistry(t, ref, 'mount-a', manifest);
    await assertSameTree(t, 'kernel mount of converted A vs umoci unpack', rootA, mnt, { dirNlink: true });
  });

  test('a second image sharing the base uploads only its new blobs', async (t) => {
    const refA = `${reg.host}/dst/shared:a`;
    const refB = `${reg.host}/dst/shared:b`;
    await convert([`${reg.host}/src/app:a`, refA]);
    const before = await reg.requests();
    const s = await convert([`${reg.host}/src/app:b`, refB]);
    const a = (await manifestOf(refA)).json as ImageManifest;
    const b = (await manifestOf(refB)).json as ImageManifest;
    const inA = new Set(a.layers.map((l) => l.digest));
    const fresh = [...b.layers.filter((l) => !inA.has(l.digest)), b.config];
    assert.equal(b.layers.length, 4);
    assert.deepEqual(b.layers.slice(0, 2).map((l) => l.digest), a.layers.slice(0, 2).map((l) => l.digest), 'base blobs are byte-identical');
    assert.equal(s.push.blobsSkipped, 2);
    assert.equal(s.push.blobsUploaded, fresh.length);
    assert.equal(s.push.bytesUploaded, fresh.reduce((n, l) => n + l.size, 0));
    // The registry agrees: no upload touched a base blob.
    const uploads = (await reg.requests()).slice(before.length).filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
    for (const u of uploads) for (const d of a.layers.slice(0, 2)) assert.ok(!u.path.includes(d.digest.slice(7)), `base blob ${d.digest} uploaded again`);
    const mnt = await mountFromRegistry(t, refB, 'mount-b', b);
    await assertSameTree(t, 'kernel mount of converted B vs umoci unpack', rootB, mnt, { dirNlink: true });
  });

  test('--chunk-dict <ref>: dict blobs are mounted from the dict repository, only new chunks uploaded', async (t) => {
    const dictRef = `${reg.host}/dst/dict:a`;
    await convert([`${reg.host}/src/app:a`, dictRef]);
    const target = `${reg.host}/dst/with-dict:b`;
    const s = await convert([`${reg.host}/src/app:b`, target, '--chunk-dict', dictRef]);
    const dict = (await manifestOf(dictRef)).json as ImageManifest;
    const b = (await manifestOf(target)).json as ImageManifest;
    const dictBlobs = blobLayers(dict).map((l) => l.digest);
    const bBlobs = blobLayers(b).map((l) => l.digest);
    // B's own blobs come first: the new file's, and one for layer 0's data/old, which A's
    // final tree (the dict) no longer references. Then A's two blobs.
    assert.deepEqual(bBlobs.slice(-2), dictBlobs);
    const own = blobLayers(b).slice(0, -2);
    assert.ok(own.length >= 1 && own.length <= 2, `${own.length} own blobs`);
    assert.equal(s.push.blobsMounted, 2);
    const ownBytes = own.reduce((n, l) => n + l.size, 0);
    assert.ok(ownBytes < 600_000, `B's own blobs hold only chunks A lacks (${ownBytes} bytes)`);
    assert.ok(s.push.bytesUploaded < ownBytes + 20_000, `uploaded ${s.push.bytesUploaded} bytes: own blobs, bootstrap and config`);
    const mnt = await mountFromRegistry(t, target, 'mount-dict', b);
    await assertSameTree(t, 'kernel mount of B (chunk dict) vs umoci unpack', rootB, mnt, { dirNlink: true });

    // A target that cannot mount from the dict's repository (an OCI layout) gets the dict's blobs copied.
    const layoutDir = join(work, 'dict-layout');
    const l = await convert([`${reg.host}/src/app:b`, `oci:${layoutDir}:b`, '--chunk-dict', dictRef]);
    assert.equal(l.digest, s.digest, 'same image as the registry target');
    const lm = JSON.parse(readFileSync(join(layoutDir, 'blobs/sha256', l.digest.slice(7)), 'utf8')) as ImageManifest;
    for (const layer of [...lm.layers, lm.config]) assert.equal(readFileSync(join(layoutDir, 'blobs/sha256', layer.digest.slice(7))).length, layer.size);
  });

  test('a multi-platform index converts every platform and pushes an index; --platform picks one', async () => {
    const layout = imgA.layout;
    // A second platform: the same layers under an arm64 config.
    execFileSync('umoci', ['config', '--image', `${layout}:a`, '--tag', 'arm', '--architecture', 'arm64']);
    const idx = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as ImageIndex;
    const byTag = (tag: string) => idx.manifests.find((m) => m.annotations?.[ANNOTATION.refName] === tag)!;
    const multi = {
      schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex,
      manifests: [
        { mediaType: MEDIA_TYPE.ociManifest, digest: byTag('a').digest, size: byTag('a').size, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MEDIA_TYPE.ociManifest, digest: byTag('arm').digest, size: byTag('arm').size, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    };
    const bytes = Buffer.from(JSON.stringify(multi));
    const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(bytes).digest('hex')}`;
    writeFileSync(join(layout, 'blobs/sha256', digest.slice(7)), bytes);
    idx.manifests.push({ mediaType: MEDIA_TYPE.ociIndex, digest, size: bytes.length, annotations: { [ANNOTATION.refName]: 'multi' } });
    writeFileSync(join(layout, 'index.json'), JSON.stringify(idx));
    execFileSync('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${reg.host}/src/multi:1`]);

    const target = `${reg.host}/dst/multi:1`;
    const s = await convert([`${reg.host}/src/multi:1`, target]);
    assert.deepEqual(s.platforms.map((p) => p.platform), ['linux/amd64', 'linux/arm64']);
    const top = await manifestOf(target);
    assert.equal(top.mediaType, MEDIA_TYPE.ociIndex);
    const index = top.json as ImageIndex;
    assert.equal(index.manifests.length, 2);
    for (const [i, arch] of ['amd64', 'arm64'].entries()) {
      const e = index.manifests[i]!;
      assert.equal(e.platform?.architecture, arch);
      assert.deepEqual(e.platform?.['os.features'], [NYDUS_OS_FEATURE]);
      const m = await manifestOf(`${reg.host}/dst/multi@${e.digest}`);
      assert.ok(findBootstrapLayer(m.json));
      const cfg = JSON.parse((await blobBytes(target, (m.json as ImageManifest).config.digest)).toString()) as ImageConfig;
      assert.equal(cfg.architecture, arch);
    }
    // Both platforms have the same layers: the second pushes no data blob again.
    const one = await convert([`${reg.host}/src/multi:1`, `${reg.host}/dst/multi:arm`, '--platform', 'linux/arm64']);
    assert.equal(one.platforms.length, 1);
    const single = await manifestOf(`${reg.host}/dst/multi:arm`);
    assert.equal(single.mediaType, MEDIA_TYPE.ociManifest);
    assert.equal(single.digest, index.manifests[1]!.digest);
    const bad = await cli(['convert', `${reg.host}/src/multi:1`, `${reg.host}/dst/multi:x`, '--platform', 'linux/s390x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^ondine: .*linux\/s390x.*\[ONDINE_ERR_NOT_FOUND\]\n$/);
  });

  test('build --push and push <outdir> make the same image; an OCI layout works as a target', async () => {
    const layoutManifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', imgA.ref], { encoding: 'utf8' })) as ImageManifest;
    const layerFiles = layoutManifest.layers.map((l) => join(imgA.layout, 'blobs/sha256', l.digest.slice(7)));
    const out = join(work, 'build-out');
    const r = await cliOk(['build', ...layerFiles, '-o', out, '--chunk-size', '64K', '--push', `${reg.host}/dst/built:1`, '--json']);
    const built = JSON.parse(r.stdout) as { push: { digest: string; blobsUploaded: number } };
    const m = await manifestOf(`${reg.host}/dst/built:1`);
    assert.equal(m.digest, built.push.digest);
    assert.ok(findBootstrapLayer(m.json));
    const p = await cliOk(['push', out, `${reg.host}/dst/built:2`, '--json']);
    const pushed = JSON.parse(p.stdout) as { digest: string; blobsSkipped: number; bytesUploaded: number };
    assert.equal(pushed.digest, built.push.digest);
    assert.equal(pushed.bytesUploaded, 0);

    const s = await convert([imgA.ref, `oci:${join(work, 'nydus-layout')}:n`]);
    const idx = JSON.parse(readFileSync(join(work, 'nydus-layout/index.json'), 'utf8')) as ImageIndex;
    assert.equal(idx.manifests.length, 1);
    assert.equal(idx.manifests[0]!.digest, s.digest);
    assert.equal(idx.manifests[0]!.annotations?.[ANNOTATION.refName], 'n');
    const lm = JSON.parse(readFileSync(join(work, 'nydus-layout/blobs/sha256', s.digest.slice(7)), 'utf8')) as ImageManifest;
    for (const l of [...lm.layers, lm.config]) assert.equal(readFileSync(join(work, 'nydus-layout/blobs/sha256', l.digest.slice(7))).length, l.size);
    // Layout source and registry source of the same image convert to the same manifest.
    assert.equal(s.digest, (await manifestOf(`${reg.host}/dst/app:a`)).digest);
  });
});
