// The hostile-registry tier (issue 12, item 4) on the host's fanotify path. A real
// docker-registry (basic auth) holds a lazy image; every scenario puts a HostileServer in front
// of it that lies in one way (manifests, indexes, bootstrap layers, data blobs, the wire, auth,
// a mirror, TLS), runs its own `ondine daemon` (own cache dir in a "jail" of canary files,
// --read-timeout 5 s) and mounts through it with credentials. Each scenario asserts its own
// outcome (right bytes, or a one-line CLI error, or EIO for the reader, within a stated bound)
// and then the same invariants: the daemon answers `ondine status --json` with the same
// worker, whose VmHWM stays ≤ 512 MiB; nothing beside the cache dir changed; no server but the
// registry's own front end ever received a credential. Scenarios run a few at a time.
// `waits for` in a scenario's name says which fix of issue 12/13 it needs where it fails today.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';

import { parseBootstrap } from '../../src/format/bootstrap.js';
import { makeBootstrapLayer, bootstrapTar } from '../../src/oci/bootstrap-layer.js';
import { MEDIA_TYPE } from '../../src/registry/media-types.js';
import { Cleanup, cliOk, cliPath, requireKernelFs, scratchDir, skipUnlessRoot, type RunResult } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { failureList, diskUsage, gzipBomb, oneLineError, plantCanaries, vmHwmKiB, withBlobId, bootstrapLayerOf } from '../helpers/hostile-checks.js';
import { HostileServer, appended, corrupt, longer, makeCa, random, sha256Digest, zeros, type TestCa } from '../helpers/hostile-registry.js';
import { pushLazy } from '../helpers/lazy-push.js';
import { httpCall, startRegistry, type RegistryServer } from '../helpers/registry-env.js';

const USER = 'hostile-user';
const PASS = 'Pw-hostile-4b1d-never-elsewhere';
const BASIC = Buffer.from(`${USER}:${PASS}`).toString('base64');
const REPO = 'h/app';
const TAG = '1';
const READ_TIMEOUT_MS = 5000;
/** EIO for a reader within the read timeout + 5 s (issue 13: 35 s for a 30 s timeout). */
const EIO_BOUND_MS = READ_TIMEOUT_MS + 5000;
/** A mount refused for what it fetched (no waiting on the wire involved). */
const REFUSE_BOUND_MS = 30_000;
/**
 * A mount whose manifest or layer hangs or drips: the 30 s total deadline for manifests (issue
 * 13), + 15 s for the CLI's start and its round trips to the daemon on a loaded 2-core machine.
 */
const WIRE_BOUND_MS = 45_000;
const HWM_LIMIT_KIB = 512 * 1024;
const BOMB_SIZE = 1.5 * 1024 * 1024 * 1024;

const FILES: Record<string, Buffer> = {
  'etc/hostname': Buffer.from('ondine-hostile\n'),
  small: pseudoRandomBytes(1201, 3000),
  mid: pseudoRandomBytes(1202, 200 << 10),
  'big.bin': pseudoRandomBytes(1203, 3 << 20),
};

interface Image {
  manifest: { layers: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>; [k: string]: unknown };
  manifestBytes: Buffer;
  blobId: string;
  blobBytes: Buffer;
  boot: Buffer;
  bootLayer: Buffer;
  bootLayerDigest: string;
}

interface Ctx {
  t: TestContext;
  dir: string;
  origin: HostileServer;
  foreign: HostileServer;
  mirror: HostileServer | undefined;
  d: FanotifyDaemon;
  mnt: string;
  ref: string;
  image: Image;
  /** The test CA's certificate (for --ca-file with `https` scenarios). */
  caFile: string;
  /** `ondine mount` with the credentials on stdin, killed after `killMs`; its result and duration. */
  mount(extra?: string[], killMs?: number): Promise<{ r: RunResult; ms: number }>;
  /** Reads a file of the image in a child; outcome and duration. */
  read(rel: string): Promise<{ result: string; sha?: string; zeroBlocks: number; ms: number }>;
}

interface Scenario {
  name: string;
  /** The fix this scenario needs where it fails today: 'names', 'sizes', 'retry', or '' (holds today). */
  waitsFor: string;
  https?: boolean;
  mirror?: boolean;
  /** The foreign server is a token realm: it may see the credentials on its token endpoint only. */
  realm?: boolean;
  arrange(s: { origin: HostileServer; foreign: HostileServer; mirror?: HostileServer; image: Image; ca?: TestCa; cacheDir: string; jail: string }): void | Promise<void>;
  act(c: Ctx): Promise<void>;
}

// ---- outcomes ----

async function mountRefused(c: Ctx, boundMs: number, code?: RegExp, extra: string[] = []): Promise<string> {
  const { r, ms } = await c.mount(extra, boundMs + 10_000);
  c.t.diagnostic(`mount ended after ${ms} ms, exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
  const line = oneLineError(r, 'ondine mount');
  if (code) assert.match(line, code);
  assert.ok(ms <= boundMs, `refused within ${boundMs} ms (took ${ms} ms)`);
  assert.ok(!line.includes(PASS) && !line.includes(BASIC), 'no credential in the error');
  const st = await c.d.status();
  assert.equal(st.mounts.filter((m) => m.mountpoint === c.mnt).length, 0, 'nothing mounted');
  return line;
}

async function mountOk(c: Ctx): Promise<void> {
  const { r, ms } = await c.mount([], REFUSE_BOUND_MS + 20_000);
  assert.equal(r.code, 0, `ondine mount failed after ${ms} ms: ${r.stderr}`);
  dropCaches();
}

/** Every file reads right. */
async function allRight(c: Ctx): Promise<void> {
  for (const [rel, bytes] of Object.entries(FILES)) {
    const o = await c.read(rel);
    assert.equal(o.result, 'ok', `${rel}: ${o.result}`);
    assert.equal(o.sha, sha256(bytes), `${rel}: right bytes`);
  }
}

/** `rel` gives its reader EIO within the bound (and never wrong bytes before that). */
async function eioWithin(c: Ctx, rel: string, boundMs = EIO_BOUND_MS): Promise<void> {
  const o = await c.read(rel);
  c.t.diagnostic(`${rel}: ${o.result} after ${o.ms} ms`);
  assert.equal(o.result, 'EIO', `${rel}: EIO, not ${o.result}${o.sha === sha256(FILES[rel]!) ? ' (right bytes: the fault was not hit)' : ''}`);
  assert.ok(o.ms <= boundMs, `EIO within ${boundMs} ms (took ${o.ms} ms)`);
}

/** Either refused or EIO, or right bytes: never wrong bytes, never zeros, never a hang. */
async function rightOrEio(c: Ctx, rel: string, boundMs = EIO_BOUND_MS): Promise<void> {
  const o = await c.read(rel);
  c.t.diagnostic(`${rel}: ${o.result} after ${o.ms} ms`);
  if (o.result === 'ok') assert.equal(o.sha, sha256(FILES[rel]!), `${rel}: if it reads, it reads right`);
  else assert.equal(o.result, 'EIO');
  assert.ok(o.ms <= boundMs, `answered within ${boundMs} ms (took ${o.ms} ms)`);
}

/** A mount that is either refused with one line, or mounts and reads right or EIO. */
async function refusedOrSafe(c: Ctx): Promise<void> {
  const { r, ms } = await c.mount([], REFUSE_BOUND_MS + 20_000);
  c.t.diagnostic(`mount: exit ${r.code} after ${ms} ms ${r.stderr.trim().split('\n').pop() ?? ''}`);
  assert.ok(ms <= REFUSE_BOUND_MS, `mount answered within ${REFUSE_BOUND_MS} ms (took ${ms})`);
  if (r.code !== 0) {
    oneLineError(r, 'ondine mount');
    return;
  }
  dropCaches();
  for (const rel of Object.keys(FILES)) await rightOrEio(c, rel);
}

// ---- image surgery ----

const blobPath = (digest: string) => new RegExp(`^/v2/${REPO}/blobs/${digest.replace(':', ':')}$`);
const manifestPath = new RegExp(`^/v2/${REPO}/manifests/`);

/** The image's manifest with its bootstrap layer replaced by `layer` (served by `origin` under its own digest). */
function withBootstrapLayer(origin: HostileServer, image: Image, layer: Buffer, stated?: { size?: number }): void {
  const digest = sha256Digest(layer);
  const m = structuredClone(image.manifest);
  const boot = m.layers[m.layers.length - 1]!;
  boot.digest = digest;
  boot.size = stated?.size ?? layer.length;
  origin.blob(REPO, digest, layer);
  origin.manifest(REPO, TAG, m, MEDIA_TYPE.ociManifest);
}

async function withBootstrap(origin: HostileServer, image: Image, boot: Buffer): Promise<void> {
  withBootstrapLayer(origin, image, (await makeBootstrapLayer(boot)).bytes);
}

const entry = (name: string, data: Buffer | string, extra: Record<string, unknown> = {}) => ({ name, data, mode: 0o444, ...extra });

// ---- the scenarios ----

const scenarios: Scenario[] = [
  // manifests and indexes
  {
    name: 'manifest: the bootstrap layer streams 1.5 GiB where the manifest states its real size',
    waitsFor: 'sizes',
    arrange: ({ origin, image }) => void origin.blob(REPO, image.bootLayerDigest, zeros(BOMB_SIZE)),
    act: async (c) => {
      await mountRefused(c, REFUSE_BOUND_MS);
      assert.ok(c.origin.requests(blobPath(c.image.bootLayerDigest), 'GET').length <= 2, 'the oversized layer is not fetched again and again');
    },
  },
  {
    name: 'manifest: the data layer states 1,922 bytes for a blob of megabytes',
    waitsFor: '',
    arrange: ({ origin, image }) => {
      const m = structuredClone(image.manifest);
      m.layers[0]!.size = 1922;
      origin.manifest(REPO, TAG, m, MEDIA_TYPE.ociManifest);
    },
    act: refusedOrSafe,
  },
  {
    name: 'manifest: fetched by digest, the body is another manifest (wrong digest)',
    waitsFor: '',
    arrange: ({ origin, image }) => {
      const m = { ...structuredClone(image.manifest), annotations: { 'org.example.tampered': 'yes' } };
      origin.manifest(REPO, sha256Digest(image.manifestBytes), m, MEDIA_TYPE.ociManifest, sha256Digest(image.manifestBytes));
    },
    act: async (c) => {
      c.ref = `${c.origin.host}/${REPO}@${sha256Digest(c.image.manifestBytes)}`;
      await mountRefused(c, REFUSE_BOUND_MS, /DIGEST|CORRUPT|REGISTRY/);
    },
  },
  {
    name: 'manifest: a schema 1 media type over an OCI body (refused, or read right)',
    waitsFor: '',
    arrange: ({ origin, image }) => {
      const m = { ...structuredClone(image.manifest), mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' };
      origin.manifest(REPO, TAG, m, 'application/vnd.docker.distribution.manifest.v1+prettyjws');
    },
    act: refusedOrSafe,
  },
  {
    name: 'manifest: 60 MiB, refused once and not fetched again',
    waitsFor: 'sizes',
    arrange: ({ origin, image }) => {
      const m = { ...structuredClone(image.manifest), annotations: { pad: 'x'.repeat(60 << 20) } };
      origin.manifest(REPO, TAG, m, MEDIA_TYPE.ociManifest);
    },
    act: async (c) => {
      await mountRefused(c, REFUSE_BOUND_MS);
      const gets = c.origin.requests(manifestPath, 'GET').length;
      assert.ok(gets <= 1, `the huge manifest was fetched ${gets} times`);
    },
  },
  {
    name: 'index: nested 64 deep',
    waitsFor: '',
    arrange: ({ origin, image }) => {
      let child: { mediaType: string; digest: string; size: number; platform: { os: string; architecture: string } } = { mediaType: MEDIA_TYPE.ociManifest, digest: sha256Digest(image.manifestBytes), size: image.manifestBytes.length, platform: { os: 'linux', architecture: 'amd64' } };
      for (let i = 0; i < 64; i++) {
        const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex, manifests: [child] }));
        const digest = sha256Digest(index);
        origin.manifest(REPO, i === 63 ? TAG : digest, index, MEDIA_TYPE.ociIndex);
        child = { mediaType: MEDIA_TYPE.ociIndex, digest, size: index.length, platform: { os: 'linux', architecture: 'amd64' } };
      }
    },
    act: async (c) => {
      await mountRefused(c, REFUSE_BOUND_MS);
      const gets = c.origin.requests(manifestPath, 'GET').length;
      assert.ok(gets <= 16, `nesting is cut short (${gets} manifest GETs)`);
    },
  },
  {
    name: 'index: states 100 bytes for its manifest',
    waitsFor: 'sizes',
    arrange: ({ origin, image }) => {
      const index = { schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex, manifests: [{ mediaType: MEDIA_TYPE.ociManifest, digest: sha256Digest(image.manifestBytes), size: 100, platform: { os: 'linux', architecture: 'amd64' } }] };
      origin.manifest(REPO, TAG, index, MEDIA_TYPE.ociIndex);
    },
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  // bootstrap layers
  {
    name: 'bootstrap layer: gzip bomb (1.5 GiB of zeros in about 1.5 MiB)',
    waitsFor: 'sizes',
    arrange: ({ origin, image }) => withBootstrapLayer(origin, image, bomb!),
    act: async (c) => {
      await mountRefused(c, REFUSE_BOUND_MS);
      const used = diskUsage(c.d.cacheDir);
      assert.ok(used < 64 << 20, `the cache holds ${used} bytes after the refusal (nothing a later mount would trust)`);
    },
  },
  {
    name: 'bootstrap layer: a `..` entry before image/image.boot (refused, or read right)',
    waitsFor: '',
    arrange: ({ origin, image }) => withBootstrapLayer(origin, image, bootstrapLayerOf([entry('../../victim', 'overwritten\n'), entry('image/../../../victim', 'overwritten\n'), entry('image/image.boot', image.boot)])),
    act: refusedOrSafe,
  },
  {
    name: 'bootstrap layer: only an absolute /image/image.boot and an absolute path entry (refused, or read right)',
    waitsFor: '',
    arrange: ({ origin, image }) => withBootstrapLayer(origin, image, bootstrapLayerOf([entry('/var/tmp/ondine-hostile-abs', 'x'), entry('/image/image.boot', image.boot)])),
    act: async (c) => {
      await refusedOrSafe(c);
      assert.ok(!existsSync('/var/tmp/ondine-hostile-abs'), 'the absolute entry was not written');
    },
  },
  {
    name: 'bootstrap layer: image/image.boot is a symlink to /etc/shadow',
    waitsFor: '',
    arrange: ({ origin, image }) => withBootstrapLayer(origin, image, bootstrapLayerOf([{ name: 'image/image.boot', type: '2', linkname: '/etc/shadow' }])),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap layer: image/image.boot is a hard link to another entry',
    waitsFor: '',
    arrange: ({ origin, image }) => withBootstrapLayer(origin, image, bootstrapLayerOf([entry('image/real.boot', image.boot), { name: 'image/image.boot', type: '1', linkname: 'image/real.boot' }])),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap layer: image/image.boot twice (garbage, then the real one)',
    waitsFor: 'sizes',
    arrange: ({ origin, image }) => withBootstrapLayer(origin, image, bootstrapLayerOf([entry('image/image.boot', pseudoRandomBytes(77, 8192)), entry('image/image.boot', image.boot)])),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap layer: one byte of garbage after the gzip member (digest as the manifest states)',
    waitsFor: '',
    arrange: ({ origin, image }) => void origin.on(blobPath(image.bootLayerDigest), { kind: 'mutate', name: 'append', fn: appended(Buffer.from('X')) }),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap layer: a second gzip member of garbage (digest as the manifest states)',
    waitsFor: '',
    arrange: ({ origin, image }) => void origin.on(blobPath(image.bootLayerDigest), { kind: 'mutate', name: 'append', fn: appended(gzipSync(pseudoRandomBytes(78, 4096))) }),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap: a blob id of ../../../victim',
    waitsFor: 'names',
    arrange: ({ origin, image }) => withBootstrap(origin, image, withBlobId(image.boot, image.blobId, Buffer.from('../../../victim'))),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap: a blob id with a comma (mount option injection)',
    waitsFor: 'names',
    arrange: ({ origin, image }) => withBootstrap(origin, image, withBlobId(image.boot, image.blobId, Buffer.from(`${image.blobId.slice(0, 40)},fsid=x,dax`))),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap: a blob id with a NUL inside',
    waitsFor: 'names',
    arrange: ({ origin, image }) => withBootstrap(origin, image, withBlobId(image.boot, image.blobId, Buffer.concat([Buffer.from(image.blobId.slice(0, 32)), Buffer.from([0]), Buffer.from('/../../../victim')]))),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  {
    name: 'bootstrap: a valid blob id that is not a layer of the manifest',
    waitsFor: 'names',
    arrange: ({ origin, image }) => withBootstrap(origin, image, withBlobId(image.boot, image.blobId, Buffer.from('f'.repeat(64)))),
    act: async (c) => void (await mountRefused(c, REFUSE_BOUND_MS)),
  },
  // the cache directory itself
  {
    name: "cache: a symlink planted where the blob's cache file goes (to the victim file)",
    waitsFor: '',
    arrange: ({ cacheDir, jail, image }) => {
      mkdirSync(join(cacheDir, 'ondine', 'blobs'), { recursive: true });
      symlinkSync(join(jail, 'victim'), join(cacheDir, 'ondine', 'blobs', image.blobId));
    },
    act: refusedOrSafe,
  },
  {
    name: "cache: the cache's blobs directory is a symlink to a directory outside it",
    waitsFor: 'names',
    arrange: ({ cacheDir, jail }) => {
      mkdirSync(join(cacheDir, 'ondine'), { recursive: true });
      symlinkSync(join(jail, 'canary-dir'), join(cacheDir, 'ondine', 'blobs'));
    },
    act: refusedOrSafe,
  },
  // data blobs
  {
    name: 'data blob: every range corrupt',
    waitsFor: '',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'mutate', name: 'corrupt', fn: corrupt }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'small');
      await eioWithin(c, 'big.bin');
    },
  },
  {
    name: 'data blob: every range truncated (half sent, the full length claimed)',
    waitsFor: 'retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'mutate', name: 'truncate', fn: (b) => b.subarray(0, b.length >> 1), length: (b) => b.length * 2 }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'mid');
    },
  },
  {
    name: 'data blob: ranges 64 bytes longer than asked',
    waitsFor: 'sizes, retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'mutate', name: 'longer', fn: longer(64) }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      for (const rel of Object.keys(FILES)) await rightOrEio(c, rel);
    },
  },
  {
    name: 'data blob: Range ignored (200 and the whole blob)',
    waitsFor: '',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'ignoreRange' }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await allRight(c);
    },
  },
  {
    name: 'data blob: random bytes of the right length',
    waitsFor: '',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'mutate', name: 'random', fn: random }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'etc/hostname');
      await eioWithin(c, 'mid');
    },
  },
  // the wire
  {
    name: 'wire: blob requests hang before headers',
    waitsFor: 'retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'hangHeaders' }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'small');
    },
  },
  {
    name: 'wire: blob bodies hang after the headers',
    waitsFor: 'retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'hangBody' }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'mid');
    },
  },
  {
    name: 'wire: blob bodies drip one byte every 2 s',
    waitsFor: 'retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'drip', everyMs: 2000 }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'small');
    },
  },
  {
    name: 'wire: 16 concurrent readers of a hanging blob all get EIO in time',
    waitsFor: 'retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'hangHeaders' }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      const chunk = 3 << 20 >> 4;
      const started = Date.now();
      const runs = await Promise.all(Array.from({ length: 16 }, (_, i) => readInChild(c.dir, [{ path: join(c.mnt, 'big.bin'), offset: i * chunk, length: 4096 }], { stallMs: EIO_BOUND_MS + 30_000 })));
      const ms = Date.now() - started;
      c.t.diagnostic(`16 readers: ${runs.map((r) => r.outcomes[0]?.result ?? 'hung').join(',')} in ${ms} ms`);
      assert.ok(runs.every((r) => r.outcomes[0]?.result === 'EIO'), 'every reader got EIO');
      assert.ok(ms <= EIO_BOUND_MS, `all within ${EIO_BOUND_MS} ms (took ${ms})`);
    },
  },
  {
    name: 'wire: every blob connection reset',
    waitsFor: '',
    arrange: ({ origin, image }) => void origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'reset' }, { method: 'GET' }),
    act: async (c) => {
      await mountOk(c);
      await eioWithin(c, 'small');
    },
  },
  {
    name: 'wire: the manifest hangs',
    waitsFor: '',
    arrange: ({ origin }) => void origin.on(manifestPath, { kind: 'hangHeaders' }),
    act: async (c) => void (await mountRefused(c, WIRE_BOUND_MS)),
  },
  {
    name: 'wire: slowloris headers on the manifest (a byte every 2 s)',
    waitsFor: '',
    arrange: ({ origin }) => void origin.on(manifestPath, { kind: 'slowHeaders', everyMs: 2000 }),
    act: async (c) => void (await mountRefused(c, WIRE_BOUND_MS)),
  },
  {
    name: 'wire: the bootstrap layer drips a byte every 2 s',
    waitsFor: 'retry',
    arrange: ({ origin, image }) => void origin.on(blobPath(image.bootLayerDigest), { kind: 'drip', everyMs: 2000 }, { method: 'GET' }),
    act: async (c) => void (await mountRefused(c, WIRE_BOUND_MS)),
  },
  // auth
  {
    name: 'auth: 401 for ever, whatever the credentials',
    waitsFor: '',
    arrange: ({ origin }) => void origin.on(/^\/v2\//, { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="hostile"' } }),
    act: async (c) => {
      await mountRefused(c, REFUSE_BOUND_MS, /ONDINE_ERR_AUTH/);
      const n = c.origin.log.length;
      assert.ok(n <= 6, `no 401 loop (${n} requests)`);
    },
  },
  {
    name: 'auth: the token realm is on another host and its tokens are refused',
    waitsFor: '',
    realm: true,
    arrange: ({ origin, foreign }) => {
      origin.on(/^\/v2\//, { kind: 'status', status: 401, headers: { 'www-authenticate': `Bearer realm="${foreign.url}/token",service="hostile",scope="repository:${REPO}:pull"` } });
      foreign.on(/^\/token$/, { kind: 'serve', body: Buffer.from(JSON.stringify({ token: 'tok-from-elsewhere', expires_in: 300 })), headers: { 'content-type': 'application/json' } });
    },
    act: async (c) => {
      await mountRefused(c, REFUSE_BOUND_MS, /ONDINE_ERR_AUTH/);
      assert.ok(c.origin.log.length <= 8, `no 401 loop (${c.origin.log.length} requests to the registry)`);
      assert.ok(c.foreign.log.every((e) => e.path === '/token'), `the realm saw only token requests: ${c.foreign.log.map((e) => e.path).join(',')}`);
      assert.ok(c.foreign.log.length <= 4, `tokens asked ${c.foreign.log.length} times`);
      const sent = c.foreign.credentialsSeen();
      c.t.diagnostic(`the realm received ${sent.length} Authorization headers (the token protocol sends the user's credentials to the realm)`);
    },
  },
  {
    name: 'auth: blob reads redirected to storage on another host carry no credentials',
    waitsFor: '',
    arrange: ({ origin, foreign, image }) => {
      origin.on(blobPath(`sha256:${image.blobId}`), { kind: 'redirect', to: () => `${foreign.url}/storage/${image.blobId}` }, { method: 'GET' });
      foreign.on(new RegExp(`^/storage/${image.blobId}$`), { kind: 'serve', body: image.blobBytes, range: true });
    },
    act: async (c) => {
      await mountOk(c);
      await allRight(c);
      assert.ok(c.foreign.log.length > 0, 'the storage host served the reads');
    },
  },
  // a hostile mirror
  {
    name: 'mirror: serves corrupt blobs (and asks for credentials); reads are right or EIO, the mirror never sees the credentials',
    waitsFor: '',
    mirror: true,
    arrange: ({ mirror, image }) => {
      mirror!.on(/^\/v2\/?$/, { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="mirror"' } });
      mirror!.manifest(REPO, TAG, image.manifestBytes, MEDIA_TYPE.ociManifest);
      mirror!.blob(REPO, image.bootLayerDigest, image.bootLayer);
      mirror!.blob(REPO, `sha256:${image.blobId}`, corrupt(image.blobBytes));
    },
    act: async (c) => {
      await mountOk(c);
      for (const rel of Object.keys(FILES)) await rightOrEio(c, rel, 3 * EIO_BOUND_MS);
    },
  },
  {
    name: 'mirror: redirects every request to another host',
    waitsFor: '',
    mirror: true,
    arrange: ({ mirror, foreign }) => {
      mirror!.on(/^\/v2\//, { kind: 'redirect', to: (req) => `${foreign.url}${req.url ?? '/'}` });
      foreign.on(/^\/v2\//, { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="foreign"' } });
    },
    act: async (c) => {
      await mountOk(c);
      for (const rel of Object.keys(FILES)) await rightOrEio(c, rel, 3 * EIO_BOUND_MS);
    },
  },
  // TLS
  {
    name: 'https (self-signed CA via --ca-file): right bytes first, then truncated ranges give EIO',
    waitsFor: 'retry',
    https: true,
    arrange: () => undefined,
    act: async (c) => {
      const { r } = await c.mount(['--ca-file', c.caFile], REFUSE_BOUND_MS + 20_000);
      assert.equal(r.code, 0, r.stderr);
      dropCaches();
      const o = await c.read('etc/hostname');
      assert.equal(o.sha, sha256(FILES['etc/hostname']!));
      c.origin.on(blobPath(`sha256:${c.image.blobId}`), { kind: 'mutate', name: 'truncate', fn: (b) => b.subarray(0, b.length >> 1), length: (b) => b.length }, { method: 'GET' });
      await eioWithin(c, 'mid');
    },
  },
  {
    name: 'https: a certificate from a CA not given is refused with one line',
    waitsFor: '',
    https: true,
    arrange: () => undefined,
    act: async (c) => {
      const other = makeCa(mkdtempSync(join(c.dir, 'other-ca-')));
      await mountRefused(c, REFUSE_BOUND_MS, /ONDINE_ERR_/, ['--ca-file', other.caFile]);
      assert.equal(c.origin.credentialsSeen().length, 0, 'no credential went over the untrusted connection');
    },
  },
];

let bomb: Buffer | undefined;

describe('hostile registry: mount by reference (fanotify)', { skip: skipUnlessRoot, concurrency: 4 }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let registry: RegistryServer;
  let image: Image;
  let ca: TestCa;

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'hostile');
    registry = await startRegistry({ auth: 'basic', users: { [USER]: PASS } });
    suite.after(() => registry.stop());
    const src = join(work, 'src');
    for (const [rel, bytes] of Object.entries(FILES)) {
      mkdirSync(join(src, rel, '..'), { recursive: true });
      writeFileSync(join(src, rel), bytes);
    }
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    const pushed = await pushLazy(registry, REPO, TAG, join(work, 'img', 'bootstrap'), join(work, 'img', 'blobs'));
    const got = await httpCall(`${registry.url}/v2/${REPO}/manifests/${TAG}`, 'GET', { accept: MEDIA_TYPE.ociManifest, authorization: registry.seedAuth(REPO)! });
    assert.equal(got.status, 200);
    const boot = readFileSync(join(work, 'img', 'bootstrap'));
    const blobId = parseBootstrap(boot).blobs[0]!.blobId;
    image = {
      manifest: JSON.parse(got.body.toString('utf8')) as Image['manifest'],
      manifestBytes: got.body,
      blobId,
      blobBytes: readFileSync(join(work, 'img', 'blobs', blobId)),
      boot,
      bootLayer: (await makeBootstrapLayer(boot)).bytes,
      bootLayerDigest: pushed.bootstrapLayerDigest,
    };
    assert.equal(sha256Digest(image.bootLayer), image.bootLayerDigest, 'the bootstrap layer is made the same way twice');
    assert.equal(bootstrapTar(boot).length % 512, 0);
    bomb = await gzipBomb(BOMB_SIZE);
    ca = makeCa(mkdtempSync(join(work, 'ca-')));
  });

  for (const sc of scenarios) {
    test(`${sc.name}${sc.waitsFor ? ` [waits for: ${sc.waitsFor}]` : ''}`, { timeout: 180_000 }, async (t) => {
      const dir = mkdtempSync(join(work, 'sc-'));
      const jail = join(dir, 'jail');
      const cacheDir = join(jail, 'cache');
      mkdirSync(cacheDir, { recursive: true });
      const snap = plantCanaries(jail, cacheDir);
      const canaries = snap();
      const origin = await HostileServer.start({ name: 'origin', upstream: registry.url, ...(sc.https ? { tls: { cert: ca.cert, key: ca.key } } : {}) });
      t.after(() => origin.close());
      const foreign = await HostileServer.start({ name: 'foreign' });
      t.after(() => foreign.close());
      const mirror = sc.mirror ? await HostileServer.start({ name: 'mirror' }) : undefined;
      if (mirror) t.after(() => mirror.close());
      await sc.arrange({ origin, foreign, image, ca, cacheDir, jail, ...(mirror ? { mirror } : {}) });

      const d = await startFanotifyDaemon(t, dir, {
        cacheDir, readTimeoutMs: READ_TIMEOUT_MS,
        extraArgs: ['--amplify', '0', ...(mirror ? ['--mirror', `${origin.host}=${mirror.url}`] : [])],
      });
      const worker = (await d.status()).workerPid;
      const mnt = join(dir, 'mnt');
      mkdirSync(mnt);
      const ctx: Ctx = {
        t, dir, origin, foreign, mirror, d, mnt, image, ref: `${origin.host}/${REPO}:${TAG}`, caFile: ca.caFile,
        mount: (extra = [], killMs = 60_000) => runKilled([cliPath, 'mount', ctx.ref, mnt, '--mode', 'fanotify', '--socket', d.socket, '--cache-dir', cacheDir, '--username', USER, '--password-stdin', ...extra], PASS, killMs),
        read: async (rel) => {
          const started = Date.now();
          const r = await readInChild(dir, [{ path: join(mnt, rel) }], { stallMs: 90_000 });
          const o = r.outcomes[0];
          return { result: r.hung ? 'HUNG' : (o?.result ?? `no outcome (${r.stderr.trim()})`), ...(o?.sha ? { sha: o.sha } : {}), zeroBlocks: o?.zeroBlocks ?? 0, ms: Date.now() - started };
        },
      };
      // The scenario's own outcome, then the invariants every scenario keeps: all of them are
      // checked and reported, also when the outcome already failed.
      const { check, throwIfAny } = failureList();
      await check('outcome', () => sc.act(ctx));
      let pid = worker;
      await check('daemon answers', async () => {
        const st = await runKilled([cliPath, 'status', '--json', '--socket', d.socket], undefined, 15_000);
        assert.equal(st.r.code, 0, `ondine status answers: ${st.r.stderr}`);
        pid = (JSON.parse(st.r.stdout) as { workerPid: number }).workerPid;
        assert.equal(pid, worker, 'the same worker served throughout (no crash, no restart)');
      });
      await check('memory', () => {
        const hwm = vmHwmKiB(pid);
        t.diagnostic(`worker VmHWM ${Math.round(hwm / 1024)} MiB`);
        assert.ok(hwm <= HWM_LIMIT_KIB, `worker VmHWM ${hwm} KiB ≤ ${HWM_LIMIT_KIB} KiB`);
      });
      await check('canaries', () => assert.equal(snap(), canaries, 'nothing beside the cache directory changed'));
      await check('credentials', () => {
        const foreignCreds = sc.realm ? foreign.log.filter((e) => e.path !== '/token').flatMap((e) => (e.headers.authorization ? [e.headers.authorization] : [])) : foreign.credentialsSeen();
        assert.deepEqual(foreignCreds, [], 'no credential reached another origin');
        if (mirror) assert.deepEqual(mirror.credentialsSeen().filter((v) => v.includes(BASIC) || v.includes(PASS)), [], 'the mirror never saw the registry credentials');
        const log = readFileSync(d.logPath, 'utf8');
        assert.ok(!log.includes(PASS) && !log.includes(BASIC), 'no credential in the daemon log');
      });
      throwIfAny();
    });
  }
});

/** Runs node with `args`, `input` on stdin; SIGKILLs it after `killMs`. */
function runKilled(args: string[], input: string | undefined, killMs: number): Promise<{ r: RunResult; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), killMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ r: { code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }, ms: Date.now() - started });
    });
    if (input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(input);
    }
  });
}
