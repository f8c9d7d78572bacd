// The hostile-registry tier (issue 12, item 4) on the cachefiles path, in the VM: a
// docker-registry on the guest loopback holds the small fixture image, and a HostileServer in
// front of it lies in the ways that matter most for what reaches disk and memory: a bootstrap
// whose blob id is ../../../victim, a gzip bomb as the bootstrap layer (made on the host:
// hostile-bomb.gz in the fixtures), a bootstrap layer that streams 1.5 GiB where the manifest
// states a few KiB, and data blobs that hang, drip or come corrupt. One daemon serves them all
// in turn (one process may hold /dev/cachefiles), each with its own fsid; after each: the
// daemon answers `ondine status --json`, its VmHWM stays ≤ 512 MiB, the canaries beside the
// cache directory are untouched, and nothing mounted is left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, manifest, readInChild, run, startDaemon, CACHE_DIR, type DaemonProc } from './harness.js';
import { makeBootstrapLayer } from '../../../src/oci/bootstrap-layer.js';
import { MEDIA_TYPE } from '../../../src/registry/media-types.js';
import { failureList, oneLineError, plantCanaries, vmHwmKiB, withBlobId } from '../../helpers/hostile-checks.js';
import { HostileServer, corrupt, sha256Digest, zeros } from '../../helpers/hostile-registry.js';
import { pushLazy } from '../../helpers/lazy-push.js';
import { httpCall, startRegistry, type RegistryServer } from '../../helpers/registry-env.js';

const REPO = 'vm/hostile';
const READ_TIMEOUT_MS = 5000;
const EIO_BOUND_MS = READ_TIMEOUT_MS + 5000;
/** Refusals in the VM (TCG is slow): generous. */
const REFUSE_BOUND_MS = 90_000;
const HWM_LIMIT_KIB = 512 * 1024;

interface Img { manifest: { layers: Array<{ digest: string; size: number }>; [k: string]: unknown }; blobId: string; boot: Buffer; bootLayerDigest: string; file: string; fileSha: string }

test('hostile registry over cachefiles: traversal, bomb, size lie, hang, drip, corrupt', { timeout: 30 * 60_000 }, async (t) => {
  const up = await run('busybox', ['ip', 'link', 'set', 'lo', 'up']);
  assert.equal(up.code, 0, `ip link set lo up: ${up.stderr}`);
  const tmp = await run('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'ondine-hostile', '/var/tmp']);
  assert.equal(tmp.code, 0, `tmpfs on /var/tmp: ${tmp.stderr}`);
  t.after(() => run('umount', ['/var/tmp']));
  const m = await manifest();
  const bombFile = join(process.env.ONDINE_VM_FIXTURES!, 'hostile-bomb.gz');

  const jail = join(CACHE_DIR, 'hostile-jail');
  const cacheDir = join(jail, 'cache');
  mkdirSync(cacheDir, { recursive: true });
  const snap = plantCanaries(jail, cacheDir);
  const canaries = snap();

  const registry: RegistryServer = await startRegistry();
  t.after(() => registry.stop());
  const pushed = await pushLazy(registry, REPO, '1', join(m.small.dir, 'bootstrap'), join(m.small.dir, 'blobs'));
  const got = await httpCall(`${registry.url}/v2/${REPO}/manifests/1`, 'GET', { accept: MEDIA_TYPE.ociManifest });
  const file = Object.keys(m.small.files).find((p) => p.endsWith('random.bin'))!;
  const img: Img = {
    manifest: JSON.parse(got.body.toString('utf8')) as Img['manifest'],
    blobId: m.small.blobs[0]!.id,
    boot: readFileSync(join(m.small.dir, 'bootstrap')),
    bootLayerDigest: pushed.bootstrapLayerDigest,
    file,
    fileSha: m.small.files[file]!,
  };
  const d: DaemonProc = await startDaemon('hostile', ['--mode', 'cachefiles', '--read-timeout', String(READ_TIMEOUT_MS), '--amplify', '0'], cacheDir, 120_000);
  t.after(() => d.stop());
  const worker = ((await d.client.stats()) as { workerPid: number }).workerPid;

  const withLayer = (front: HostileServer, layer: Buffer) => {
    const digest = sha256Digest(layer);
    const mm = structuredClone(img.manifest);
    mm.layers[mm.layers.length - 1]!.digest = digest;
    mm.layers[mm.layers.length - 1]!.size = layer.length;
    front.blob(REPO, digest, layer);
    front.manifest(REPO, '1', mm, MEDIA_TYPE.ociManifest);
  };
  const blobPath = new RegExp(`^/v2/${REPO}/blobs/sha256:${img.blobId}$`);

  const cases: Array<{ name: string; arrange(front: HostileServer): void | Promise<void>; expect: 'refused' | 'eio' }> = [
    { name: 'a blob id of ../../../victim', expect: 'refused', arrange: async (f) => withLayer(f, (await makeBootstrapLayer(withBlobId(img.boot, img.blobId, Buffer.from('../../../victim')))).bytes) },
    { name: 'a gzip bomb as the bootstrap layer', expect: 'refused', arrange: (f) => withLayer(f, readFileSync(bombFile)) },
    { name: 'a bootstrap layer that streams 1.5 GiB', expect: 'refused', arrange: (f) => void f.blob(REPO, img.bootLayerDigest, zeros(1.5 * 1024 * 1024 * 1024)) },
    { name: 'data ranges that hang', expect: 'eio', arrange: (f) => void f.on(blobPath, { kind: 'hangHeaders' }, { method: 'GET' }) },
    { name: 'data ranges that drip a byte every 2 s', expect: 'eio', arrange: (f) => void f.on(blobPath, { kind: 'drip', everyMs: 2000 }, { method: 'GET' }) },
    { name: 'corrupt data ranges', expect: 'eio', arrange: (f) => void f.on(blobPath, { kind: 'mutate', fn: corrupt }, { method: 'GET' }) },
  ];
  let i = 0;
  for (const c of cases) {
    await t.test(c.name, { skip: c.name.includes('bomb') && !existsSync(bombFile) ? 'no hostile-bomb.gz in the fixtures' : false }, async (st) => {
      const front = await HostileServer.start({ name: 'origin', upstream: registry.url });
      st.after(() => front.close());
      await c.arrange(front);
      const mnt = `/run/mnt-hostile-${i}`;
      mkdirSync(mnt, { recursive: true });
      // A mount that should have been refused, or a failed assertion, must not outlive the case.
      st.after(() => run('umount', ['-l', mnt]));
      const { check, throwIfAny } = failureList();
      await check('outcome', async () => {
        const started = Date.now();
        const r = await cli(['mount', `${front.host}/${REPO}:1`, mnt, '--socket', d.socket, '--mode', 'cachefiles', '--fsid', `hostile-${i++}`], REFUSE_BOUND_MS + 30_000);
        const ms = Date.now() - started;
        st.diagnostic(`mount: exit ${r.code} after ${ms} ms ${r.stderr.trim().split('\n').pop() ?? ''}`);
        if (c.expect === 'refused') {
          oneLineError({ code: r.code, signal: null, stdout: r.stdout, stderr: r.stderr }, 'ondine mount');
          assert.ok(ms <= REFUSE_BOUND_MS, `refused within ${REFUSE_BOUND_MS} ms`);
        } else {
          assert.equal(r.code, 0, r.stderr);
          const o = await readInChild(join(mnt, img.file), EIO_BOUND_MS + 60_000);
          st.diagnostic(`read: ${o.result} after ${o.ms} ms`);
          assert.equal(o.result, 'EIO');
          assert.ok(o.ms <= EIO_BOUND_MS, `EIO within ${EIO_BOUND_MS} ms (took ${o.ms})`);
        }
      });
      // The invariants, checked and reported also when the outcome failed. The status call is
      // the CLI's (a node start under TCG takes seconds), bounded generously.
      let pid = worker;
      await check('daemon answers', async () => {
        const s = await cli(['status', '--json', '--socket', d.socket], 90_000);
        assert.equal(s.code, 0, `ondine status answers (exit ${s.code}): ${s.stderr}`);
        pid = (JSON.parse(s.stdout) as { workerPid: number }).workerPid;
        assert.equal(pid, worker, 'the same daemon served throughout');
      });
      await check('memory', () => {
        const hwm = vmHwmKiB(pid);
        st.diagnostic(`daemon VmHWM ${Math.round(hwm / 1024)} MiB`);
        assert.ok(hwm <= HWM_LIMIT_KIB, `VmHWM ${hwm} KiB ≤ ${HWM_LIMIT_KIB} KiB`);
      });
      await check('canaries', () => assert.equal(snap(), canaries, 'nothing beside the cache directory changed'));
      throwIfAny();
    });
  }
});
