// Read workloads shared by the read benchmarks (scripts/bench/vm-read.sh in the guest,
// scripts/bench/host-read.sh on the host): a sequential read, 4 KiB random reads, and the
// digests that check what a path read. All synchronous: the reader is the only thing this
// process does while a measurement runs, and whoever serves the reads is another process.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { rng, treeDigest } from '../vm-read/common.js';

const now = () => process.hrtime.bigint();
export const secs = (t0: bigint): number => Number(now() - t0) / 1e9;

/** Sequential read with a 1 MiB buffer, as a reader program would do it; stops after `limit` bytes. */
export function seqRead(path: string, limit = Infinity): { bytes: number; sec: number } {
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  const t0 = now();
  let bytes = 0;
  try {
    while (bytes < limit) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, limit - bytes), null);
      if (n === 0) break;
      bytes += n;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes, sec: secs(t0) };
}

/** sha256 of the file's first `limit` bytes (all of it by default). */
export function hashFile(path: string, limit = Infinity): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  let done = 0;
  try {
    while (done < limit) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, limit - done), null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The digest of a tree as make-data computes it (common.ts treeDigest). */
export function treeHash(root: string): { files: number; digest: string } {
  const files: Array<{ path: string; sha256: string }> = [];
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile()) files.push({ path: relative(root, p), sha256: createHash('sha256').update(readFileSync(p)).digest('hex') });
    }
  };
  visit(root);
  return { files: files.length, digest: treeDigest(files) };
}

/**
 * 4 KiB reads at random aligned offsets (fixed seed), until `n` reads or `maxSec` seconds.
 * Returns what was read so the caller can check it against the source file.
 */
export function randomReads(path: string, n: number, maxSec: number, seed = 42): { reads: number; sec: number; offsets: number[]; data: Buffer } {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  const next = rng(seed);
  const blocks = Math.floor(size / 4096);
  const offsets: number[] = [];
  for (let i = 0; i < n; i++) offsets.push(Math.floor(next() * blocks) * 4096);
  const data = Buffer.alloc(n * 4096);
  const t0 = now();
  const deadline = t0 + BigInt(Math.round(maxSec * 1e9));
  let done = 0;
  try {
    for (; done < n; done++) {
      const got = readSync(fd, data, done * 4096, 4096, offsets[done]!);
      if (got !== 4096) throw new Error(`short read of ${got} bytes at ${offsets[done]} of ${path}`);
      if (now() > deadline) { done++; break; }
    }
  } finally {
    closeSync(fd);
  }
  return { reads: done, sec: secs(t0), offsets: offsets.slice(0, done), data: data.subarray(0, done * 4096) };
}

/** Whether `data` holds the 4 KiB blocks of `reference` at `offsets`, in order. */
export function sameBlocks(reference: string, offsets: number[], data: Buffer): boolean {
  const fd = openSync(reference, 'r');
  const want = Buffer.alloc(4096);
  try {
    return offsets.every((off, i) => {
      readSync(fd, want, 0, 4096, off);
      return want.equals(data.subarray(i * 4096, (i + 1) * 4096));
    });
  } finally {
    closeSync(fd);
  }
}

/** Primes a fresh mount for random reads: bootstrap metadata and the blob's chunk table load once. */
export function prime(dir: string, file: string): void {
  readdirSync(dir);
  const fd = openSync(file, 'r');
  readSync(fd, Buffer.alloc(4096), 0, 4096, 0);
  closeSync(fd);
}

/** Whether `dir` is a mount point in /proc/mounts. */
export function mounted(dir: string): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
}
