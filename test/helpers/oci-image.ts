// Small OCI images for tests, made with umoci in an OCI layout: a base layer, then a layer that
// deletes a file (whiteout), adds a symlink and a hardlink; a config with env, entrypoint, cmd,
// user and workdir. `umoci unpack` of the result is the oracle tree.
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function umoci(args: string[], cwd?: string): string {
  return execFileSync('umoci', args, { encoding: 'utf8', ...(cwd ? { cwd } : {}) });
}

export interface MadeImage {
  layout: string;
  tag: string;
  /** `oci:<layout>:<tag>` */
  ref: string;
}

export interface ImageSpec {
  /** Deterministic content seed: equal seeds give equal base layers. */
  seed: number;
  /** Extra distinct layer on top (for "second image shares the base"). */
  extra?: string;
  bigBytes?: number;
}

function pseudoRandom(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Two layers (three with `extra`), in `<work>/layout:<tag>`. */
export function makeUmociImage(work: string, tag: string, spec: ImageSpec): MadeImage {
  const layout = join(work, 'layout');
  const bundle = join(work, `bundle-${tag}`);
  rmSync(bundle, { recursive: true, force: true });
  try { umoci(['init', '--layout', layout]); } catch { /* exists */ }
  umoci(['new', '--image', `${layout}:${tag}`]);
  umoci(['unpack', '--image', `${layout}:${tag}`, bundle]);
  const root = join(bundle, 'rootfs');
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'data/sub'), { recursive: true });
  writeFileSync(join(root, 'etc/hello'), 'hello\n');
  writeFileSync(join(root, 'data/big'), pseudoRandom(spec.seed, spec.bigBytes ?? 3 << 20));
  writeFileSync(join(root, 'data/old'), 'to be deleted\n');
  writeFileSync(join(root, 'data/sub/x'), 'x\n');
  umoci(['repack', '--refresh-bundle', '--image', `${layout}:${tag}`, bundle]);
  rmSync(join(root, 'data/old'));
  symlinkSync('../etc/hello', join(root, 'data/link'));
  linkSync(join(root, 'etc/hello'), join(root, 'data/hard'));
  writeFileSync(join(root, 'data/second'), pseudoRandom(spec.seed + 1, 100_000));
  umoci(['repack', '--refresh-bundle', '--image', `${layout}:${tag}`, bundle]);
  if (spec.extra) {
    writeFileSync(join(root, 'data/extra'), Buffer.concat([Buffer.from(spec.extra), pseudoRandom(spec.seed + 7, 500_000)]));
    umoci(['repack', '--refresh-bundle', '--image', `${layout}:${tag}`, bundle]);
  }
  umoci(['config', '--image', `${layout}:${tag}`, '--config.env', 'FOO=bar', '--config.env', 'PATH=/bin',
    '--config.entrypoint', '/bin/sh', '--config.cmd', '-c', '--config.workingdir', '/data', '--config.user', '1000:1000',
    '--config.label', 'made.by=ondine-test']);
  rmSync(bundle, { recursive: true, force: true });
  return { layout, tag, ref: `oci:${layout}:${tag}` };
}

/** A new tag whose layers are `base`'s plus one holding `data/extra` (the image shares base's layers byte for byte). */
export function deriveUmociImage(base: MadeImage, work: string, tag: string, seed: number): MadeImage {
  const bundle = join(work, `bundle-${tag}`);
  rmSync(bundle, { recursive: true, force: true });
  umoci(['unpack', '--image', `${base.layout}:${base.tag}`, bundle]);
  writeFileSync(join(bundle, 'rootfs/data/extra'), pseudoRandom(seed, 400_000));
  umoci(['repack', '--image', `${base.layout}:${tag}`, bundle]);
  rmSync(bundle, { recursive: true, force: true });
  return { layout: base.layout, tag, ref: `oci:${base.layout}:${tag}` };
}

/** The image's root filesystem as umoci unpacks it (`<dest>/rootfs`). */
export function umociUnpack(image: MadeImage, dest: string): string {
  umoci(['unpack', '--image', `${image.layout}:${image.tag}`, dest]);
  return join(dest, 'rootfs');
}
