// Real kernel mounts for end-to-end tests: a file-backed EROFS mount of a bootstrap over its
// unpacked (uncompressed) blobs, and a read-only overlayfs of extracted layer directories.
// Every mount is registered for cleanup on the test context, so it is unmounted (lazily, if
// busy) and its directory removed even when an assertion fails first.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { parseBootstrap } from '../../src/format/bootstrap.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { unpackBlob, type UnpackResult } from '../../src/storage/unpack.js';
import { MNT_DETACH, MS_RDONLY, mount, mountErofsFile, umount2 } from '../../src/native/index.js';
import { cliOk } from './e2e-env.js';

export type After = { after(fn: () => unknown): void };

export interface Mounted {
  dir: string;
  fstype: string;
  /** Unmounts now (idempotent); cleanup does it anyway. */
  unmount(): void;
}

function isMountPoint(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

function track(t: After, dir: string, fstype: string): Mounted {
  let mounted = true;
  const unmount = () => {
    if (!mounted) return;
    mounted = false;
    try {
      umount2(dir, 0);
    } catch {
      // busy (an open handle from a failed assertion): detach instead
      if (isMountPoint(dir)) umount2(dir, MNT_DETACH);
    }
  };
  t.after(unmount);
  return { dir, fstype, unmount };
}

/** Blob ids in device-table order (extra device i+1 is entry i). */
export async function deviceBlobIds(bootstrapPath: string): Promise<string[]> {
  const b = parseBootstrap(await readFile(bootstrapPath));
  return b.devices.map((_, i) => b.blobIdOfDevice(i + 1));
}

// mount(2) copies its options as one page and splits them on commas.
const MOUNT_DATA_MAX = 4095;

/**
 * Mounts `bootstrapPath` as EROFS, file-backed (no loop device), with `devices` as its extra
 * devices in device-table order: mount(2) when the options fit its syntax, the new mount API
 * (mountErofsFile) when a path holds a comma or the options outgrow a page. Rejects with the
 * kernel's error (NativeError) if it refuses.
 */
export async function mountErofs(t: After, bootstrapPath: string, devices: readonly string[], target: string): Promise<Mounted> {
  for (const d of devices) {
    if (!existsSync(d)) throw new Error(`device file ${d} does not exist`);
  }
  mkdirSync(target, { recursive: true });
  const data = devices.map((d) => `device=${d}`).join(',');
  if (devices.some((d) => d.includes(',')) || Buffer.byteLength(data) > MOUNT_DATA_MAX) {
    await mountErofsFile(bootstrapPath, target, devices);
  } else {
    mount(bootstrapPath, target, 'erofs', MS_RDONLY, data || null);
  }
  return track(t, target, 'erofs');
}

/**
 * Unpacks an image's blobs with the CLI (`ondine unpack`, which verifies every chunk) into
 * `outDir`, one file per blob id. Returns the paths in device-table order.
 */
export async function unpackWithCli(bootstrapPath: string, blobsDir: string, outDir: string): Promise<string[]> {
  await cliOk(['unpack', bootstrapPath, '--blobs', blobsDir, '-o', outDir]);
  return (await deviceBlobIds(bootstrapPath)).map((id) => join(outDir, id));
}

/**
 * Unpacks with the library, each blob from whichever of `blobDirs` holds it (an image built with
 * a chunk dict references another image's blob). Fails if any chunk fails verification.
 */
export async function unpackFromDirs(bootstrapPath: string, blobDirs: readonly string[], outDir: string): Promise<{ paths: string[]; results: UnpackResult[] }> {
  const b = parseBootstrap(await readFile(bootstrapPath));
  mkdirSync(outDir, { recursive: true });
  const results: UnpackResult[] = [];
  for (const entry of b.blobs) {
    const dir = blobDirs.find((d) => existsSync(join(d, entry.blobId)));
    if (dir === undefined) throw new Error(`blob ${entry.blobId} is in none of ${blobDirs.join(', ')}`);
    const source = new LocalDirSource(dir);
    try {
      const r = await unpackBlob(b, entry, source, join(outDir, entry.blobId));
      if (r.failures.length) throw new Error(`unpack of ${entry.blobId} from ${dir}: ${r.failures.map((e) => e.message).join('; ')}`);
      results.push(r);
    } finally {
      await source.close();
    }
  }
  return { paths: b.devices.map((_, i) => join(outDir, b.blobIdOfDevice(i + 1))), results };
}

/**
 * The whole path a user takes: `ondine unpack` of an `ondine build` output directory, then a
 * kernel mount of its bootstrap over the unpacked blobs at `<work>/mnt`.
 */
export async function unpackAndMount(t: After, buildDir: string, work: string): Promise<Mounted & { devices: string[] }> {
  const bootstrap = join(buildDir, 'bootstrap');
  const devices = await unpackWithCli(bootstrap, join(buildDir, 'blobs'), join(work, 'unpacked'));
  const m = await mountErofs(t, bootstrap, devices, join(work, 'mnt'));
  return { ...m, devices };
}

/** A read-only overlayfs of `lowers` (uppermost first), as `mount -t overlay -o lowerdir=a:b:c`. */
export function mountOverlay(t: After, lowers: readonly string[], target: string): Mounted {
  for (const l of lowers) if (/[:,\\]/.test(l)) throw new Error(`lower dir ${l} holds a character overlayfs options cannot carry`);
  mkdirSync(target, { recursive: true });
  mount('overlay', target, 'overlay', MS_RDONLY, `lowerdir=${lowers.join(':')}`);
  return track(t, target, 'overlay');
}
