import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CorruptError } from '../../src/errors.js';
import { makeBootstrapLayer } from '../../src/oci/bootstrap-layer.js';
import { ANNOTATION, MEDIA_TYPE } from '../../src/registry/media-types.js';
import { blobLayers, extractBootstrap, findBootstrapLayer, isPlainOci } from '../../src/oci/nydus-image.js';
import { FIXTURE_BOOT } from '../storage/support.js';

const dir = mkdtempSync(join(tmpdir(), 'ondine-oci-boot-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

// Extraction checks the bootstrap, so the bytes are a real one (Nydus's fixture) with a tail
// of `size` bytes that moves the tar padding around.
const realBoot = (tail: number): Buffer => Buffer.concat([readFileSync(FIXTURE_BOOT), randomBytes(tail)]);

for (const size of [0, 1, 511, 512, 513, 70_000]) {
  test(`bootstrap layer round trip (${size} bytes after a bootstrap)`, async () => {
    const boot = realBoot(size);
    const layer = await makeBootstrapLayer(boot);
    assert.deepEqual(await extractBootstrap(layer.bytes), boot);
    assert.equal(layer.digest, sha(layer.bytes));
    assert.equal(layer.diffId, sha(gunzipSync(layer.bytes)));
    assert.equal(layer.size, layer.bytes.length);
    assert.equal(layer.descriptor.mediaType, MEDIA_TYPE.ociLayerGzip);
    assert.deepEqual(layer.descriptor.annotations, { [ANNOTATION.nydusBootstrap]: 'true', [ANNOTATION.nydusFsVersion]: '6' });
  });
}

test('bootstrap layer bytes depend only on the bootstrap', async () => {
  const boot = randomBytes(3000);
  const a = await makeBootstrapLayer(boot);
  const b = await makeBootstrapLayer(Buffer.from(boot));
  assert.equal(a.digest, b.digest);
  const c = await makeBootstrapLayer(Buffer.concat([boot, Buffer.from([1])]));
  assert.notEqual(a.digest, c.digest);
});

test('GNU tar reads our bootstrap layer: same bytes, mode 0444, mtime 0', async () => {
  const boot = randomBytes(10_000);
  const layer = await makeBootstrapLayer(boot);
  const out = join(dir, 'gnu-x');
  mkdirSync(out);
  writeFileSync(join(dir, 'ours.tgz'), layer.bytes);
  const listing = execFileSync('tar', ['-tvzf', join(dir, 'ours.tgz')], { encoding: 'utf8' });
  assert.match(listing, /^dr-?w?xr-xr-x 0\/0 +0 1970-01-01 00:00 image\/$/m);
  assert.match(listing, /^-r--r--r-- 0\/0 +10000 1970-01-01 00:00 image\/image\.boot$/m);
  execFileSync('tar', ['-xzf', join(dir, 'ours.tgz'), '-C', out]);
  assert.deepEqual(readFileSync(join(out, 'image/image.boot')), boot);
  assert.equal(statSync(join(out, 'image/image.boot')).mtimeMs, 0);
});

test('extractBootstrap reads a bootstrap layer made by GNU tar (pax, ./ prefix, other members)', async () => {
  const stage = join(dir, 'stage');
  mkdirSync(join(stage, 'image'), { recursive: true });
  const boot = realBoot(5000);
  writeFileSync(join(stage, 'image/image.boot'), boot);
  writeFileSync(join(stage, 'image/other'), 'x');
  for (const format of ['gnu', 'pax']) {
    const tgz = join(dir, `gnu-${format}.tgz`);
    execFileSync('tar', ['-czf', tgz, `--format=${format}`, '-C', stage, './image']);
    assert.deepEqual(await extractBootstrap(readFileSync(tgz)), boot);
  }
});

test('extractBootstrap: typed errors for a layer without the bootstrap and for garbage', async () => {
  const noBoot = gzipSync(Buffer.alloc(1024)); // a tar with only the end marker
  await assert.rejects(extractBootstrap(noBoot), (e: unknown) => e instanceof CorruptError && /no image\/image\.boot/.test(e.message));
  const truncated = (await makeBootstrapLayer(randomBytes(4000))).bytes.subarray(0, 200);
  await assert.rejects(extractBootstrap(truncated), (e: unknown) => (e as { code?: string }).code === 'ONDINE_ERR_DECOMPRESS' || (e as { code?: string }).code === 'ONDINE_ERR_TAR_TRUNCATED');
});

const blobDesc = (d: string) => ({ mediaType: MEDIA_TYPE.nydusBlob, digest: d, size: 10, annotations: { [ANNOTATION.nydusBlob]: 'true' } });

test('manifest helpers: bootstrap is the last annotated layer, blobs in order, plain OCI detected', () => {
  const boot = { mediaType: MEDIA_TYPE.ociLayerGzip, digest: 'sha256:bb', size: 5, annotations: { [ANNOTATION.nydusBootstrap]: 'true' } };
  const m = { schemaVersion: 2, layers: [blobDesc('sha256:a1'), blobDesc('sha256:a2'), boot] };
  assert.deepEqual(findBootstrapLayer(m), { digest: 'sha256:bb', size: 5 });
  assert.deepEqual(blobLayers(m), [{ digest: 'sha256:a1', size: 10 }, { digest: 'sha256:a2', size: 10 }]);
  assert.equal(isPlainOci(m), false);
  const plain = { schemaVersion: 2, layers: [{ mediaType: MEDIA_TYPE.ociLayerGzip, digest: 'sha256:cc', size: 1 }] };
  assert.equal(isPlainOci(plain), true);
  assert.equal(findBootstrapLayer(plain), undefined);
  assert.deepEqual(blobLayers(plain), []);
  assert.equal(isPlainOci({}), true);
});
