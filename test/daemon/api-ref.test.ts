// The management API by reference, without a kernel: POST /v1/images {ref, credentials}
// registers a registry image (fsid from the manifest digest; its source the repository, the
// credentials nowhere in the answers); POST /v1/mounts {ref} on a daemon without the fanotify
// path is refused before anything is pulled; the socket is 0600.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { startApi } from '../../src/daemon/api.js';
import { ImageCatalog } from '../../src/daemon/catalog.js';
import { DaemonClient } from '../../src/daemon/client.js';
import { pullBootstrap, type PulledImage } from '../../src/daemon/image-pull.js';
import { ChunkTable } from '../../src/format/chunk-table.js';
import { CacheDir } from '../../src/storage/cache-dir.js';
import { buildImage, KiB, randomBytes, type BuiltImage } from '../storage/support.js';
import { pushLazy } from '../helpers/lazy-push.js';
import { startRegistry, type RegistryServer } from '../helpers/registry-env.js';

const PASSWORD = 'api-test-Pw-0c1d';
let registry: RegistryServer;
let img: BuiltImage;
let dir: string;
let server: Server;
let catalog: ImageCatalog;
let client: DaemonClient;
const pulls: PulledImage[] = [];

before(async () => {
  registry = await startRegistry({ auth: 'basic', users: { carol: PASSWORD } });
  img = await buildImage({ 'a.bin': randomBytes(64 * KiB, 5) });
  await pushLazy(registry, 'api/app', '1', join(img.out, 'bootstrap'), img.blobDir);
  dir = mkdtempSync('/var/tmp/ondine-api-ref-');
  catalog = new ImageCatalog();
  const socket = join(dir, 'run', 'ondine.sock');
  server = await startApi(socket, {
    catalog, fanotify: undefined, health: () => ({ ok: true }), stats: async () => ({ sources: catalog.sourceCounters(), images: catalog.list() }),
    shutdown: async () => undefined,
    pull: async (req, signal) => { const p = await pullBootstrap(req, new CacheDir(dir), {}, signal); pulls.push(p); return p; },
    pullDeadlineMs: 30_000,
  });
  client = new DaemonClient(socket);
});
after(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await catalog?.close();
  await registry?.stop();
  await img?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('POST /v1/images by reference registers the image with the repository as its source', async () => {
  assert.equal(statSync(client.socketPath).mode & 0o777, 0o600);
  const info = await client.registerRef({ ref: `${registry.host}/api/app:1`, credentials: { username: 'carol', password: PASSWORD } });
  assert.match(info.fsid, /^ondine-[0-9a-f]{16}$/);
  assert.equal(info.source, `${registry.host}/api/app`);
  assert.equal(info.ref, `${registry.host}/api/app:1`);
  assert.equal(info.blobDir, undefined);
  // The registered image reads its blobs from the registry (the chunk map: one Range read).
  const rec = catalog.image(info.fsid, info.fsid)!;
  const entry = rec.bootstrap.blobs[0]!;
  await catalog.blob(rec.source, entry, rec.bootstrap).chunkReader();
  const counted = catalog.sourceCounters()[`${registry.host}/api/app`]!;
  assert.equal(counted[entry.blobId]!.requests, 1);
  const answers = JSON.stringify([info, await client.images(), await client.stats()]);
  assert.ok(!answers.includes(PASSWORD), 'no answer holds the password');
});

test('wrong credentials: ONDINE_ERR_AUTH, nothing registered', async () => {
  const n = catalog.list().length;
  await assert.rejects(client.registerRef({ ref: `${registry.host}/api/app:1`, fsid: 'wrong', credentials: { username: 'carol', password: 'nope' } }), { code: 'ONDINE_ERR_AUTH' });
  assert.equal(catalog.list().length, n);
});

test('POST /v1/mounts by reference without the fanotify path is refused before any pull', async () => {
  const before = (await registry.requests()).length;
  await assert.rejects(client.mountRef({ ref: `${registry.host}/api/app:1`, mountpoint: dir }), { code: 'ONDINE_ERR_UNSUPPORTED' });
  assert.equal((await registry.requests()).length, before);
});

test('a registration by reference parses the bootstrap once and keeps that parse (fetched now, and found in the cache)', async (t) => {
  // Another image, so its bootstrap is not in the cache directory yet.
  const other = await buildImage({ 'b.bin': randomBytes(96 * KiB, 6) });
  t.after(() => other.cleanup());
  await pushLazy(registry, 'api/other', '1', join(other.out, 'bootstrap'), other.blobDir);
  // Every parse of a RAFS bootstrap checks its chunk table once, and nothing else here does.
  const checks = t.mock.method(ChunkTable.prototype, 'check');
  for (const fsid of ['once-fetched', 'once-cached']) {
    const before = checks.mock.callCount();
    await client.registerRef({ ref: `${registry.host}/api/other:1`, fsid, credentials: { username: 'carol', password: PASSWORD } });
    assert.equal(checks.mock.callCount() - before, 1, `one parse for ${fsid}`);
    assert.strictEqual(catalog.image(fsid, fsid)!.bootstrap, pulls.at(-1)!.parsed, 'the catalog holds the pull\'s own parse');
  }
});
