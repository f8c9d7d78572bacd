// The containerd snapshotter over cachefiles, in the VM (its kernel has no overlayfs, cgroups
// or namespaces for runc, so containerd itself runs on the host only): a lazy image is pushed to
// a docker-registry on the guest loopback and "pulled" through gRPC as containerd's unpacker
// does it; the View of the image is the daemon's fscache EROFS mount (a read-only bind), which
// is mounted and read back whole; the pull fetched no data blob, the reads did; and the EROFS
// mount goes when its last snapshot does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { CACHE_DIR, CLI, LOG_DIR, hashTree, manifest, run } from './harness.js';
import { DaemonClient } from '../../../src/daemon/client.js';
import { pushLazy } from '../../helpers/lazy-push.js';
import { httpCall, startRegistry } from '../../helpers/registry-env.js';
import { SnapshotsClient } from '../../helpers/snapshotter-env.js';
import { listFscacheMounts } from '../../../src/kernel/mounts.js';

interface Layer { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }

test('the snapshotter over cachefiles: a lazy image pulled through gRPC, its EROFS lower mounted and read', async (t) => {
  const up = await run('busybox', ['ip', 'link', 'set', 'lo', 'up']);
  assert.equal(up.code, 0, `ip link set lo up: ${up.stderr}`);
  const tmp = await run('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'ondine-snap', '/var/tmp']);
  assert.equal(tmp.code, 0, `tmpfs on /var/tmp: ${tmp.stderr}`);
  t.after(() => run('umount', ['-l', '/var/tmp']));
  const m = await manifest();
  const registry = await startRegistry();
  // Whatever fails below, nothing may stay running: the guest's test process would never exit.
  t.after(() => registry.stop());
  // Started here with a longer wait than the harness's: under TCG on a loaded host, node
  // starting the daemon took longer than 30 s.
  await mkdir(LOG_DIR, { recursive: true });
  const dlog = await open(join(LOG_DIR, `snap-daemon-${process.pid}.log`), 'a');
  const dproc = spawn(process.execPath, [CLI, 'daemon', '--cache-dir', CACHE_DIR, '--socket', `/run/ondine-test/snap-daemon-${process.pid}.sock`, '--mode', 'cachefiles'], { stdio: ['ignore', dlog.fd, dlog.fd] });
  await dlog.close();
  const dExit = new Promise((r) => dproc.once('exit', r));
  t.after(() => { if (dproc.exitCode === null) dproc.kill('SIGKILL'); });
  const d = { socket: `/run/ondine-test/snap-daemon-${process.pid}.sock`, client: new DaemonClient(`/run/ondine-test/snap-daemon-${process.pid}.sock`), stop: async () => { if (dproc.exitCode === null) dproc.kill('SIGTERM'); await dExit; } };
  await d.client.waitUntilUp(() => dproc.exitCode, 180_000, `log in ${LOG_DIR}`);
  const root = '/var/tmp/snap';
  const certs = join(root, 'certs.d');
  await mkdir(join(certs, registry.host), { recursive: true });
  await writeFile(join(certs, registry.host, 'hosts.toml'), `server = "http://${registry.host}"\n`);
  await mkdir(LOG_DIR, { recursive: true });
  const log = await open(join(LOG_DIR, `snapshotter-${process.pid}.log`), 'a');
  const socket = `/run/ondine-test/snapshotter-${process.pid}.sock`;
  const sn = spawn(process.execPath, [CLI, 'snapshotter', '--socket', socket, '--root', join(root, 'root'), '--daemon-socket', d.socket, '--hosts-dir', certs], { stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  const snExit = new Promise((r) => sn.once('exit', r));
  t.after(() => { if (sn.exitCode === null) sn.kill('SIGKILL'); });
  const c = new SnapshotsClient(socket);
  try {
    const pushed = await pushLazy(registry, 'vm/snap', '1', join(m.small.dir, 'bootstrap'), join(m.small.dir, 'blobs'));
    const ref = `${registry.host}/vm/snap:1`;
    for (let i = 0; ; i++) {
      try { await c.list([], 2000); break; } catch (err) { if (i > 300 || sn.exitCode !== null) throw err; await new Promise((r) => setTimeout(r, 200)); }
    }
    const man = await httpCall(`${registry.url}/v2/vm/snap/manifests/1`, 'GET', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    const layers = (JSON.parse(man.body.toString()) as { layers: Layer[] }).layers;
    let parent = '';
    const chains: string[] = [];
    for (const [i, l] of layers.entries()) {
      const chain = `chain-${i}-${l.digest}`;
      const labels = { 'containerd.io/snapshot.ref': chain, 'containerd.io/snapshot/cri.image-ref': ref, ...l.annotations };
      const key = `extract-${i}`;
      if (l.annotations?.['containerd.io/snapshot/nydus-blob']) {
        await assert.rejects(c.prepare(key, parent, labels), (e: { code: number }) => e.code === status.ALREADY_EXISTS);
      } else {
        // No overlayfs here: the layer goes into the upper dir the answer names (its only lower is empty).
        const mounts = await c.prepare(key, parent, labels);
        const upper = mounts[0]!.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
        assert.ok(upper, JSON.stringify(mounts));
        const blob = await httpCall(`${registry.url}/v2/vm/snap/blobs/${l.digest}`, 'GET');
        await writeFile(join(root, 'boot.tgz'), blob.body);
        const x = await run('tar', ['-xzf', join(root, 'boot.tgz'), '-C', upper]);
        assert.equal(x.code, 0, x.stderr);
        await c.commit(chain, key, labels);
      }
      chains.push(chain);
      parent = chain;
    }
    const dataGets = async () => (await registry.requests()).filter((e) => e.method === 'GET' && pushed.blobs.some((b) => e.path.includes(`/blobs/sha256:${b.id}`)));
    assert.deepEqual(await dataGets(), [], 'the pull fetched no data blob');
    const view = await c.view('view', parent);
    assert.equal(view.length, 1);
    assert.equal(view[0]!.type, 'bind');
    assert.ok(view[0]!.options.includes('ro'));
    const fscache = await listFscacheMounts();
    assert.ok(fscache.some((x) => x.mountpoint === view[0]!.source), `the view's source is an fscache EROFS mount: ${JSON.stringify(fscache)}`);
    const container = await c.prepare('container', parent);
    assert.ok(container[0]!.options.includes(`lowerdir=${view[0]!.source}`), JSON.stringify(container));
    const mnt = '/run/mnt-snap-view';
    await mkdir(mnt, { recursive: true });
    const b = await run('mount', ['-o', view[0]!.options.join(','), view[0]!.source, mnt]);
    assert.equal(b.code, 0, b.stderr);
    try {
      assert.deepEqual(await hashTree(mnt), m.small.files);
    } finally {
      await run('umount', [mnt]);
    }
    assert.ok((await dataGets()).length > 0, 'the reads fetched the data blob');
    await c.remove('container');
    await c.remove('view');
    for (let i = 0; i < 150 && (await listFscacheMounts()).some((x) => x.mountpoint === view[0]!.source); i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(!(await listFscacheMounts()).some((x) => x.mountpoint === view[0]!.source), 'the EROFS mount went with its last user');
    for (const ch of chains.reverse()) await c.remove(ch);
    await c.cleanup();
    assert.deepEqual(await c.list(), []);
  } finally {
    c.close();
    sn.kill('SIGTERM');
    await snExit;
    await d.stop();
  }
});
