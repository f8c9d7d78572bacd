// The CRI benchmark's small images (scripts/bench/cri.sh), built with the CRI tests' image
// helpers in seconds: the pause image, and a busybox image with data files (f0: 256 KiB, f1-f8:
// 4 MiB each, incompressible) pushed as plain OCI and converted with `ondine convert`.
//
//   node images.js REGISTRY_HOST:PORT WORK_DIR
//
// Prints one JSON line: {"pause": ref, "plain": ref, "lazy": ref}.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { busyboxTree, convertLazy, dataFiles, pauseTree, pushTreeImage } from '../../../test/helpers/cri-images.js';

async function main(): Promise<void> {
  const [host, work] = process.argv.slice(2);
  if (!host || !work) throw new Error('usage: images.js REGISTRY_HOST:PORT WORK_DIR');
  mkdirSync(work, { recursive: true });
  const server = { url: `http://${host}`, host, seedAuth: () => undefined };
  pauseTree(join(work, 'pause'), work);
  const pause = await pushTreeImage(server, 'bench/pause', '1', [join(work, 'pause')], { Entrypoint: ['/pause'] }, work);
  busyboxTree(join(work, 'base'));
  dataFiles(join(work, 'data'), 5, [256 * 1024, ...Array.from({ length: 8 }, () => 4 << 20)]);
  const plain = await pushTreeImage(server, 'bench/busybox', 'plain', [join(work, 'base'), join(work, 'data')], { Entrypoint: ['/bin/sh', '-c'] }, work);
  const lazy = await convertLazy(server, plain, 'bench/busybox', 'lazy');
  process.stdout.write(JSON.stringify({ pause: pause.ref, plain: plain.ref, lazy: lazy.ref }) + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`cri-bench images: ${err.message}\n`);
  process.exit(2);
});
