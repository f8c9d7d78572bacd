// `ondine snapshotter` for plain layers, through gRPC as containerd calls it, next to a real
// daemon (fanotify) on the host: the answers are mounted for real (bind and overlayfs) and
// their contents checked; containerd's error classes come back as the right gRPC codes;
// Remove leaves nothing behind; kill -9 between (and during) calls loses nothing the caller
// was told. Nothing of the system's is touched: own root, socket and daemon.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Cleanup, cliPath, mountsUnder, requireKernelFs, run, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { mountAll, startSnapshotter, umountAll, type GrpcInfo, type SnapshotterProcess } from '../helpers/snapshotter-env.js';

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as { code: number }).code;
  }
  return status.OK;
}

describe('ondine snapshotter: plain layers', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let d: FanotifyDaemon;
  let s: SnapshotterProcess;
  const stdout: string[] = [];

  before(async () => {
    requireKernelFs('erofs');
    requireKernelFs('overlay');
    work = scratchDir(suite, 'snap-plain');
    d = await startFanotifyDaemon(suite, work);
    s = await startSnapshotter(suite, { root: work, daemonSocket: d.socket, stdout });
  });

  test('layers applied through the returned mounts stack as overlayfs; views are read-only', async () => {
    const c = s.client;
    const mnt = join(work, 'mnt');
    // Layer 1: no parent, a read-write bind mount.
    const m1 = await c.prepare('extract-1', '', { 'containerd.io/snapshot.ref': 'sha256:c1' });
    assert.deepEqual(m1.map((m) => [m.type, m.options.includes('rw')]), [['bind', true]]);
    mountAll(m1, mnt);
    mkdirSync(join(mnt, 'etc'));
    writeFileSync(join(mnt, 'etc/os-release'), 'ID=ondine\n');
    writeFileSync(join(mnt, 'etc/old'), 'to be deleted\n');
    umountAll(mnt);
    await c.commit('layer-1', 'extract-1', { 'containerd.io/snapshot.ref': 'sha256:c1' });
    // Layer 2 over it: overlay with layer 1 as the lower dir; a deletion is a whiteout.
    const m2 = await c.prepare('extract-2', 'layer-1');
    assert.equal(m2.length, 1);
    assert.equal(m2[0]!.type, 'overlay');
    assert.ok(m2[0]!.options.some((o) => o.startsWith('upperdir=')) && m2[0]!.options.some((o) => o.startsWith('lowerdir=')), m2[0]!.options.join(','));
    mountAll(m2, mnt);
    assert.equal(readFileSync(join(mnt, 'etc/os-release'), 'utf8'), 'ID=ondine\n');
    rmSync(join(mnt, 'etc/old'));
    writeFileSync(join(mnt, 'etc/hostname'), 'layer-2\n');
    umountAll(mnt);
    await c.commit('layer-2', 'extract-2');
    // A view over two layers: overlay without upper (read-only); over one: a read-only bind.
    const v2 = await c.view('view-2', 'layer-2');
    mountAll(v2, mnt);
    assert.deepEqual(readdirSync(join(mnt, 'etc')).sort(), ['hostname', 'os-release']);
    assert.throws(() => writeFileSync(join(mnt, 'etc/x'), 'x'), /EROFS|read-only/i);
    umountAll(mnt);
    const v1 = await c.view('view-1', 'layer-1');
    assert.deepEqual(v1.map((m) => [m.type, m.options.includes('ro')]), [['bind', true]]);
    mountAll(v1, mnt);
    assert.deepEqual(readdirSync(join(mnt, 'etc')).sort(), ['old', 'os-release']);
    umountAll(mnt);
    // The container's writable snapshot; Mounts answers the same as Prepare did.
    const mc = await c.prepare('container', 'layer-2', { app: 'demo' });
    assert.deepEqual(await c.mounts('container'), mc);
    mountAll(mc, mnt);
    writeFileSync(join(mnt, 'data.bin'), Buffer.alloc(256 << 10, 7));
    assert.equal(readFileSync(join(mnt, 'etc/hostname'), 'utf8'), 'layer-2\n');
    umountAll(mnt);
    const u = await c.usage('container');
    assert.ok(u.size >= 256 << 10 && u.size < 1 << 20, `usage ${u.size} counts the upper dir's 256 KiB`);
    assert.ok(u.inodes >= 2, `inodes ${u.inodes}`);
    const committedUsage = await c.usage('layer-1');
    assert.ok(committedUsage.size > 0 && committedUsage.inodes >= 3, JSON.stringify(committedUsage));
  });

  test('Stat, List with filters and Update tell the truth', async () => {
    const c = s.client;
    const st = await c.stat('layer-2');
    assert.equal(st.kind, 'COMMITTED');
    assert.equal(st.parent, 'layer-1');
    assert.equal((await c.stat('container')).kind, 'ACTIVE');
    assert.equal((await c.stat('view-1')).kind, 'VIEW');
    assert.deepEqual((await c.list()).map((i) => i.name).sort(), ['container', 'layer-1', 'layer-2', 'view-1', 'view-2']);
    assert.deepEqual((await c.list(['kind==committed'])).map((i) => i.name).sort(), ['layer-1', 'layer-2']);
    assert.deepEqual((await c.list(['labels."containerd.io/snapshot.ref"==sha256:c1,parent==""'])).map((i) => i.name), ['layer-1']);
    assert.deepEqual((await c.list(['parent==layer-2', 'name==view-1'])).map((i) => i.name).sort(), ['container', 'view-1', 'view-2']);
    const up = await c.update({ name: 'container', labels: { app: 'other', extra: 'x' } }, ['labels.app']);
    assert.deepEqual(up.labels, { app: 'other' });
    const all = await c.update({ name: 'container', labels: { a: '1' } });
    assert.deepEqual(all.labels, { a: '1' });
    assert.deepEqual((await c.stat('container')).labels, { a: '1' });
  });

  test("containerd's error classes arrive as gRPC codes", async () => {
    const c = s.client;
    assert.equal(await code(c.prepare('container', 'layer-2')), status.ALREADY_EXISTS);
    assert.equal(await code(c.prepare('x', 'no-such-parent')), status.NOT_FOUND);
    assert.equal(await code(c.prepare('x', 'container')), status.INVALID_ARGUMENT, 'an active parent');
    assert.equal(await code(c.commit('layer-1', 'container')), status.ALREADY_EXISTS);
    assert.equal(await code(c.commit('n', 'view-1')), status.FAILED_PRECONDITION, 'a view cannot be committed');
    assert.equal(await code(c.commit('n', 'nothing')), status.NOT_FOUND);
    assert.equal(await code(c.remove('layer-1')), status.FAILED_PRECONDITION, 'a parent cannot be removed');
    assert.equal(await code(c.remove('nothing')), status.NOT_FOUND);
    assert.equal(await code(c.stat('nothing')), status.NOT_FOUND);
    assert.equal(await code(c.mounts('layer-1')), status.FAILED_PRECONDITION);
    assert.equal(await code(c.update({ name: 'layer-1', labels: {} }, ['parent'])), status.INVALID_ARGUMENT);
    assert.equal(await code(c.prepare('bad\u0000key')), status.INVALID_ARGUMENT);
    assert.equal(await code(c.prepare('big', '', { k: 'v'.repeat(5000) })), status.INVALID_ARGUMENT);
    assert.equal(await code(c.list(['labels."open'])), status.INVALID_ARGUMENT);
  });

  test('Remove answers, the key is gone at once, and Cleanup leaves no directory behind', async () => {
    const c = s.client;
    for (const k of ['container', 'view-1', 'view-2', 'layer-2', 'layer-1']) {
      await c.remove(k);
      assert.equal(await code(c.stat(k)), status.NOT_FOUND, `${k} gone from Stat`);
      assert.ok(!(await c.list()).some((i) => i.name === k), `${k} gone from List`);
    }
    await c.cleanup();
    assert.deepEqual(readdirSync(join(s.root, 'snapshots')), []);
    assert.deepEqual(readdirSync(join(s.root, 'trash')), []);
    assert.deepEqual(mountsUnder(s.root), []);
  });

  test('kill -9 between and during calls loses nothing the caller was told', async (t) => {
    let cur = s;
    const model = new Map<string, string>();
    const restart = async () => {
      await cur.stop('SIGKILL');
      cur = await startSnapshotter(t, { root: work, daemonSocket: d.socket });
      const got = new Map((await cur.client.list()).map((i: GrpcInfo) => [i.name, i.kind]));
      assert.deepEqual(new Map([...got].filter(([k]) => model.has(k))), model, 'every answered change survived');
      for (const [k, kind] of got) if (!model.has(k)) assert.fail(`unexpected snapshot ${k} (${kind}) after restart`);
    };
    let parent = '';
    for (let i = 0; i < 3; i++) {
      await cur.client.prepare(`k-${i}`, parent);
      model.set(`k-${i}`, 'ACTIVE');
      await restart();
      await cur.client.commit(`c-${i}`, `k-${i}`);
      model.delete(`k-${i}`);
      model.set(`c-${i}`, 'COMMITTED');
      parent = `c-${i}`;
      await restart();
    }
    await cur.client.remove('c-2');
    model.delete('c-2');
    await restart();
    // During calls: a burst of Prepares cut off by kill -9; each is then there or not, whole.
    let first!: () => void;
    const firstAnswer = new Promise<void>((r) => { first = r; });
    const burst = Array.from({ length: 40 }, (_, i) => cur.client.prepare(`b-${i}`, 'c-1').then(() => { first(); return true; }, () => false));
    await firstAnswer;
    const killed = cur.stop('SIGKILL');
    const answered = await Promise.all(burst);
    await killed;
    cur = await startSnapshotter(t, { root: work, daemonSocket: d.socket });
    const after = await cur.client.list();
    answered.forEach((ok, i) => { if (ok) assert.ok(after.some((x) => x.name === `b-${i}`), `b-${i} was answered, so it must survive`); });
    for (const [k, kind] of model) assert.equal(after.find((x) => x.name === k)?.kind, kind, k);
    t.diagnostic(`${answered.filter(Boolean).length} of 40 Prepares answered before kill -9; ${after.filter((x) => x.name.startsWith('b-')).length} present after`);
    for (const x of after) if (x.name.startsWith('b-')) await cur.client.mounts(x.name);
    await cur.stop();
    s = cur;
  });

  test('prints nothing on stdout and exits 0 on SIGTERM', async (t) => {
    const out: string[] = [];
    const p = await startSnapshotter(t, { root: join(work, 'other'), daemonSocket: d.socket, stdout: out });
    await p.client.prepare('a');
    const e = await p.stop('SIGTERM');
    assert.deepEqual(e, { code: 0, signal: null });
    assert.equal(out.join('') + stdout.join(''), '');
  });

  test('refuses a daemon in another mount namespace, with one line saying why', async () => {
    const r = await run('unshare', ['--mount', '--propagation', 'private', process.execPath, cliPath, 'snapshotter',
      '--socket', join(work, 'ns', 'sock'), '--root', join(work, 'ns', 'root'), '--daemon-socket', d.socket]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /mount namespace.*ONDINE_ERR_MOUNT_NS/);
  });
});
