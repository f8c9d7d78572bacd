// The CRI harness itself, on containerd's own overlayfs snapshotter (the benchmark's
// baseline): a private containerd runs a host-network pod from the test registry's pause
// image and a busybox container that hashes its data files, driven through CRI as kubelet
// does; the output is checked against the files written, and teardown leaves nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';

import { startContainerd, type ContainerdEnv } from '../helpers/containerd-env.js';
import { runOnce } from '../helpers/cri-client.js';
import { busyboxTree, dataFiles, pauseTree, pushTreeImage, type PushedImage } from '../helpers/cri-images.js';
import { Cleanup, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { startRegistry, type RegistryServer } from '../helpers/registry-env.js';

describe('CRI through a private containerd (overlayfs snapshotter)', { skip: skipUnlessRoot, timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  let registry: RegistryServer;
  let env: ContainerdEnv;
  let app: PushedImage;
  let files: Array<{ path: string; sha256: string; size: number }>;

  before(async () => {
    requireKernelFs('overlay');
    const work = scratchDir(cleanup, 'cri-ovl');
    registry = await startRegistry();
    cleanup.after(() => registry.stop());
    pauseTree(join(work, 'pause'), work);
    const pause = await pushTreeImage(registry, 'pause', '1', [join(work, 'pause')], { Entrypoint: ['/pause'] }, work);
    busyboxTree(join(work, 'base'));
    files = dataFiles(join(work, 'app'), 7, [300_000, 70_000, 1]);
    app = await pushTreeImage(registry, 'app', '1', [join(work, 'base'), join(work, 'app')], { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo ready; sha256sum /data/*.bin'] }, work);
    env = await startContainerd({ snapshotter: 'overlayfs', registryHosts: [{ host: registry.host }], sandboxImage: pause.ref, label: 'ovl' });
  });

  after(async () => {
    const left = env ? await env.stop() : [];
    await cleanup.run();
    assert.deepEqual(left, [], 'teardown left nothing behind');
  });

  it('runs a pod and a container that reads its image, as kubelet would', async (t) => {
    const r = await runOnce(env.cri, { name: 'reader', image: app.ref, logDir: env.logDir, cgroupParent: env.cgroupParent }).catch((err: Error) => {
      throw new Error(`${err.message}\n${env.logs()}`);
    });
    t.diagnostic(`pull ${r.timings.pullMs.toFixed(0)} ms, first output ${r.timings.firstOutputMs?.toFixed(0)} ms, exited ${r.timings.exitedMs.toFixed(0)} ms`);
    assert.equal(r.status.exit_code, 0, `exit code; stderr: ${r.stderr}`);
    assert.equal(r.imageRef, `sha256:${app.configDigest.slice('sha256:'.length)}`, 'PullImage answers the image id (its config digest)');
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'ready');
    const want = files.map((f) => `${f.sha256}  ${f.path}`).sort();
    assert.deepEqual(lines.slice(1).sort(), want);
    assert.ok(r.timings.firstOutputMs !== undefined && r.timings.firstOutputMs > 0 && r.timings.firstOutputMs <= r.timings.exitedMs + 1000, `first output stamp ${r.timings.firstOutputMs} ms`);
    // The whole image came down: overlayfs pulls every layer.
    const gets = (await registry.requests()).filter((e) => e.method === 'GET' && e.path.includes('/blobs/'));
    for (const l of app.layers) assert.ok(gets.some((g) => g.path.endsWith(l.digest) && g.status === 200), `layer ${l.digest} fetched`);
  });

  it('removes the image and answers for it no more', async () => {
    await env.cri.removeImage(app.ref);
    assert.equal(await env.cri.imageStatus(app.ref), null);
  });
});
