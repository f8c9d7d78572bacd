// Never hang containerd (issue 14): while a PullImage of a lazy image waits on a registry that
// stopped answering, and with the Ondine daemon's worker stopped (SIGSTOP), containerd's other
// CRI calls, among them RemoveContainer and RemovePodSandbox (which make containerd call the
// snapshotter's Remove), answer within seconds; once the worker runs again, a new container of
// an image already pulled starts and prints the right output while that pull still hangs.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { hasSnapshotterCommand } from '../helpers/containerd-env.js';
import { ContainerState, runOnce } from '../helpers/cri-client.js';
import { convertLazy, dataFiles, pushTreeImage } from '../helpers/cri-images.js';
import { startCriWorld, type CriWorld } from '../helpers/cri-fixtures.js';
import { Cleanup, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { startFaultProxy, startRegistry, type FaultProxy, type RegistryServer } from '../helpers/registry-env.js';

/** What "within seconds" means here: each call's gRPC deadline. */
const ANSWER_MS = 5_000;

describe('a hung registry does not hang containerd', { skip: skipUnlessRoot, timeout: 600_000 }, () => {
  const cleanup = new Cleanup();
  let w: CriWorld;
  let slow: RegistryServer;
  let slowProxy: FaultProxy;
  let hungRef: string;

  before(async () => {
    requireKernelFs('erofs');
    requireKernelFs('overlay');
    assert.ok(hasSnapshotterCommand(), '`ondine snapshotter` is not a command of this build (issue 14 part 1)');
    const work = scratchDir(cleanup, 'cri-hang');
    slow = await startRegistry();
    cleanup.after(() => slow.stop());
    slowProxy = await startFaultProxy(slow.url);
    cleanup.after(() => slowProxy.stop());
    w = await startCriWorld(cleanup, work, { label: 'hang', dataSizes: [256 * 1024, 256 * 1024], seed: 23, extraHosts: [{ host: slow.host, server: slowProxy.url }] });
    // Content of its own: containerd's content store is by digest across registries, so an
    // image sharing every blob with one already pulled would need no blob from this registry.
    dataFiles(join(work, 'hung'), 99, [64 * 1024]);
    const plain = await pushTreeImage(slow, 'hung', 'plain', [join(work, 'base'), join(work, 'hung')], { Entrypoint: ['/bin/sh', '-c'] }, work);
    hungRef = (await convertLazy(slow, plain, 'hung', 'lazy', ['--chunk-size', '64K'])).ref;
  });

  after(async () => {
    const left = w ? await w.env.stop() : [];
    await cleanup.run();
    assert.deepEqual(left, [], 'teardown left nothing behind');
  });

  it('answers CRI calls within seconds while a pull hangs and the worker is stopped', async (t) => {
    const cri = w.env.cri;
    // A pod with an exited container of the lazy image, to remove later.
    const pod = cri.podConfig('victim', join(w.env.logDir, 'victim'), w.env.cgroupParent);
    const podId = await cri.runPodSandbox(pod);
    await cri.pullImage(w.lazy.ref, pod);
    const cid = await cri.createContainer(podId, pod, { name: 'victim', image: w.lazy.ref, args: ['cat /data/f0.bin >/dev/null; echo done'] });
    await cri.startContainer(cid);
    const st = await cri.waitExited(cid, 60_000);
    assert.equal(st.exit_code, 0);

    // Every blob GET to the slow registry from now on never answers.
    slowProxy.fail('hang', 1_000_000, /\/blobs\//);
    const since = slowProxy.seen().length;
    const pulling = cri.pullImage(hungRef, pod, 300_000).then(() => 'pulled', (err: Error) => `failed: ${err.message}`);
    const deadline = Date.now() + 60_000;
    while (!slowProxy.seen().slice(since).some((s) => s.method === 'GET' && s.path.includes('/blobs/'))) {
      if (Date.now() > deadline) throw new Error(`the pull never reached a blob of ${hungRef}\n${w.env.logs()}`);
      await sleep(20);
    }

    const { workerPid } = (await w.env.daemonClient!.stats()) as { workerPid: number };
    process.kill(workerPid, 'SIGSTOP');
    const times: Record<string, number> = {};
    try {
      const timed = async <T>(name: string, call: () => Promise<T>): Promise<T> => {
        const t0 = performance.now();
        try {
          return await call();
        } finally {
          times[name] = Math.round(performance.now() - t0);
        }
      };
      await timed('Version', () => cri.version(ANSWER_MS));
      await timed('ListImages', () => cri.listImages(ANSWER_MS));
      assert.notEqual(await timed('ImageStatus', () => cri.imageStatus(w.lazy.ref, ANSWER_MS)), null);
      await timed('ListContainers', () => cri.listContainers(ANSWER_MS));
      assert.equal((await timed('ContainerStatus', () => cri.containerStatus(cid, ANSWER_MS))).state, ContainerState.EXITED);
      await timed('RemoveContainer', () => cri.removeContainer(cid, ANSWER_MS));
      await timed('StopPodSandbox', () => cri.stopPodSandbox(podId, ANSWER_MS));
      await timed('RemovePodSandbox', () => cri.removePodSandbox(podId, ANSWER_MS));
      assert.ok(!(await cri.listContainers(ANSWER_MS)).some((c) => c.id === cid), 'the container is gone');
    } finally {
      process.kill(workerPid, 'SIGCONT');
      t.diagnostic(`answer times with the registry hung and the worker stopped (ms): ${JSON.stringify(times)}`);
    }

    // The pull still hangs; the node still starts containers of images it has.
    const r = await runOnce(cri, { name: 'after', image: w.lazy.ref, logDir: w.env.logDir, cgroupParent: w.env.cgroupParent, args: ['sha256sum /data/f1.bin'], timeoutMs: 60_000 });
    assert.equal(r.status.exit_code, 0, `exit code; stderr: ${r.stderr}\n${w.env.logs()}`);
    assert.equal(r.stdout.trim(), `${w.files[1]!.sha256}  ${w.files[1]!.path}`);
    assert.equal(await Promise.race([pulling, sleep(0, 'still pulling')]), 'still pulling', 'the hung pull is still waiting (this test would prove nothing otherwise)');

    // The registry comes back to life by dropping its hung connections: the pull ends.
    await slowProxy.stop();
    const outcome = await pulling;
    t.diagnostic(`the hung pull: ${outcome}`);
  });
});
