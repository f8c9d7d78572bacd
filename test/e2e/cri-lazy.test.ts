// Lazy images through kubelet's path (issue 14): a private containerd whose CRI snapshotter is
// `ondine snapshotter` (proxy plugin `nydus`) with `ondine daemon` (fanotify) in its mount
// namespace, driven over CRI. A recording proxy in front of the docker-registry sees every
// request with its Range, so "what was fetched" is measured, not assumed:
// - PullImage fetches the manifest, the config and the bootstrap, and no data-blob byte;
// - a container that hashes two files prints the right hashes, and only those files' chunks
//   (plus the daemon's read-ahead) came down;
// - 4 containers of the image reading the same files at once: no byte fetched twice;
// - a plain OCI image and the pause image go through the same snapshotter (their rootfs mounts
//   come from its root);
// - kill -9 of the daemon's worker while a container's read waits on the registry: the read
//   completes with the right bytes;
// - after every container, pod and image is removed: no mount, no fanotify mark, no snapshot
//   dir left; and teardown leaves no process, cgroup or directory.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { hasSnapshotterCommand } from '../helpers/containerd-env.js';
import { runOnce, type RunOnceResult } from '../helpers/cri-client.js';
import { blobFetches, getsOf, pathOnly, startCriWorld, type CriWorld } from '../helpers/cri-fixtures.js';
import { Cleanup, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';

const FILE = 512 * 1024;
const SIZES = Array.from({ length: 8 }, () => FILE);

/** fanotify marks (inode, mount or filesystem) held by `pid`'s fanotify groups. */
function fanotifyMarks(pid: number): string[] {
  const marks: string[] = [];
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return marks;
  }
  for (const fd of fds) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:[fanotify]') continue;
    for (const line of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n')) if (/^fanotify (ino|mnt_id|sdev):/.test(line)) marks.push(line);
  }
  return marks;
}

/** Directories two levels below `root` (a snapshot's dir, whatever the top-level layout). */
function dirsAtDepth2(root: string): string[] {
  const out: string[] = [];
  for (const a of readdirSync(root, { withFileTypes: true })) {
    if (!a.isDirectory()) continue;
    for (const b of readdirSync(join(root, a.name), { withFileTypes: true })) if (b.isDirectory()) out.push(join(a.name, b.name));
  }
  return out;
}

describe('lazy images through CRI and the Ondine snapshotter', { skip: skipUnlessRoot, timeout: 900_000 }, () => {
  const cleanup = new Cleanup();
  let w: CriWorld;
  let dataBlob: { digest: string; size: number };
  let left: string[] = [];

  const run = async (name: string, script: string, beforeTeardown?: (id: string) => Promise<void>, afterPull?: () => void): Promise<RunOnceResult> => {
    const opts: Parameters<typeof runOnce>[1] = { name, image: w.lazy.ref, logDir: w.env.logDir, cgroupParent: w.env.cgroupParent, args: [script] };
    if (beforeTeardown) opts.beforeTeardown = beforeTeardown;
    if (afterPull) opts.afterPull = afterPull;
    return runOnce(w.env.cri, opts).catch((err: Error) => {
      throw new Error(`${err.message}\n${w.env.logs()}`);
    });
  };
  const hashLines = (indexes: number[]) => indexes.map((i) => `${w.files[i]!.sha256}  ${w.files[i]!.path}`);

  before(async () => {
    requireKernelFs('erofs');
    requireKernelFs('overlay');
    assert.ok(hasSnapshotterCommand(), '`ondine snapshotter` is not a command of this build (issue 14 part 1)');
    const work = scratchDir(cleanup, 'cri-lazy');
    w = await startCriWorld(cleanup, work, { label: 'lazy', dataSizes: SIZES, seed: 11 });
    const last = w.lazy.dataBlobs.at(-1)!;
    const layer = w.lazy.layers.find((l) => l.digest === last)!;
    dataBlob = { digest: last, size: layer.size };
  });

  after(async () => {
    if (w) left = await w.env.stop();
    await cleanup.run();
    assert.deepEqual(left, [], 'teardown left nothing behind');
  });

  it('PullImage fetches manifest, config and bootstrap only; a container reads two files right and only their chunks come down', async (t) => {
    const since = w.proxy.seen().length;
    let erofsWhileRunning = 0;
    let pulled = -1;
    const r = await run('reader', 'sha256sum /data/f0.bin /data/f1.bin', async () => {
      erofsWhileRunning = w.env.mountsInNs().filter((m) => m.fstype === 'erofs').length;
    }, () => {
      pulled = w.proxy.seen().length;
    });
    t.diagnostic(`pull ${r.timings.pullMs.toFixed(0)} ms, first output ${r.timings.firstOutputMs?.toFixed(0)} ms`);
    assert.equal(r.status.exit_code, 0, `exit code; stderr: ${r.stderr}\n${w.env.logs()}`);
    assert.deepEqual(r.stdout.trim().split('\n'), hashLines([0, 1]));
    assert.ok(erofsWhileRunning >= 1, 'the lazy image is an EROFS mount in containerd\'s namespace');

    // The pull: the sandbox's pause image is plain; of the lazy image, containerd fetched the
    // config and the bootstrap layer once each and never a data blob.
    const seen = w.proxy.seen().slice(since);
    t.diagnostic(`requests: ${seen.map((s) => `${s.method} ${s.path}${s.range ? ` ${s.range}` : ''}`).join(' | ')}`);
    assert.ok(seen.some((s) => s.method === 'GET' && s.path.startsWith('/v2/app/manifests/')), 'the manifest was fetched');
    assert.equal(getsOf(w.proxy, [w.lazy.bootstrap], since).length, 1, 'the bootstrap layer: one GET');
    assert.equal(getsOf(w.proxy, [w.lazy.configDigest], since).length, 1, 'the config: one GET');
    const duringPull = w.proxy.seen().slice(since, pulled);
    assert.deepEqual(duringPull.filter((g) => g.method === 'GET' && w.lazy.dataBlobs.some((d) => pathOnly(g.path).endsWith(`/blobs/${d}`))), [], 'PullImage fetched no data-blob byte');
    assert.ok(!getsOf(w.proxy, w.lazy.dataBlobs, since).some((g) => g.range === undefined), 'no data blob was ever fetched whole');

    const f = blobFetches(w.proxy, dataBlob.digest, dataBlob.size, since);
    t.diagnostic(`data blob: ${f.bytes} of ${dataBlob.size} bytes in ${f.gets} GETs: ${JSON.stringify(f.ranges)}`);
    assert.ok(f.bytes >= 2 * FILE * 0.9, `the two files' chunks came down (${f.bytes} bytes)`);
    assert.ok(f.bytes < dataBlob.size * 0.6, `only what was read (and the read-ahead): ${f.bytes} of ${dataBlob.size}`);
    // The builder lays chunks out in tree order (f0 first; the blob's own metadata after the
    // data): the middle of f6 and f7 is never read.
    const [lo, hi] = [6.25 * FILE, 7.75 * FILE];
    assert.ok(f.ranges.every(([a, b]) => b < lo || a > hi), `the chunks of files never read were never fetched (${lo}-${hi})`);
    assert.equal(f.overlapBytes, 0, 'no byte fetched twice');
  });

  it('4 containers of the image reading the same files at once fetch each chunk once', async (t) => {
    const since = w.proxy.seen().length;
    const script = 'sha256sum /data/f2.bin /data/f3.bin /data/f4.bin';
    const rs = await Promise.all([0, 1, 2, 3].map((i) => run(`wide-${i}`, script)));
    for (const r of rs) {
      assert.equal(r.status.exit_code, 0, `exit code; stderr: ${r.stderr}`);
      assert.deepEqual(r.stdout.trim().split('\n'), hashLines([2, 3, 4]));
    }
    assert.equal(new Set(rs.map((r) => r.stdout)).size, 1, 'all four printed the same');
    const f = blobFetches(w.proxy, dataBlob.digest, dataBlob.size);
    const now = blobFetches(w.proxy, dataBlob.digest, dataBlob.size, since);
    t.diagnostic(`data blob during the 4 runs: ${now.bytes} bytes in ${now.gets} GETs; all runs so far: ${f.bytes} of ${dataBlob.size}, ${f.overlapBytes} bytes twice`);
    assert.ok(now.bytes > 0, 'the three files were fetched during these runs');
    assert.equal(f.overlapBytes, 0, 'no byte of the data blob was fetched twice');
  });

  it('a plain OCI image and the pause image run through the same snapshotter', async (t) => {
    const since = w.proxy.seen().length;
    let rootfsMounts: Array<{ point: string; options: string }> = [];
    const r = await runOnce(w.env.cri, {
      name: 'plain', image: w.plain.ref, logDir: w.env.logDir, cgroupParent: w.env.cgroupParent,
      args: ["grep ' / / ' /proc/self/mountinfo; sha256sum /data/f7.bin"],
      beforeTeardown: async () => {
        rootfsMounts = w.env.rootfsMounts();
      },
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${w.env.logs()}`);
    });
    assert.equal(r.status.exit_code, 0, `exit code; stderr: ${r.stderr}`);
    const [rootLine, hash] = r.stdout.trim().split('\n');
    assert.equal(hash, hashLines([7])[0]);
    assert.match(rootLine ?? '', / - overlay /, 'the container\'s root is an overlay');
    assert.ok(rootLine!.includes(w.env.snapshotterRoot), `its layers are the snapshotter's: ${rootLine}`);
    // The plain layers came down whole (containerd applies them), as with overlayfs.
    for (const l of w.plain.layers) assert.equal(getsOf(w.proxy, [l.digest], since).filter((g) => g.range === undefined).length, 1, `plain layer ${l.digest} fetched once, whole`);
    // The sandbox (pause) is still running here: its rootfs is the snapshotter's too.
    t.diagnostic(`rootfs mounts: ${JSON.stringify(rootfsMounts)}`);
    assert.ok(rootfsMounts.length >= 1, 'the pod sandbox has a rootfs mount');
    for (const m of rootfsMounts) assert.ok(m.options.includes(w.env.snapshotterRoot), `rootfs ${m.point} from the snapshotter: ${m.options}`);
  });

  it('kill -9 of the worker while a container reads: the read completes right', async (t) => {
    const dc = w.env.daemonClient!;
    const before = (await dc.stats()) as { workerPid: number };
    const since = w.proxy.seen().length;
    // The next GET of the data blob never answers: the container's read is in flight, waiting
    // on the worker's fetch, when the worker dies.
    w.proxy.fail('hang', 1, new RegExp(`/blobs/${dataBlob.digest}(\\?|$)`));
    // f7: the one file no lazy read (nor the read-ahead behind one) has touched so far.
    const running = run('survivor', 'sha256sum /data/f7.bin');
    const deadline = Date.now() + 60_000;
    while (getsOf(w.proxy, [dataBlob.digest], since).length === 0) {
      if (Date.now() > deadline) throw new Error(`the container never fetched f7.bin (cached already?)\n${w.env.logs()}`);
      await sleep(20);
    }
    process.kill(before.workerPid, 'SIGKILL');
    t.diagnostic(`killed worker ${before.workerPid}`);
    const r = await running;
    assert.equal(r.status.exit_code, 0, `exit code; stderr: ${r.stderr}\n${w.env.logs()}`);
    assert.deepEqual(r.stdout.trim().split('\n'), hashLines([7]));
    const after = (await dc.stats()) as { workerPid: number };
    assert.notEqual(after.workerPid, before.workerPid, 'a new worker serves');
  });

  it('removing every container, pod and image leaves no mount, no fanotify mark and no snapshot dir', async (t) => {
    for (const ref of [w.lazy.ref, w.plain.ref, w.pause.ref]) await w.env.cri.removeImage(ref);
    const images = await w.env.cri.listImages();
    assert.deepEqual(images.filter((i) => i.repo_tags.some((tag) => tag.startsWith(w.registry.host))), [], 'no test image left in containerd');
    const st = (await w.env.daemonClient!.stats()) as { workerPid: number; supervisorPid: number | null };
    const owners = [st.workerPid, ...(st.supervisorPid ? [st.supervisorPid] : [])];
    // Remove answers at once and cleans up behind: give the cleanup a bounded while.
    const deadline = Date.now() + 30_000;
    let state = '';
    for (;;) {
      const mounts = w.env.mountsInNs().filter((m) => m.fstype === 'erofs' || m.fstype === 'overlay' || m.point.startsWith(w.env.snapshotterRoot) || m.point.startsWith(w.env.cacheDir));
      const daemonMounts = await w.env.daemonClient!.mounts();
      const marks = owners.flatMap(fanotifyMarks);
      const dirs = dirsAtDepth2(w.env.snapshotterRoot);
      state = JSON.stringify({ mounts, daemonMounts, marks, dirs });
      if (!mounts.length && !daemonMounts.length && !marks.length && !dirs.length) break;
      if (Date.now() > deadline) break;
      await sleep(200);
    }
    t.diagnostic(state);
    assert.equal(state, JSON.stringify({ mounts: [], daemonMounts: [], marks: [], dirs: [] }));
    assert.ok(statSync(w.env.snapshotterRoot).isDirectory());
  });
});
