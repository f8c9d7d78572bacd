// Against a real anonymous docker-registry: push and pull round trips, skipping present
// blobs, cross-repository mounts, manifests by tag and digest, platform pick from an index,
// exact Range reads, verified whole-blob streams, and 404s that are final after one request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../src/registry/client.js';
import { isRetryable } from '../../src/registry/errors.js';
import { makeReference, parseReference } from '../../src/registry/reference.js';
import { pushTestBlob, pushTestImage, putTestManifest, sha256, startRegistry, type RegistryServer } from '../helpers/registry-env.js';

let reg: RegistryServer;
let client: RegistryClient;
let tmp: string;

before(async () => {
  reg = await startRegistry();
  client = new RegistryClient({ retryBaseMs: 10 });
  tmp = mkdtempSync('/var/tmp/ondine-registry-test-');
});
after(async () => {
  await client?.close();
  await reg?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('upload, skip when present, mount across repositories, read back', async () => {
  const data = randomBytes(300_000);
  const digest = sha256(data);
  const file = join(tmp, 'blob');
  writeFileSync(file, data);
  const before = client.stats.bytesUp;
  assert.equal(await client.uploadBlob(reg.host, 'ondine/a', digest, { path: file }, data.length), data.length);
  assert.equal(client.stats.bytesUp - before, data.length);
  assert.equal(await client.uploadBlob(reg.host, 'ondine/a', digest, { bytes: data }, data.length), 0, 'present blob: nothing sent');
  assert.equal(await client.hasBlob(reg.host, 'ondine/a', digest), true);
  assert.equal(await client.hasBlob(reg.host, 'ondine/b', digest), false);
  assert.equal(await client.mountBlob(reg.host, 'ondine/b', digest, 'ondine/a'), true);
  assert.equal(await client.hasBlob(reg.host, 'ondine/b', digest), true);
  const missing = sha256(randomBytes(10));
  assert.equal(await client.mountBlob(reg.host, 'ondine/c', missing, 'ondine/a'), false, 'unknown blob: the registry wants an upload');
  assert.equal(await client.blobSize(reg.host, 'ondine/b', digest), data.length);
  assert.deepEqual(await collect(await client.blobStream(reg.host, 'ondine/b', digest)), data);
});

test('Range reads return exactly the bytes asked for, one request each', async () => {
  const data = randomBytes(1 << 20);
  const digest = await pushTestBlob(reg, 'ondine/range', data);
  const cases: [number, number][] = [[0, 1], [100, 100], [4096, 65536], [data.length - 7, 7], [0, data.length]];
  for (const [off, len] of cases) {
    const before = (await reg.requests()).length;
    const got = await client.readRange(reg.host, 'ondine/range', digest, off, len);
    assert.deepEqual(got, data.subarray(off, off + len), `${off}+${len}`);
    const log = await reg.requestsSince(before, 1);
    assert.equal(log.length, 1);
    assert.deepEqual([log[0]!.method, log[0]!.status, log[0]!.bytes], ['GET', 206, len]);
  }
  assert.equal((await client.readRange(reg.host, 'ondine/range', digest, 5, 0)).length, 0);
});

test('404 is final: NotFound, not retryable, one request', async () => {
  const before = (await reg.requests()).length;
  const missing = sha256(randomBytes(10));
  await assert.rejects(client.readRange(reg.host, 'ondine/range', missing, 0, 10), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_NOT_FOUND');
    assert.equal(isRetryable(e), false);
    assert.match(e.message, new RegExp(missing));
    assert.match(e.message, /ondine\/range/);
    return true;
  });
  assert.equal((await reg.requests()).length - before, 1);
  await assert.rejects(client.getManifest(parseReference(`${reg.host}/ondine/none:v1`)), { code: 'ONDINE_ERR_NOT_FOUND' });
});

test('manifests by tag and by digest; putManifest returns the digest', async () => {
  const img = await pushTestImage(reg, 'ondine/img', 'v1', [randomBytes(1000), randomBytes(2000)]);
  const byTag = await client.getManifest(parseReference(`${reg.host}/ondine/img:v1`));
  assert.equal(byTag.digest, img.manifestDigest);
  assert.equal(byTag.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(byTag.bytes, img.manifest);
  const byDigest = await client.resolve(parseReference(`${reg.host}/ondine/img@${img.manifestDigest}`));
  assert.equal(byDigest.digest, img.manifestDigest);
  assert.equal(byDigest.index, undefined);
  assert.deepEqual(byDigest.json.layers.map((l: { digest: string }) => l.digest), img.layerDigests);
  const pushed = await client.putManifest(parseReference(`${reg.host}/ondine/img:v2`), byTag.mediaType, byTag.bytes);
  assert.equal(pushed, img.manifestDigest);
  assert.equal((await client.getManifest(parseReference(`${reg.host}/ondine/img:v2`))).digest, img.manifestDigest);
});

test('an index resolves to the platform asked for, default linux/amd64, and lists what exists otherwise', async () => {
  const amd = await pushTestImage(reg, 'ondine/multi', 'amd', [randomBytes(100)]);
  const arm = await pushTestImage(reg, 'ondine/multi', 'arm', [randomBytes(100)], { os: 'linux', architecture: 'arm64' });
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64' } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.manifestDigest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    }),
  );
  const indexDigest = await putTestManifest(reg, 'ondine/multi', 'latest', 'application/vnd.oci.image.index.v1+json', index);
  const ref = parseReference(`${reg.host}/ondine/multi`);
  const dflt = await client.resolve(ref, process.arch === 'x64' ? undefined : { platform: { os: 'linux', architecture: 'amd64' } });
  assert.equal(dflt.digest, amd.manifestDigest);
  assert.equal(dflt.index?.digest, indexDigest);
  const a = await client.resolve(ref, { platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(a.digest, arm.manifestDigest);
  await assert.rejects(client.resolve(ref, { platform: { os: 'linux', architecture: 's390x' } }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_NOT_FOUND');
    assert.match(e.message, /linux\/s390x/);
    assert.match(e.message, /linux\/arm64, linux\/amd64/);
    return true;
  });
  const raw = await client.getManifest(makeReference(reg.host, 'ondine/multi', 'latest'));
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
});

test('a whole-blob stream that does not hash to its digest errors at the end', async () => {
  const data = randomBytes(5000);
  await pushTestBlob(reg, 'ondine/bad', data);
  // Ask for a digest the registry does not have in this repository: 404 up front.
  await assert.rejects(client.blobStream(reg.host, 'ondine/bad', sha256(Buffer.from('x'))), { code: 'ONDINE_ERR_NOT_FOUND' });
  // Corrupt the stored blob on disk: the registry serves it under the old digest.
  const digest = sha256(data);
  const hex = digest.slice(7);
  const stored = join(reg.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  const corrupt = Buffer.from(data);
  corrupt[10] ^= 0xff;
  writeFileSync(stored, corrupt);
  const s = await client.blobStream(reg.host, 'ondine/bad', digest);
  await assert.rejects(collect(s), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_DIGEST_MISMATCH');
    assert.equal(isRetryable(e), true);
    return true;
  });
});
