import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { makeBootstrapLayer } from '../../src/oci/bootstrap-layer.js';
import { ANNOTATION, MEDIA_TYPE, NYDUS_OS_FEATURE } from '../../src/registry/media-types.js';
import { nydusConfig, nydusImage, nydusIndex } from '../../src/oci/nydus-manifest.js';
import { blobLayers, findBootstrapLayer, isPlainOci } from '../../src/oci/nydus-image.js';
import { pickManifests } from '../../src/oci/platform.js';
import { parsePlatform, platformMatches } from '../../src/registry/platform.js';
import type { ImageConfig } from '../../src/oci/types.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const id = (c: string): string => c.repeat(64);

const source: ImageConfig = {
  architecture: 'arm64', os: 'linux', variant: 'v8', created: '2024-01-01T00:00:00Z',
  config: { Env: ['PATH=/bin', 'FOO=bar'], Entrypoint: ['/bin/sh'], Cmd: ['-c', 'true'], User: '1000', WorkingDir: '/w', Labels: { a: 'b' } },
  rootfs: { type: 'layers', diff_ids: ['sha256:' + id('1'), 'sha256:' + id('2'), 'sha256:' + id('3')] },
  history: [{ created_by: 'x' }, { created_by: 'y' }],
};

test('config keeps the source config and describes the new layers', async () => {
  const boot = await makeBootstrapLayer(Buffer.from('boot'));
  const cfg = nydusConfig(source, [{ blobId: id('a'), size: 10 }, { blobId: id('b'), size: 20 }], boot.diffId);
  assert.deepEqual(cfg.config, source.config);
  assert.equal(cfg.architecture, 'arm64');
  assert.equal(cfg.os, 'linux');
  assert.equal(cfg.variant, 'v8');
  assert.equal(cfg.created, source.created);
  assert.deepEqual(cfg.rootfs, { type: 'layers', diff_ids: ['sha256:' + id('a'), 'sha256:' + id('b'), boot.diffId] });
  assert.deepEqual(cfg.history, [...source.history!, { created_by: 'ondine', comment: 'Nydus bootstrap layer' }]);
  // The source object is not modified.
  assert.equal(source.rootfs.diff_ids.length, 3);
});

test('config without a source: platform given, or linux/amd64', async () => {
  const boot = await makeBootstrapLayer(Buffer.from('b'));
  const c1 = nydusConfig(undefined, [], boot.diffId);
  assert.equal(c1.os, 'linux');
  assert.equal(c1.architecture, 'amd64');
  assert.deepEqual(c1.rootfs.diff_ids, [boot.diffId]);
  const c2 = nydusConfig(undefined, [], boot.diffId, { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(c2.architecture, 'arm');
  assert.equal(c2.variant, 'v7');
});

test('manifest: blob layers then the bootstrap layer, digests and sizes match the documents', async () => {
  const boot = await makeBootstrapLayer(Buffer.from('bootstrap bytes'));
  const img = nydusImage({ blobs: [{ blobId: id('a'), size: 10 }, { blobId: id('b'), size: 20 }], bootstrap: boot, sourceConfig: source });
  const m = JSON.parse(img.manifest.bytes.toString());
  assert.equal(img.manifest.digest, sha(img.manifest.bytes));
  assert.equal(img.config.digest, sha(img.config.bytes));
  assert.equal(m.schemaVersion, 2);
  assert.equal(m.mediaType, MEDIA_TYPE.ociManifest);
  assert.deepEqual(m.config, { mediaType: MEDIA_TYPE.ociConfig, digest: img.config.digest, size: img.config.bytes.length });
  assert.equal(m.layers.length, 3);
  for (const [i, c] of ['a', 'b'].entries()) {
    assert.deepEqual(m.layers[i], { mediaType: MEDIA_TYPE.nydusBlob, digest: 'sha256:' + id(c), size: (i + 1) * 10, annotations: { [ANNOTATION.nydusBlob]: 'true' } });
  }
  assert.deepEqual(m.layers[2], {
    mediaType: MEDIA_TYPE.ociLayerGzip, digest: boot.digest, size: boot.size,
    annotations: { [ANNOTATION.nydusBootstrap]: 'true', [ANNOTATION.nydusFsVersion]: '6' },
  });
  const cfg = JSON.parse(img.config.bytes.toString());
  assert.equal(cfg.rootfs.diff_ids.length, m.layers.length);
  // The shared helpers read our manifest back.
  assert.deepEqual(findBootstrapLayer(m), { digest: boot.digest, size: boot.size });
  assert.deepEqual(blobLayers(m).map((b) => b.digest), ['sha256:' + id('a'), 'sha256:' + id('b')]);
  assert.equal(isPlainOci(m), false);
  assert.deepEqual(img.indexEntry.platform, { os: 'linux', architecture: 'arm64', variant: 'v8', 'os.features': [NYDUS_OS_FEATURE] });
  assert.equal(img.indexEntry.digest, img.manifest.digest);
});

test('index entries carry the Nydus os feature', async () => {
  const boot = await makeBootstrapLayer(Buffer.from('x'));
  const a = nydusImage({ blobs: [], bootstrap: boot, sourceConfig: { ...source, architecture: 'amd64', variant: undefined } as ImageConfig });
  const b = nydusImage({ blobs: [], bootstrap: boot, sourceConfig: source });
  const idx = nydusIndex([a.indexEntry, b.indexEntry]);
  const j = JSON.parse(idx.bytes.toString());
  assert.equal(j.mediaType, MEDIA_TYPE.ociIndex);
  assert.equal(idx.digest, sha(idx.bytes));
  assert.deepEqual(j.manifests.map((m: { platform: { architecture: string; 'os.features': string[] } }) => [m.platform.architecture, m.platform['os.features']]),
    [['amd64', [NYDUS_OS_FEATURE]], ['arm64', [NYDUS_OS_FEATURE]]]);
});

test('platform parsing and picking', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.throws(() => parsePlatform('linux'), /bad platform/);
  assert.throws(() => parsePlatform('linux//v7'), /bad platform/);
  assert.ok(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' }));
  assert.ok(!platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' }));
  const d = (arch: string, os = 'linux') => ({ mediaType: MEDIA_TYPE.ociManifest, digest: `sha256:${arch}`, size: 1, platform: { os, architecture: arch } });
  const list = [d('amd64'), d('arm64'), d('unknown', 'unknown')];
  assert.deepEqual(pickManifests(list).map((x) => x.digest), ['sha256:amd64', 'sha256:arm64']);
  assert.deepEqual(pickManifests(list, parsePlatform('linux/arm64')).map((x) => x.digest), ['sha256:arm64']);
  assert.deepEqual(pickManifests(list, parsePlatform('linux/s390x')), []);
});
