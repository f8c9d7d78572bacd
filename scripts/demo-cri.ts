// The demo's last step (scripts/demo.sh, on a host where fanotify works): a container from a
// lazy image through containerd, as a Kubernetes node would run it. A busybox image with a
// 32 MiB file is pushed as plain OCI to a registry on 127.0.0.1 and converted with `ondine
// convert`; a private containerd (its own mount namespace, root and config: the system's is
// never touched) with `ondine snapshotter` as its CRI snapshotter and `ondine daemon` beside it
// runs a pod through CRI; the container's output and the bytes fetched are printed. Everything
// is torn down at the end.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { startContainerd, type ContainerdEnv } from '../test/helpers/containerd-env.js';
import { runOnce } from '../test/helpers/cri-client.js';
import { busyboxTree, convertLazy, dataFiles, pauseTree, pushTreeImage } from '../test/helpers/cri-images.js';
import { startRegistry } from '../test/helpers/registry-env.js';

const say = (s: string) => process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  const work = mkdtempSync('/var/tmp/ondine-demo-cri-');
  const registry = await startRegistry();
  let env: ContainerdEnv | undefined;
  try {
    say('== 10. a container image through containerd (CRI), lazily: busybox + a 32 MiB file, pushed as plain OCI, converted with ondine convert');
    pauseTree(join(work, 'pause'), work);
    const pause = await pushTreeImage(registry, 'demo/pause', '1', [join(work, 'pause')], { Entrypoint: ['/pause'] }, work);
    busyboxTree(join(work, 'base'));
    dataFiles(join(work, 'app'), 1, [32 << 20]);
    writeFileSync(join(work, 'app/data/hello.txt'), 'hello from a container whose image was never downloaded\n');
    const plain = await pushTreeImage(registry, 'demo/app', 'plain', [join(work, 'base'), join(work, 'app')], { Entrypoint: ['/bin/sh', '-c'], Cmd: ['cat /data/hello.txt; ls -l /data'] }, work);
    const lazy = await convertLazy(registry, plain, 'demo/app', 'lazy');
    say(`   ${lazy.ref}: ${lazy.dataBlobs.length} data blobs + a bootstrap layer`);

    say('== 11. a private containerd with ondine snapshotter (proxy plugin "nydus") and ondine daemon in its mount namespace');
    env = await startContainerd({ snapshotter: 'ondine', registryHosts: [{ host: registry.host }], sandboxImage: pause.ref, label: 'demo' });
    say('== 12. kubelet\'s calls over CRI: RunPodSandbox, PullImage, CreateContainer, StartContainer, ContainerStatus, the log');
    const r = await runOnce(env.cri, { name: 'demo', image: lazy.ref, logDir: env.logDir, cgroupParent: env.cgroupParent });
    say(`   PullImage ${r.timings.pullMs.toFixed(0)} ms; first output ${r.timings.firstOutputMs?.toFixed(0)} ms after PullImage began; exit code ${r.status.exit_code}`);
    say('   the container printed:');
    for (const line of r.stdout.trimEnd().split('\n')) say(`   | ${line}`);
    const stats = (await env.daemonClient!.stats()) as { sources: Record<string, Record<string, { bytes: number }>> };
    let fetched = 0;
    for (const src of Object.values(stats.sources)) for (const b of Object.values(src)) fetched += b.bytes;
    const total = lazy.layers.filter((l) => lazy.dataBlobs.includes(l.digest)).reduce((n, l) => n + l.size, 0);
    say(`   fetched ${fetched} of ${total} data-blob bytes (${((100 * fetched) / total).toFixed(2)}%)`);
    if (r.status.exit_code !== 0) throw new Error(`the container exited ${r.status.exit_code}: ${r.stderr}`);
  } catch (err) {
    if (env) process.stderr.write(`${env.logs()}\n`);
    throw err;
  } finally {
    const left = env ? await env.stop() : [];
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
    if (left.length) process.stderr.write(`demo-cri: left behind: ${left.join('; ')}\n`);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`demo-cri: ${err.message}\n`);
  process.exit(1);
});
