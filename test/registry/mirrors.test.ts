// Endpoint order from options and containerd hosts.toml, and mirrors for real: a mirror
// registry that holds the blob serves it and the origin sees nothing; a mirror's 404 falls
// through without counting as a failure; a dead mirror is skipped and then left out; pushes
// never go to a mirror.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from '../../src/registry/client.js';
import { parseHostsToml } from '../../src/registry/hosts-toml.js';
import { Endpoints } from '../../src/registry/mirrors.js';
import { parseReference } from '../../src/registry/reference.js';
import { pushTestBlob, pushTestImage, sha256, startDeadEndpoint, startRegistry, type RegistryServer } from '../helpers/registry-env.js';

const HOSTS = `# a containerd hosts.toml
server = "https://registry-1.docker.io"   # upstream

[host."https://mirror-a.example.com"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/certs/a.pem"
  skip_verify = false
  [host."https://mirror-a.example.com".header]
    x-custom = ["1", "2"]

[host."http://mirror-b.example.com:5000/v1/proxy"]
  capabilities = [
    "pull",   # blobs only
  ]
  override_path = true
  skip_verify = true
  ca = ["/x.pem", '/y.pem']
`;

test('hosts.toml: server, host tables in order, capabilities, ca, skip_verify, override_path, headers', () => {
  const h = parseHostsToml(HOSTS, 'certs.d/docker.io/hosts.toml');
  assert.equal(h.server?.url, 'https://registry-1.docker.io');
  assert.deepEqual(h.hosts.map((x) => x.url), ['https://mirror-a.example.com', 'http://mirror-b.example.com:5000/v1/proxy']);
  assert.deepEqual(h.hosts[0], { url: 'https://mirror-a.example.com', capabilities: ['pull', 'resolve'], ca: ['/etc/certs/a.pem'], skipVerify: false, headers: { 'x-custom': '1, 2' } });
  assert.deepEqual(h.hosts[1], { url: 'http://mirror-b.example.com:5000/v1/proxy', capabilities: ['pull'], overridePath: true, skipVerify: true, ca: ['/x.pem', '/y.pem'] });
  for (const [text, re] of [
    ['server = ', /unsupported value/],
    ['[host."x"]\ncapabilities = ["fly"]', /unknown capability/],
    ['a = "unterminated', /unterminated/],
    ['a = 1\na = 2', /duplicate/],
    ['a = { b = 1 }', /inline tables/],
  ] as const) {
    assert.throws(() => parseHostsToml(text, 'f.toml'), (e: Error) => re.test(e.message) && e.message.startsWith('f.toml:'), text);
  }
});

test('endpoint order: option mirrors, hosts.toml mirrors with the capability, then the server/origin; push only the origin', async (t) => {
  const dir = mkdtempSync('/var/tmp/ondine-hosts-test-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'docker.io'));
  writeFileSync(join(dir, 'docker.io', 'hosts.toml'), HOSTS);
  mkdirSync(join(dir, '_default'));
  writeFileSync(join(dir, '_default', 'hosts.toml'), '[host."http://127.0.0.1:9999"]\n');
  const e = new Endpoints({ hostsDir: dir, mirrors: { 'docker.io': ['http://127.0.0.1:5001'] } });
  const pull = await e.list('docker.io', 'pull');
  assert.deepEqual(pull.map((x) => `${x.origin}${x.prefix}`), ['http://127.0.0.1:5001/v2', 'https://mirror-a.example.com/v2', 'http://mirror-b.example.com:5000/v1/proxy', 'https://registry-1.docker.io/v2']);
  assert.deepEqual(pull.map((x) => x.mirror), [true, true, true, false]);
  const resolve = await e.list('docker.io', 'resolve');
  assert.deepEqual(resolve.map((x) => x.origin), ['http://127.0.0.1:5001', 'https://mirror-a.example.com', 'https://registry-1.docker.io']);
  assert.deepEqual((await e.list('docker.io', 'push')).map((x) => x.origin), ['https://registry-1.docker.io']);
  // No directory of its own: _default applies; the origin of a loopback registry is http.
  assert.deepEqual((await e.list('127.0.0.1:5000', 'pull')).map((x) => x.origin), ['http://127.0.0.1:9999', 'http://127.0.0.1:5000']);
  assert.deepEqual((await e.list('quay.io', 'pull')).map((x) => x.origin), ['http://127.0.0.1:9999', 'https://quay.io']);
  // A failed mirror is left out for the skip period, then back.
  let now = 0;
  const e2 = new Endpoints({ hostsDir: join(dir, 'none'), mirrors: ['http://127.0.0.1:5001'], now: () => now });
  const [m] = await e2.list('quay.io', 'pull');
  e2.markFailed(m!);
  assert.deepEqual((await e2.list('quay.io', 'pull')).map((x) => x.mirror), [false]);
  now += 30_001;
  assert.deepEqual((await e2.list('quay.io', 'pull')).map((x) => x.mirror), [true, false]);
});

let origin: RegistryServer;
let mirror: RegistryServer;
before(async () => {
  [origin, mirror] = await Promise.all([startRegistry(), startRegistry()]);
});
after(async () => {
  await Promise.all([origin?.stop(), mirror?.stop()]);
});

const blobGets = async (r: RegistryServer, hex: string) => (await r.requests()).filter((e) => e.path.includes(`/blobs/sha256:${hex}`));

test('a mirror holding the blob serves it; the origin sees no blob read', async (t) => {
  const data = randomBytes(50_000);
  const digest = await pushTestBlob(origin, 'lib/app', data);
  await pushTestBlob(mirror, 'lib/app', data);
  const c = new RegistryClient({ mirrors: { [origin.host]: [mirror.url] }, retryBaseMs: 10 });
  t.after(() => c.close());
  assert.deepEqual(await c.readRange(origin.host, 'lib/app', digest, 1000, 500), data.subarray(1000, 1500));
  const chunks: Buffer[] = [];
  for await (const ch of await c.blobStream(origin.host, 'lib/app', digest)) chunks.push(ch as Buffer);
  assert.deepEqual(Buffer.concat(chunks), data);
  assert.deepEqual(await blobGets(origin, digest.slice(7)), [], 'the origin served nothing');
  const m = await blobGets(mirror, digest.slice(7));
  assert.deepEqual(m.map((e) => [e.method, e.status, e.bytes]), [['GET', 206, 500], ['GET', 200, data.length]]);
});

test("a mirror's 404 falls through to the origin and is not a failure: the mirror is asked again", async (t) => {
  const data = randomBytes(20_000);
  const digest = await pushTestBlob(origin, 'lib/only-origin', data);
  const c = new RegistryClient({ mirrors: [mirror.url], retryBaseMs: 10 });
  t.after(() => c.close());
  assert.deepEqual(await c.readRange(origin.host, 'lib/only-origin', digest, 0, 100), data.subarray(0, 100));
  assert.deepEqual(await c.readRange(origin.host, 'lib/only-origin', digest, 100, 100), data.subarray(100, 200));
  assert.deepEqual((await blobGets(mirror, digest.slice(7))).map((e) => e.status), [404, 404]);
  assert.deepEqual((await blobGets(origin, digest.slice(7))).map((e) => e.status), [206, 206]);
  // A blob missing everywhere: the origin's 404 is the answer.
  await assert.rejects(c.readRange(origin.host, 'lib/only-origin', sha256(randomBytes(4)), 0, 1), { code: 'ONDINE_ERR_NOT_FOUND' });
});

test('a dead mirror is skipped for the origin, then left out', async (t) => {
  const dead = await startDeadEndpoint();
  t.after(() => dead.stop());
  const data = randomBytes(20_000);
  const digest = await pushTestBlob(origin, 'lib/dead-mirror', data);
  const c = new RegistryClient({ mirrors: [dead.url], retryBaseMs: 10 });
  t.after(() => c.close());
  assert.deepEqual(await c.readRange(origin.host, 'lib/dead-mirror', digest, 0, 100), data.subarray(0, 100));
  const after1 = dead.connections();
  assert.ok(after1 >= 1, 'the mirror was tried first');
  assert.deepEqual(await c.readRange(origin.host, 'lib/dead-mirror', digest, 100, 100), data.subarray(100, 200));
  assert.equal(dead.connections(), after1, 'not tried again within the skip period');
});

test('hosts.toml mirrors are used for pulls; tags resolve only through hosts with "resolve"; pushes go to the origin', async (t) => {
  const dir = mkdtempSync('/var/tmp/ondine-hosts-test-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, origin.host));
  writeFileSync(join(dir, origin.host, 'hosts.toml'), `server = "${origin.url}"\n\n[host."${mirror.url}"]\n  capabilities = ["pull"]\n`);
  const layer = randomBytes(3000);
  const img = await pushTestImage(origin, 'lib/toml', 'v1', [layer]);
  await pushTestImage(mirror, 'lib/toml', 'v1', [layer]);
  const c = new RegistryClient({ hostsDir: dir, retryBaseMs: 10 });
  t.after(() => c.close());
  const before = (await mirror.requests()).length;
  const m = await c.resolve(parseReference(`${origin.host}/lib/toml:v1`));
  assert.equal(m.digest, img.manifestDigest);
  assert.deepEqual(await c.readRange(origin.host, 'lib/toml', img.layerDigests[0]!, 0, 10), layer.subarray(0, 10));
  const seen = (await mirror.requests()).slice(before);
  assert.deepEqual(seen.map((e) => `${e.method} ${e.path.replace(/\?.*/, '')} ${e.status}`), [`GET /v2/lib/toml/blobs/${img.layerDigests[0]} 206`], 'the tag went to the origin, the blob to the mirror');
  // Push: never the mirror.
  const data = randomBytes(100);
  const mirrorBefore = (await mirror.requests()).length;
  await c.uploadBlob(origin.host, 'lib/pushed', sha256(data), { bytes: data }, data.length);
  assert.equal((await mirror.requests()).length, mirrorBefore);
  assert.equal(await c.hasBlob(origin.host, 'lib/pushed', sha256(data)), true);
});
