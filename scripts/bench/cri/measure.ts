// The CRI benchmark's driver (scripts/bench/cri.sh sets up the registry, the delay proxy and
// the link caps, then runs this): for each image, link and round, a fresh private containerd
// (test/helpers/containerd-env: its own root, so nothing is cached) once with containerd's
// overlayfs snapshotter pulling the plain OCI image and once with the Ondine snapshotter
// pulling the lazy one, interleaved. Each is driven as kubelet does: RunPodSandbox (the pause
// image is pulled here, not timed), then the clock starts at PullImage; PullImage done and the
// container's first line of output (the CRI log's own stamp) are reported separately, with the
// bytes the link carried (the delay proxy's counter for that link's port) at each point.
//
//   node measure.js --registry HOST:PORT --control PORT --link NAME=PORT[,NAME=PORT]
//        --image NAME=PLAIN_REF,LAZY_REF,SCRIPT [--image ...] --pause REF --runs N --out FILE
//
// SCRIPT is the container's command line, run by the image's /bin/sh -c.
// Appends one JSON line per measurement to FILE and prints the table (--markdown for Markdown).
import { appendFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { startContainerd } from '../../../test/helpers/containerd-env.js';

/** Extra `ondine daemon` flags for the lazy runs (BENCH_DAEMON_ARGS, space-separated): tuning experiments in the same harness. */
const daemonArgs = (process.env.BENCH_DAEMON_ARGS ?? '').split(/\s+/).filter(Boolean);
import { logTimeMs } from '../../../test/helpers/cri-client.js';
import { formatTable } from '../lib/table.js';

interface Image { name: string; plain: string; lazy: string; script: string }
interface Row { image: string; link: string; mode: 'overlayfs' | 'lazy'; run: number; pullS: number; createdS: number; startedS: number; firstS: number; exitS: number; bytesPull: number; bytesFirst: number; bytesExit: number; exitCode: number; output: string }

function args(argv: string[]): { registry: string; control: number; links: Array<[string, number]>; images: Image[]; pause: string; runs: number; out: string; markdown: boolean; modes: Array<'overlayfs' | 'lazy'> } {
  const o = { registry: '', control: 0, links: [] as Array<[string, number]>, images: [] as Image[], pause: '', runs: 1, out: '', markdown: false, modes: ['overlayfs', 'lazy'] as Array<'overlayfs' | 'lazy'> };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => argv[++i] ?? '';
    if (a === '--registry') o.registry = v();
    else if (a === '--control') o.control = Number(v());
    else if (a === '--link') o.links.push(...v().split(',').map((s): [string, number] => [s.split('=')[0]!, Number(s.split('=')[1])]));
    else if (a === '--image') {
      const [name, rest] = v().split(/=(.*)/s);
      const [plain, lazy, ...script] = rest!.split(',');
      o.images.push({ name: name!, plain: plain!, lazy: lazy!, script: script.join(',') });
    } else if (a === '--pause') o.pause = v();
    else if (a === '--runs') o.runs = Number(v());
    else if (a === '--out') o.out = v();
    else if (a === '--markdown') o.markdown = true;
    else if (a === '--modes') o.modes = v().split(',') as Array<'overlayfs' | 'lazy'>;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.registry || !o.control || !o.links.length || !o.images.length || !o.pause || !o.out) throw new Error('missing arguments (see the header of scripts/bench/cri/measure.ts)');
  return o;
}

function linkBytes(control: number, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port: control, path: '/stats', agent: false }, (res) => {
      let s = '';
      res.on('data', (d: Buffer) => (s += d.toString()));
      res.on('end', () => {
        try {
          resolve((JSON.parse(s) as Record<string, { down: number }>)[String(port)]?.down ?? 0);
        } catch (err) {
          reject(err);
        }
      });
    }).on('error', reject).end();
  });
}

function dropCaches(): void {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    // not root: measured with a warm page cache
  }
}

async function measure(o: ReturnType<typeof args>, image: Image, link: string, port: number, mode: 'overlayfs' | 'lazy', run: number): Promise<Row> {
  const env = await startContainerd({ snapshotter: mode === 'lazy' ? 'ondine' : 'overlayfs', registryHosts: [{ host: o.registry, server: `http://127.0.0.1:${port}` }], sandboxImage: o.pause, label: `bench-${mode}`, ...(mode === 'lazy' && daemonArgs.length ? { daemonArgs } : {}) });
  try {
    const cri = env.cri;
    const ref = mode === 'lazy' ? image.lazy : image.plain;
    const name = `${image.name}-${mode}`;
    const pod = cri.podConfig(name, join(env.logDir, name), env.cgroupParent);
    const podId = await cri.runPodSandbox(pod);
    dropCaches();
    const b0 = await linkBytes(o.control, port);
    const t0 = performance.now();
    const wall0 = Date.now();
    await cri.pullImage(ref, pod, 1_800_000);
    const pullS = (performance.now() - t0) / 1000;
    const bytesPull = (await linkBytes(o.control, port)) - b0;
    const cid = await cri.createContainer(podId, pod, { name, image: ref, command: ['/bin/sh', '-c', image.script] });
    const createdS = (performance.now() - t0) / 1000;
    await cri.startContainer(cid);
    const startedS = (performance.now() - t0) / 1000;
    const logPath = join(pod.log_directory, `${name}/0.log`);
    let bytesFirst = -1;
    for (;;) {
      const log = cri.readLog(logPath);
      if (log.lines.length > 0 && bytesFirst < 0) bytesFirst = (await linkBytes(o.control, port)) - b0;
      const st = await cri.containerStatus(cid, 30_000);
      if (st.state === 'CONTAINER_EXITED') break;
      await sleep(20);
    }
    const exitS = (performance.now() - t0) / 1000;
    const bytesExit = (await linkBytes(o.control, port)) - b0;
    const st = await cri.containerStatus(cid);
    const log = cri.readLog(logPath);
    if (bytesFirst < 0) bytesFirst = bytesExit;
    const firstS = log.lines.length ? (logTimeMs(log.lines[0]!.time) - wall0) / 1000 : NaN;
    await cri.removeContainer(cid);
    await cri.stopPodSandbox(podId);
    await cri.removePodSandbox(podId);
    return { image: image.name, link, mode, run, pullS, createdS, startedS, firstS, exitS, bytesPull, bytesFirst, bytesExit, exitCode: st.exit_code, output: log.stdout.trim().split('\n')[0] ?? '' };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${env.logs()}`);
  } finally {
    const left = await env.stop();
    if (left.length) process.stderr.write(`cri-bench: teardown left: ${left.join('; ')}\n`);
  }
}

const MB = (n: number) => (n / 1e6).toFixed(1);

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const rows: Row[] = [];
  for (const image of o.images) {
    for (const [link, port] of o.links) {
      for (let run = 1; run <= o.runs; run++) {
        for (const mode of o.modes) {
          const r = await measure(o, image, link, port, mode, run);
          process.stderr.write(`cri-bench: ${image.name} ${link} ${mode} run ${run}: pull ${r.pullS.toFixed(2)} s, created ${r.createdS.toFixed(2)} s, started ${r.startedS.toFixed(2)} s, first output ${r.firstS.toFixed(2)} s (${JSON.stringify(r.output)}), ${MB(r.bytesFirst)} MB\n`);
          if (r.exitCode !== 0) throw new Error(`${image.name} ${mode}: the container exited ${r.exitCode}`);
          appendFileSync(o.out, JSON.stringify(r) + '\n');
          rows.push(r);
        }
      }
    }
  }
  // Best run of each (image, link, mode) by time to first output.
  const best = new Map<string, Row>();
  for (const r of rows) {
    const k = `${r.image} ${r.link} ${r.mode}`;
    if (!best.has(k) || r.firstS < best.get(k)!.firstS) best.set(k, r);
  }
  const table: string[][] = [];
  for (const image of o.images) {
    for (const [link] of o.links) {
      const base = best.get(`${image.name} ${link} overlayfs`);
      for (const mode of o.modes) {
        const r = best.get(`${image.name} ${link} ${mode}`);
        if (!r) continue;
        const ratio = base && mode === 'lazy' ? (r.firstS / base.firstS).toFixed(3) : mode === 'overlayfs' ? '1' : '';
        table.push([image.name, link, mode === 'lazy' ? 'Ondine (lazy)' : 'overlayfs (plain OCI)', r.pullS.toFixed(2), MB(r.bytesPull), r.firstS.toFixed(2), MB(r.bytesFirst), ratio]);
      }
    }
  }
  const header = ['image', 'link', 'snapshotter', 'PullImage done (s)', 'MB by then', 'first output (s)', 'MB by then', 'first output vs overlayfs'];
  process.stdout.write(formatTable(header, table, o.markdown).join('\n') + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`cri-bench: error: ${err.message}\n`);
  process.exit(2);
});
