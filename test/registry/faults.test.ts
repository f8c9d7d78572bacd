// Failures between the client and a real registry: resets, truncated bodies, hangs, 503/429
// are retried with backoff and the read completes; a fault that persists ends in a retryable
// error after the retry budget; a registry restarted mid-read is waited out; redirects are
// followed with the Range kept and without the registry's Authorization on another origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient } from '../../src/registry/client.js';
import { isRetryable } from '../../src/registry/errors.js';
import { pushTestBlob, startFaultProxy, startRegistry, type FaultProxy, type RegistryServer } from '../helpers/registry-env.js';

let reg: RegistryServer;
let proxy: FaultProxy;
let data: Buffer;
let digest: string;
const REPO = 'faults/blob';

before(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
  data = randomBytes(256 * 1024);
  digest = await pushTestBlob(reg, REPO, data);
});
after(async () => {
  await proxy?.stop();
  await reg?.stop();
});

function client(t: { after(fn: () => unknown): void }, extra: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ retryBaseMs: 5, ...extra });
  t.after(() => c.close());
  return c;
}
const blobGets = () => proxy.seen().filter((s) => s.method === 'GET' && s.path.includes('/blobs/')).length;

for (const fault of ['reset', 'truncate', 'status503', 'status429'] as const) {
  test(`${fault} on the first two reads: retried, the bytes come right`, async (t) => {
    const c = client(t);
    proxy.fail(fault, 2);
    const before = blobGets();
    assert.deepEqual(await c.readRange(proxy.host, REPO, digest, 1000, 50_000), data.subarray(1000, 51_000));
    assert.equal(blobGets() - before, 3);
  });
}

test('a whole-blob stream after resets: retried before the body starts', async (t) => {
  const c = client(t);
  proxy.fail('reset', 2);
  const chunks: Buffer[] = [];
  for await (const ch of await c.blobStream(proxy.host, REPO, digest)) chunks.push(ch as Buffer);
  assert.deepEqual(Buffer.concat(chunks), data);
});

test('a corrupted whole-blob stream fails its digest check (retryable)', async (t) => {
  const c = client(t);
  proxy.fail('corrupt', 1);
  const s = await c.blobStream(proxy.host, REPO, digest);
  await assert.rejects(
    (async () => {
      for await (const _ of s) void _;
    })(),
    (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_DIGEST_MISMATCH' && isRetryable(e),
  );
});

test('a response that never comes times out and is retried', async (t) => {
  // Idle timeout R/3 = 2 s per attempt (undici's timers tick coarsely), all within the budget 2R/3 = 4 s.
  const c = client(t, { readTimeoutMs: 6000 });
  proxy.fail('hang', 1);
  assert.deepEqual(await c.readRange(proxy.host, REPO, digest, 0, 10), data.subarray(0, 10));
});

test('a fault that persists: a retryable error after the retry budget, naming the blob and status', async (t) => {
  const c = client(t, { retries: 2 });
  proxy.fail('status503', 100);
  const before = blobGets();
  await assert.rejects(c.readRange(proxy.host, REPO, digest, 0, 10), (e: Error & { code?: string; status?: number }) => {
    assert.equal(e.code, 'ONDINE_ERR_REGISTRY');
    assert.equal(isRetryable(e), true);
    assert.equal(e.status, 503);
    assert.match(e.message, /503/);
    assert.match(e.message, new RegExp(digest));
    assert.match(e.message, /after 3 attempts/);
    return true;
  });
  assert.equal(blobGets() - before, 3);
  proxy.fail('reset', 100);
  await assert.rejects(c.readRange(proxy.host, REPO, digest, 0, 10), (e: Error) => isRetryable(e));
  proxy.fail('reset', 0);
});

test('an aborted read is not retried', async (t) => {
  const c = client(t);
  proxy.fail('hang', 1);
  const ac = new AbortController();
  const p = c.readRange(proxy.host, REPO, digest, 0, 10, ac.signal);
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(p, (e: Error) => e.name === 'AbortError' || /abort/i.test(e.message));
  proxy.fail('hang', 0);
});

test('a registry down and back mid-read: the read completes after retries', async (t) => {
  const r = await startRegistry();
  t.after(() => r.stop());
  const bytes = randomBytes(100_000);
  const d = await pushTestBlob(r, 'faults/restart', bytes);
  const c = client(t, { retries: 10, retryBaseMs: 50 });
  assert.deepEqual(await c.readRange(r.host, 'faults/restart', d, 0, 100), bytes.subarray(0, 100));
  await r.pause();
  const sent = c.stats.requests;
  const read = c.readRange(r.host, 'faults/restart', d, 500, 60_000);
  // Bring it back once the read has failed and is on its second try at least.
  while (c.stats.requests < sent + 2) await sleep(5);
  await r.restart();
  assert.deepEqual(await read, bytes.subarray(500, 60_500));
  assert.ok(c.stats.requests >= sent + 2);
});

test('a 307 to the blob is followed with Range kept', async (t) => {
  let redirects = 0;
  const redirector = createServer((req, res) => {
    redirects++;
    res.writeHead(307, { location: `${reg.url}${req.url}` }).end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => redirector.close(() => resolve())));
  const host = `127.0.0.1:${(redirector.address() as AddressInfo).port}`;
  const c = client(t);
  const before = (await reg.requests()).length;
  assert.deepEqual(await c.readRange(host, REPO, digest, 12_345, 4321), data.subarray(12_345, 12_345 + 4321));
  assert.equal(redirects, 1);
  const seen = (await reg.requests()).slice(before);
  assert.deepEqual(seen.map((e) => [e.method, e.status, e.bytes]), [['GET', 206, 4321]]);
});

test("a redirect to another origin does not carry the registry's Authorization", async (t) => {
  const storageSaw: IncomingHttpHeaders[] = [];
  const storage = createServer((req, res) => {
    storageSaw.push(req.headers);
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range));
    if (m === null) return void res.writeHead(200).end(data);
    const body = data.subarray(Number(m[1]), Number(m[2]) + 1);
    res.writeHead(206, { 'content-range': `bytes ${m[1]}-${m[2]}/${data.length}`, 'content-length': String(body.length) }).end(body);
  });
  await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => storage.close(() => resolve())));
  const registrySaw: (string | undefined)[] = [];
  const front = createServer((req, res) => {
    registrySaw.push(req.headers.authorization);
    if (req.headers.authorization === undefined) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="front"' }).end();
    res.writeHead(307, { location: `http://127.0.0.1:${(storage.address() as AddressInfo).port}/storage/blob?sig=abc` }).end();
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => front.close(() => resolve())));
  const c = client(t, { credentials: { username: 'u', password: 'storage-must-not-see' } });
  const host = `127.0.0.1:${(front.address() as AddressInfo).port}`;
  assert.deepEqual(await c.readRange(host, REPO, digest, 100, 200), data.subarray(100, 300));
  assert.equal(registrySaw.length, 2);
  assert.ok(registrySaw[1]?.startsWith('Basic '));
  assert.equal(storageSaw.length, 1);
  assert.equal(storageSaw[0]!.range, 'bytes=100-299');
  assert.equal(storageSaw[0]!.authorization, undefined);
});

test('a manifest by digest that arrives corrupted is fetched again', async (t) => {
  const { pushTestImage } = await import('../helpers/registry-env.js');
  const { makeReference } = await import('../../src/registry/reference.js');
  const img = await pushTestImage(reg, 'faults/manifest', 'v1', [randomBytes(100)]);
  const c = client(t);
  proxy.fail('corrupt', 1, /\/manifests\//);
  const before = proxy.seen().length;
  const m = await c.getManifest(makeReference(proxy.host, 'faults/manifest', undefined, img.manifestDigest));
  assert.equal(m.digest, img.manifestDigest);
  assert.equal(proxy.seen().length - before, 2);
  proxy.fail('corrupt', 0, /\/blobs\/sha256:/);
});

test('a server that ignores Range and sends the whole blob: the range is cut out of it', async (t) => {
  const whole = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(data.length) }).end(data);
  });
  await new Promise<void>((resolve) => whole.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => whole.close(() => resolve())));
  const c = client(t);
  const host = `127.0.0.1:${(whole.address() as AddressInfo).port}`;
  assert.deepEqual(await c.readRange(host, REPO, digest, 70_000, 3000), data.subarray(70_000, 73_000));
  assert.deepEqual(await c.readRange(host, REPO, digest, data.length - 5, 5), data.subarray(data.length - 5));
});
