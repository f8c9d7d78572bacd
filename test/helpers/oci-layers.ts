// OCI layer tarballs made with the system's GNU tar (pax format, xattrs kept), and the kernel
// overlayfs oracle for them: each layer extracted by GNU tar into its own directory, OCI
// whiteouts turned into overlayfs ones (`.wh.x` → char device 0/0 named x, `.wh..wh..opq` →
// trusted.overlay.opaque=y on its directory), then `mount -t overlay -o lowerdir=Ln:…:L1`.
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { run } from './e2e-env.js';
import { setXattr } from './xattr.js';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/**
 * Archives `entries` (paths relative to `stage`, in exactly this order; directories are not
 * recursed) into `out` with GNU tar: pax format, numeric owners, all xattrs.
 */
export function tarLayer(stage: string, entries: readonly string[], out: string, compression: LayerCompression): void {
  const list = `${out}.list`;
  writeFileSync(list, entries.map((e) => `${e}\0`).join(''));
  const comp = compression === 'gzip' ? ['--gzip'] : compression === 'zstd' ? ['--zstd'] : [];
  execFileSync('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '--no-recursion', ...comp,
    '-C', stage, '-cf', out, '--null', '-T', list], { stdio: ['ignore', 'ignore', 'pipe'] });
  rmSync(list);
}

/** Removes members from an uncompressed tar (GNU tar --delete), e.g. to leave a hardlink without its target. */
export function deleteFromTar(tarPath: string, members: readonly string[]): void {
  execFileSync('tar', ['--delete', '-f', tarPath, ...members], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `tar -tv` listing, for diagnostics and for checking what an archive really holds. */
export function listTar(tarPath: string): string[] {
  return execFileSync('tar', ['-tvf', tarPath, '--numeric-owner'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

export interface ExtractResult {
  whiteouts: number;
  opaque: number;
  /** Hardlinks whose target is in a lower layer, which tar alone cannot create. */
  crossLayerLinks: string[];
}

/**
 * Extracts a layer with GNU tar as root (owners, modes, xattrs, nanosecond mtimes) into `dir`
 * and converts its OCI whiteouts to overlayfs form. A hardlink to a file of a lower layer is
 * created as a copy of that file from `lowerView` (the merged lower layers), which is what
 * overlayfs shows for such a file too; its names are returned.
 */
export async function extractForOverlay(layer: string, dir: string, lowerView?: string): Promise<ExtractResult> {
  const r = await run('tar', ['--xattrs', '--xattrs-include=*', '--same-owner', '--numeric-owner', '-xpf', layer, '-C', dir], {
    env: { ...process.env, LC_ALL: 'C' }, // plain quotes in the messages parsed below
  });
  const crossLayerLinks: string[] = [];
  if (r.code !== 0) {
    // GNU tar: "tar: <name>: Cannot hard link to '<target>': No such file or directory".
    const other = r.stderr.split('\n').filter((l) => l && !/Cannot hard link to|Exiting with failure status/.test(l));
    if (other.length || lowerView === undefined) throw new Error(`tar -x ${layer} failed: ${r.stderr}`);
    const failed = r.stderr.split('\n').filter((l) => /Cannot hard link to/.test(l));
    for (const m of r.stderr.matchAll(/^tar: (.+): Cannot hard link to '(.+)': No such file or directory$/gm)) {
      const [, name, target] = m;
      const parent = dirname(join(dir, name!));
      const mtime = lstatSync(parent, { bigint: true }).mtimeNs;
      execFileSync('cp', ['-a', '--', join(lowerView, target!), join(dir, name!)]);
      execFileSync('touch', ['-h', '-m', '-d', `@${nsToTouch(mtime)}`, '--', parent]);
      crossLayerLinks.push(name!);
    }
    if (crossLayerLinks.length !== failed.length) throw new Error(`tar -x ${layer}: unrecognised hardlink failures: ${r.stderr}`);
  }
  let whiteouts = 0;
  let opaque = 0;
  const walk = (d: string) => {
    // Replacing whiteout files changes the directory's mtime, which overlayfs would show.
    const mtime = lstatSync(d, { bigint: true }).mtimeNs;
    let changed = false;
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (name === '.wh..wh..opq') {
        rmSync(p);
        setXattr(d, 'trusted.overlay.opaque', Buffer.from('y'));
        opaque++;
        changed = true;
      } else if (name.startsWith('.wh.')) {
        rmSync(p);
        const victim = join(d, name.slice(4));
        let st;
        try {
          st = lstatSync(victim);
        } catch {
          st = undefined;
        }
        if (st === undefined) {
          execFileSync('mknod', [victim, 'c', '0', '0']);
        } else if (st.isDirectory()) {
          // Removed and re-created in the same layer: only this layer's content shows.
          setXattr(victim, 'trusted.overlay.opaque', Buffer.from('y'));
        }
        whiteouts++;
        changed = true;
      } else if (lstatSync(p).isDirectory()) {
        walk(p);
      }
    }
    if (changed) execFileSync('touch', ['-h', '-m', '-d', `@${nsToTouch(mtime)}`, '--', d]);
  };
  walk(dir);
  return { whiteouts, opaque, crossLayerLinks };
}

/** Nanoseconds since the epoch as GNU touch's "@sec.nsec" (floor division for negatives). */
export function nsToTouch(ns: bigint): string {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += 1_000_000_000n;
  }
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}
