// The hostile-registry tier (issue 12, item 4) for the commands that only talk to registries:
// `ondine convert` reading from a hostile source (corrupt layers, bytes after the gzip member,
// a size lie, a hanging manifest, a dripping layer) and `ondine push` writing to a hostile
// target (an upload sent to another host, 500s, a hanging manifest PUT, blobs it claims to
// have but has not). Each ends in the right result or one line with an ONDINE_ERR_ code and a
// non-zero exit within a stated bound; nothing lands in the target; no credential leaves for
// another origin. A pass-through run first proves the front end itself is honest.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { MEDIA_TYPE } from '../../src/registry/media-types.js';
import { Cleanup, cliOk, cliPath, scratchDir, skipUnlessRoot, type RunResult } from '../helpers/e2e-env.js';
import { pseudoRandomBytes } from '../helpers/fanotify-daemon.js';
import { oneLineError } from '../helpers/hostile-checks.js';
import { HostileServer, appended, corrupt, sha256Digest } from '../helpers/hostile-registry.js';
import { httpCall, pushTestBlob, putTestManifest, startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { tarball } from '../helpers/tar-craft.js';
import { mkdirSync, writeFileSync } from 'node:fs';

const USER = 'push-user';
const PASS = 'Pw-push-77aa-never-elsewhere';
const BASIC = Buffer.from(`${USER}:${PASS}`).toString('base64');
const SRC = 'src/app';
/** A failure that needs no waiting on the wire. */
const FAIL_BOUND_MS = 60_000;
/** A hanging or dripping manifest or layer: the 30 s total deadline for manifests (issue 13), + 15 s for the CLI on a loaded machine. */
const WIRE_BOUND_MS = 45_000;

function runKilled(args: string[], input: string | undefined, killMs: number): Promise<{ r: RunResult; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
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

describe('hostile registry: convert from a hostile source, push to a hostile target', { skip: skipUnlessRoot, concurrency: 3 }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let source: RegistryServer;
  let target: RegistryServer;
  let layer: Buffer;
  let layerDigest: string;
  let manifest: { layers: Array<{ mediaType: string; digest: string; size: number }>; [k: string]: unknown };
  let img: string;
  let n = 0;

  before(async () => {
    work = scratchDir(suite, 'hostile-cp');
    source = await startRegistry();
    suite.after(() => source.stop());
    target = await startRegistry({ auth: 'basic', users: { [USER]: PASS } });
    suite.after(() => target.stop());
    const tar = tarball([
      { name: 'etc/', type: '5', mode: 0o755 },
      { name: 'etc/hostname', data: 'hostile-source\n' },
      { name: 'data.bin', data: pseudoRandomBytes(3301, 300 << 10) },
    ]);
    layer = gzipSync(tar);
    layerDigest = await pushTestBlob(source, SRC, layer);
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', config: {}, rootfs: { type: 'layers', diff_ids: [sha256Digest(tar)] } }));
    const configDigest = await pushTestBlob(source, SRC, config);
    manifest = {
      schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest,
      config: { mediaType: MEDIA_TYPE.ociConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MEDIA_TYPE.ociLayerGzip, digest: layerDigest, size: layer.length }],
    };
    await putTestManifest(source, SRC, '1', MEDIA_TYPE.ociManifest, Buffer.from(JSON.stringify(manifest)));
    // A lazy image to push.
    const src = join(work, 'tree');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc/hostname'), 'pushed\n');
    writeFileSync(join(src, 'data.bin'), pseudoRandomBytes(3302, 500 << 10));
    img = join(work, 'img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
  });

  const targetHas = async (repo: string, tag: string) => (await httpCall(`${target.url}/v2/${repo}/manifests/${tag}`, 'HEAD', { authorization: target.seedAuth(repo)!, accept: MEDIA_TYPE.ociManifest })).status === 200;
  const sourceHas = async (repo: string, tag: string) => (await httpCall(`${source.url}/v2/${repo}/manifests/${tag}`, 'HEAD', { accept: MEDIA_TYPE.ociManifest })).status === 200;

  async function convertThrough(t: { after(fn: () => unknown): void }, arrange: (s: HostileServer) => void): Promise<{ r: RunResult; ms: number; dst: string; front: HostileServer }> {
    const front = await HostileServer.start({ name: 'source', upstream: source.url });
    t.after(() => front.close());
    arrange(front);
    const dst = `dst/conv-${n++}`;
    const res = await runKilled(['convert', `${front.host}/${SRC}:1`, `${source.host}/${dst}:lazy`, '--work-dir', work], undefined, WIRE_BOUND_MS + 30_000);
    return { ...res, dst, front };
  }

  const layerPath = () => new RegExp(`^/v2/${SRC}/blobs/${layerDigest}$`);

  test('convert through an honest front end works (the baseline)', { timeout: 120_000 }, async (t) => {
    const { r, dst } = await convertThrough(t, () => undefined);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await sourceHas(dst, 'lazy'));
  });

  const convertCases: Array<{ name: string; waitsFor: string; bound: number; arrange: (s: HostileServer) => void }> = [
    { name: 'a corrupt layer', waitsFor: '', bound: FAIL_BOUND_MS, arrange: (s) => void s.on(layerPath(), { kind: 'mutate', name: 'corrupt', fn: corrupt }, { method: 'GET' }) },
    { name: 'a layer with one byte after its gzip member', waitsFor: '', bound: FAIL_BOUND_MS, arrange: (s) => void s.on(layerPath(), { kind: 'mutate', name: 'append', fn: appended(Buffer.from('X')) }, { method: 'GET' }) },
    { name: 'a layer with a second gzip member of garbage', waitsFor: '', bound: FAIL_BOUND_MS, arrange: (s) => void s.on(layerPath(), { kind: 'mutate', name: 'append', fn: appended(gzipSync(pseudoRandomBytes(3303, 2048))) }, { method: 'GET' }) },
    {
      name: 'a manifest that states 100 bytes for the layer',
      waitsFor: 'sizes',
      bound: FAIL_BOUND_MS,
      arrange: (s) => {
        const m = structuredClone(manifest);
        m.layers[0]!.size = 100;
        s.manifest(SRC, '1', m, MEDIA_TYPE.ociManifest);
      },
    },
    { name: 'a manifest that hangs', waitsFor: 'retry', bound: WIRE_BOUND_MS, arrange: (s) => void s.on(new RegExp(`^/v2/${SRC}/manifests/`), { kind: 'hangHeaders' }) },
    { name: 'a layer that drips a byte every 2 s', waitsFor: 'retry', bound: WIRE_BOUND_MS, arrange: (s) => void s.on(layerPath(), { kind: 'drip', everyMs: 2000 }, { method: 'GET' }) },
  ];
  for (const c of convertCases) {
    test(`convert from ${c.name}: one line, nothing pushed${c.waitsFor ? ` [waits for: ${c.waitsFor}]` : ''}`, { timeout: 180_000 }, async (t) => {
      const { r, ms, dst } = await convertThrough(t, c.arrange);
      t.diagnostic(`exit ${r.code} after ${ms} ms: ${r.stderr.trim().split('\n').pop() ?? ''}`);
      oneLineError(r, 'ondine convert');
      assert.ok(ms <= c.bound, `failed within ${c.bound} ms (took ${ms})`);
      assert.equal(await sourceHas(dst, 'lazy'), false, 'no image was pushed');
    });
  }

  async function pushThrough(t: { after(fn: () => unknown): void }, arrange: (s: HostileServer, foreign: HostileServer) => void, killMs = WIRE_BOUND_MS + 30_000) {
    const front = await HostileServer.start({ name: 'target', upstream: target.url });
    t.after(() => front.close());
    const foreign = await HostileServer.start({ name: 'foreign' });
    t.after(() => foreign.close());
    arrange(front, foreign);
    const repo = `pushed/p-${n++}`;
    const res = await runKilled(['push', img, `${front.host}/${repo}:1`, '--username', USER, '--password-stdin'], PASS, killMs);
    assert.deepEqual(foreign.credentialsSeen(), [], 'no credential reached another origin');
    assert.ok(!res.r.stderr.includes(PASS) && !res.r.stderr.includes(BASIC), 'no credential in the output');
    return { ...res, repo, front, foreign };
  }

  test('push through an honest front end works (the baseline)', { timeout: 120_000 }, async (t) => {
    const { r, repo } = await pushThrough(t, () => undefined);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await targetHas(repo, '1'));
  });

  const pushCases: Array<{ name: string; waitsFor: string; bound: number; arrange: (s: HostileServer, foreign: HostileServer) => void }> = [
    {
      name: 'uploads sent to another host',
      waitsFor: '',
      bound: FAIL_BOUND_MS,
      arrange: (s, foreign) => {
        s.on(/\/blobs\/uploads\/$/, { kind: 'status', status: 202, headers: { location: `${foreign.url}/upload/1`, 'docker-upload-uuid': '1', range: '0-0' }, body: '' }, { method: 'POST' });
        foreign.on(/^\/upload\//, { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="foreign"' } }, { method: 'PUT' });
        foreign.on(/^\/upload\//, { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="foreign"' } }, { method: 'PATCH' });
      },
    },
    { name: 'every PUT answered 500', waitsFor: '', bound: FAIL_BOUND_MS, arrange: (s) => void s.on(/^\/v2\//, { kind: 'status', status: 500 }, { method: 'PUT' }) },
    { name: 'a manifest PUT that hangs', waitsFor: 'retry', bound: WIRE_BOUND_MS, arrange: (s) => void s.on(/\/manifests\//, { kind: 'hangHeaders' }, { method: 'PUT' }) },
    { name: 'blobs it claims to have but has not', waitsFor: '', bound: FAIL_BOUND_MS, arrange: (s) => void s.on(/\/blobs\/sha256:/, { kind: 'status', status: 200, headers: { 'content-length': '1', 'docker-content-digest': 'sha256:' + '0'.repeat(64) }, body: '' }, { method: 'HEAD' }) },
  ];
  for (const c of pushCases) {
    test(`push to a target with ${c.name}: one line, no image${c.waitsFor ? ` [waits for: ${c.waitsFor}]` : ''}`, { timeout: 180_000 }, async (t) => {
      const { r, ms, repo } = await pushThrough(t, c.arrange);
      t.diagnostic(`exit ${r.code} after ${ms} ms: ${r.stderr.trim().split('\n').pop() ?? ''}`);
      oneLineError(r, 'ondine push');
      assert.ok(ms <= c.bound, `failed within ${c.bound} ms (took ${ms})`);
      assert.equal(await targetHas(repo, '1'), false, 'no image in the target');
    });
  }
});
