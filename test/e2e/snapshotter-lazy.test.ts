// The remote-snapshot contract end to end below containerd: a Nydus image built by `ondine
// build`, pushed to a real docker-registry, is "pulled" through gRPC exactly as containerd's
// unpacker does it (data layers Prepared with containerd.io/snapshot.ref and the nydus-blob
// annotation, answered ALREADY_EXISTS; the bootstrap layer Prepared, its tar applied into the
// returned mounts, Committed), then a container snapshot over it is mounted for real (overlay
// over the daemon's EROFS mount) and read. The registry's access log proves laziness. With the
// registry hung and the daemon's worker SIGSTOPped, Remove, List and Stat still answer in under
// 1 s; the EROFS mount goes when its last user does. Reads are asynchronous: the fault proxy
// serving them runs in this process, so a synchronous read would wait for itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Cleanup, cliOk, mountsUnder, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { pseudoRandomBytes, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { pushLazy, type PushedLazyImage } from '../helpers/lazy-push.js';
import { httpCall, startFaultProxy, startRegistry, type FaultProxy, type RegistryServer } from '../helpers/registry-env.js';
import { mountAll, startSnapshotter, umountAll, type SnapshotterProcess } from '../helpers/snapshotter-env.js';

interface Layer { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }

const chainOf = (parent: string, digest: string) => (parent ? `sha256:${createHash('sha256').update(`${parent} ${digest}`).digest('hex')}` : digest);

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as { code: number }).code;
  }
  return status.OK;
}

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

describe('ondine snapshotter: lazy Nydus images (remote snapshots)', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let registry: RegistryServer;
  let proxy: FaultProxy;
  let d: FanotifyDaemon;
  let s: SnapshotterProcess;
  let pushed: PushedLazyImage;
  let ref: string;
  let layers: Layer[];
  let bootChain = '';
  const dataChains: string[] = [];

  before(async () => {
    requireKernelFs('erofs');
    requireKernelFs('overlay');
    work = scratchDir(suite, 'snap-lazy');
    registry = await startRegistry();
    suite.after(() => registry.stop());
    proxy = await startFaultProxy(registry.url);
    suite.after(() => proxy.stop());
    const src = join(work, 'src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    mkdirSync(join(src, 'usr/lib'), { recursive: true });
    writeFileSync(join(src, 'etc/hostname'), 'lazy-through-the-snapshotter\n');
    writeFileSync(join(src, 'usr/lib/big.bin'), pseudoRandomBytes(11, 16 << 20));
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    pushed = await pushLazy(registry, 'lazy/app', '1', join(work, 'img', 'bootstrap'), join(work, 'img', 'blobs'));
    // containerd's certs.d: the image's registry (the proxy in front of the real one) over HTTP.
    mkdirSync(join(work, 'certs.d', proxy.host), { recursive: true });
    writeFileSync(join(work, 'certs.d', proxy.host, 'hosts.toml'), `server = "http://${proxy.host}"\n[host."http://${proxy.host}"]\n  capabilities = ["pull", "resolve"]\n`);
    ref = `${proxy.host}/lazy/app:1`;
    const man = await httpCall(`${registry.url}/v2/lazy/app/manifests/1`, 'GET', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    layers = (JSON.parse(man.body.toString()) as { layers: Layer[] }).layers;
    d = await startFanotifyDaemon(suite, work);
    s = await startSnapshotter(suite, { root: work, daemonSocket: d.socket, hostsDir: join(work, 'certs.d') });
  });

  const blobGets = async () => (await registry.requests()).filter((e) => e.method === 'GET' && pushed.blobs.some((b) => e.path.includes(`/blobs/sha256:${b.id}`)));

  test('a pull as containerd does it: data layers answered ALREADY_EXISTS, no data blob fetched', async () => {
    const c = s.client;
    let parent = '';
    for (const [i, l] of layers.entries()) {
      const chain = chainOf(parent, l.digest);
      const labels = { 'containerd.io/snapshot.ref': chain, 'containerd.io/snapshot/cri.image-ref': ref, 'containerd.io/snapshot/cri.layer-digest': l.digest, ...l.annotations };
      const key = `default/${i}/extract-${i} ${chain}`;
      if (l.annotations?.['containerd.io/snapshot/nydus-blob']) {
        assert.equal(await code(c.prepare(key, parent, labels)), status.ALREADY_EXISTS, `data layer ${i}`);
        // What containerd's metadata snapshotter then looks for.
        const found = await c.list([`labels."containerd.io/snapshot.ref"==${chain},parent==${JSON.stringify(parent)}`]);
        assert.equal(found.length, 1);
        assert.equal(found[0]!.kind, 'COMMITTED');
        assert.equal(found[0]!.labels['containerd.io/snapshot/remote'], 'remote');
        dataChains.push(chain);
      } else {
        assert.ok(l.annotations?.['containerd.io/snapshot/nydus-bootstrap'], 'the last layer is the bootstrap');
        const mounts = await c.prepare(key, parent, labels);
        const mnt = join(work, 'apply');
        mountAll(mounts, mnt);
        const blob = await httpCall(`${registry.url}/v2/lazy/app/blobs/${l.digest}`, 'GET');
        writeFileSync(join(work, 'boot.tgz'), blob.body);
        execFileSync('tar', ['-xzf', join(work, 'boot.tgz'), '-C', mnt]);
        umountAll(mnt);
        await c.commit(chain, key, labels);
        bootChain = chain;
      }
      parent = chain;
    }
    assert.equal(dataChains.length, pushed.blobs.length);
    assert.ok(bootChain);
    // Pulled again (another namespace, say): the data layers are there already.
    assert.equal(await code(c.prepare('again', '', { 'containerd.io/snapshot.ref': dataChains[0]!, 'containerd.io/snapshot/nydus-blob': 'true' })), status.ALREADY_EXISTS);
    assert.deepEqual(await blobGets(), [], 'no data blob was fetched by the pull');
  });

  test('a container over the image runs on the EROFS mount: right contents, only what it read fetched', async (t) => {
    const c = s.client;
    // Two containers at once over an image not mounted yet: one EROFS mount serves both.
    const [mounts, twin] = await Promise.all([
      c.prepare('container-1', bootChain, { 'containerd.io/snapshot/cri.image-ref': ref }),
      c.prepare('container-twin', bootChain),
    ]);
    assert.equal(twin[0]!.options.find((o) => o.startsWith('lowerdir=')), mounts[0]!.options.find((o) => o.startsWith('lowerdir=')));
    await c.remove('container-twin');
    assert.equal(mounts[0]!.type, 'overlay');
    const lower = mounts[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length);
    assert.deepEqual(lower.split(':'), [join(s.root, 'lazy', lower.split('/').pop()!)], 'the only lower is the EROFS mount');
    assert.ok(mountsUnder(join(s.root, 'lazy')).length === 1, 'one EROFS mount');
    const mnt = join(work, 'rootfs');
    mountAll(mounts, mnt);
    try {
      assert.equal(await readFile(join(mnt, 'etc/hostname'), 'utf8'), 'lazy-through-the-snapshotter\n');
      writeFileSync(join(mnt, 'etc/written'), 'upper\n');
      const gets = await blobGets();
      const bytes = gets.reduce((n, e) => n + e.bytes, 0);
      t.diagnostic(`reading one small file: ${gets.length} range GETs of the data blob, ${bytes} bytes of ${pushed.blobs[0]!.size}`);
      assert.ok(gets.length >= 1 && gets.every((e) => e.status === 206), `Range reads only: ${JSON.stringify(gets.map((e) => e.status))}`);
      assert.ok(bytes < pushed.blobs[0]!.size / 10, `lazy: ${bytes} of ${pushed.blobs[0]!.size} bytes for one small file`);
      const big = await readFile(join(mnt, 'usr/lib/big.bin'));
      assert.equal(createHash('sha256').update(big).digest('hex'), createHash('sha256').update(pseudoRandomBytes(11, 16 << 20)).digest('hex'));
    } finally {
      umountAll(mnt);
    }
    const u = await c.usage('container-1');
    assert.ok(u.size < 1 << 20, `usage counts the upper dir only, not the 16 MiB image: ${u.size}`);
    // A View of the lazy image (CRI reads /etc/passwd so): a read-only bind of the EROFS mount.
    const view = await c.view('view-1', bootChain);
    assert.deepEqual(view.map((m) => [m.type, m.options.includes('ro')]), [['bind', true]]);
    mountAll(view, join(work, 'view'));
    assert.equal(await readFile(join(work, 'view', 'etc/hostname'), 'utf8'), 'lazy-through-the-snapshotter\n');
    umountAll(join(work, 'view'));
    assert.match(s.log(), /this chain runs lazily/);
    assert.ok(s.log().includes(bootChain), 'the log names the chain id that ran lazily');
  });

  test('registry hung and worker SIGSTOPped: Remove, List and Stat answer in under 1 s', async (t) => {
    const c = s.client;
    await c.prepare('container-2', bootChain);
    proxy.fail('hang', 1000, /.*/);
    const worker = (await d.status()).workerPid;
    process.kill(worker, 'SIGSTOP');
    t.after(() => { try { process.kill(worker, 'SIGCONT'); } catch { /* gone */ } });
    try {
      const [, removeMs] = await timed(c.remove('container-2', 5000));
      const [list, listMs] = await timed(c.list([], 5000));
      const [stCode, statMs] = await timed(code(c.stat('container-2', 5000)));
      const [, stat2Ms] = await timed(c.stat(bootChain, 5000));
      t.diagnostic(`Remove ${removeMs.toFixed(0)} ms, List ${listMs.toFixed(0)} ms, Stat ${statMs.toFixed(0)}/${stat2Ms.toFixed(0)} ms`);
      assert.ok(removeMs < 1000 && listMs < 1000 && statMs < 1000 && stat2Ms < 1000);
      assert.equal(stCode, status.NOT_FOUND, 'the removed key is gone at once');
      assert.ok(!list.some((i) => i.name === 'container-2'));
    } finally {
      process.kill(worker, 'SIGCONT');
      proxy.fail('hang', 0);
    }
  });

  test('the EROFS mount goes with its last user; removing everything leaves no mount and no dir', async () => {
    const c = s.client;
    await c.remove('container-1');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(mountsUnder(join(s.root, 'lazy')).length, 1, 'the view still stands on it');
    await c.remove('view-1');
    const deadline = Date.now() + 30_000;
    while (mountsUnder(join(s.root, 'lazy')).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(mountsUnder(join(s.root, 'lazy')), [], 'unmounted once no snapshot uses it');
    assert.equal(await code(c.remove(dataChains[0]!)), status.FAILED_PRECONDITION, 'a parent stays');
    await c.remove(bootChain);
    for (const ch of [...dataChains].reverse()) await c.remove(ch);
    await c.cleanup();
    assert.deepEqual(await c.list(), []);
    assert.deepEqual(readdirSync(join(s.root, 'snapshots')), []);
    assert.deepEqual(mountsUnder(s.root), []);
    assert.deepEqual((await d.status()).mounts, [], 'the daemon serves no mount any more');
  });

  test('a hostile image reference in the labels is refused, naming the label', async () => {
    const err = await s.client.prepare('bad', '', { 'containerd.io/snapshot/nydus-bootstrap': 'true', 'containerd.io/snapshot/cri.image-ref': '../../etc/passwd' }).catch((e: Error & { code: number }) => e);
    assert.equal((err as { code: number }).code, status.INVALID_ARGUMENT);
    assert.match((err as Error).message, /cri\.image-ref/);
  });
});
