// Sizes a registry lies about, against a real docker-registry behind a proxy that lies: a
// blob body longer than its descriptor's size is cut off at the size and refused once (never
// read on, never fetched again); a manifest over its 8 MiB limit is refused after one request,
// unread when its Content-Length already says so; a config goes the same way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RegistryClient } from '../../src/registry/client.js';
import { isRetryable } from '../../src/registry/errors.js';
import { parseReference } from '../../src/registry/reference.js';
import { RegistryImageSource } from '../../src/oci/image-source.js';
import { pushTestBlob, pushTestImage, startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { LyingProxy } from '../helpers/lying-proxy.js';

let reg: RegistryServer;
let proxy: LyingProxy;
let data: Buffer;
let digest: string;
const REPO = 'sizes/blob';
const MiB = 1 << 20;

before(async () => {
  reg = await startRegistry();
  proxy = await LyingProxy.start(reg.url);
  data = randomBytes(1922);
  digest = await pushTestBlob(reg, REPO, data);
});
after(async () => {
  await proxy?.stop();
  await reg?.stop();
});

function client(t: { after(fn: () => unknown): void }): RegistryClient {
  const c = new RegistryClient({ retryBaseMs: 5 });
  t.after(() => c.close());
  return c;
}

async function drain(s: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const c of s) n += (c as Buffer).length;
  return n;
}

test('a blob body past its descriptor size is cut off there and refused once, not retried', async (t) => {
  proxy.clear();
  proxy.lie(new RegExp(`/blobs/${digest}$`), { kind: 'append', extra: 256 * MiB });
  const c = client(t);
  const s = await c.blobStream(proxy.host, REPO, digest, undefined, data.length);
  await assert.rejects(drain(s), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_TOO_LARGE', e.message);
    assert.equal(isRetryable(e), false);
    assert.match(e.message, /more than the 1922 bytes/);
    return true;
  });
  assert.equal(proxy.count(/\/blobs\//), 1, 'one request');
  // Read no further than a chunk past the size (the proxy stops when the client hangs up).
  assert.ok(c.stats.bytesDown <= data.length + 2 * MiB, `${c.stats.bytesDown} bytes read`);
  assert.ok(proxy.liedBytes < 64 * MiB, `the proxy sent ${proxy.liedBytes} bytes of its 256 MiB lie`);
});

test('the same blob with its true size streams whole', async (t) => {
  proxy.clear();
  const c = client(t);
  assert.equal(await drain(await c.blobStream(proxy.host, REPO, digest, undefined, data.length)), data.length);
  // A descriptor stating less than the blob: refused, the stream is not the blob.
  // (Content-Length says so: refused before the body is read.)
  await assert.rejects(c.blobStream(proxy.host, REPO, digest, undefined, data.length - 1), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_TOO_LARGE');
  // Stating more: short, a (retryable) truncation.
  await assert.rejects((async () => drain(await c.blobStream(proxy.host, REPO, digest, undefined, data.length + 1)))(), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_REGISTRY' && /short body/.test(e.message));
});

for (const declare of [false, true]) {
  test(`a 60 MiB manifest (${declare ? 'with' : 'without'} Content-Length) is refused after one request`, async (t) => {
    await pushTestImage(reg, 'sizes/app', 'big', [Buffer.from('layer')]);
    proxy.clear();
    proxy.lie(/\/manifests\/big$/, { kind: 'replace', size: 60 * MiB, declare, contentType: 'application/vnd.oci.image.manifest.v1+json' });
    const c = client(t);
    await assert.rejects(c.getManifest(parseReference(`${proxy.host}/sizes/app:big`)), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ONDINE_ERR_TOO_LARGE', e.message);
      assert.equal(isRetryable(e), false);
      return true;
    });
    assert.equal(proxy.count(/\/manifests\//), 1, 'fetched once, not seven times');
    assert.ok(c.stats.bytesDown <= (declare ? 0 : 9 * MiB), `${c.stats.bytesDown} bytes read`);
  });
}

test('a config whose body runs past its descriptor is refused once', async (t) => {
  const img = await pushTestImage(reg, 'sizes/cfg', 'v1', [Buffer.from('layer')]);
  proxy.clear();
  proxy.lie(new RegExp(`/blobs/${img.configDigest}$`), { kind: 'append', extra: 64 * MiB, byte: 0x20 });
  const c = client(t);
  const src = new RegistryImageSource(c, parseReference(`${proxy.host}/sizes/cfg:v1`));
  const m = await src.root();
  await assert.rejects(src.blob(m.json.config), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_TOO_LARGE');
  assert.equal(proxy.count(/\/blobs\//), 1);
  // A descriptor stating an absurd size is refused before any request.
  await assert.rejects(src.blob({ ...m.json.config, size: 10 * 1024 * MiB }), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_TOO_LARGE');
  assert.equal(proxy.count(/\/blobs\//), 1);
});
