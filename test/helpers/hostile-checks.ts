// What every hostile-registry scenario asserts besides its own outcome, and the hostile inputs
// it is made of: a canary tree beside the cache directory (snapshot before, compare after:
// nothing written outside the cache), a process's peak memory (VmHWM), the CLI's one-line
// error (exit code, no stack trace), and crafted bootstrap layers (blob ids that name paths,
// tar entries with `..`, absolute names, links and duplicates, a gzip bomb).
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';

import { BLOB_TABLE_ENTRY_SIZE } from '../../src/format/blob-table.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { sealSuperblock } from '../../src/format/superblock.js';
import { tarball, header, type CraftEntry } from './tar-craft.js';
import type { RunResult } from './e2e-env.js';

/** Peak resident memory of a process in KiB (VmHWM from /proc/<pid>/status). */
export function vmHwmKiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]);
}

/**
 * Makes a canary tree in `jail` (a file named `victim`, a directory with a file, a symlink)
 * around a cache directory there, and returns a snapshot function: every entry under `jail`
 * except below `cacheDir`, with its type, size, mode, mtime and (for files) content digest.
 */
export function plantCanaries(jail: string, cacheDir: string): () => string {
  mkdirSync(join(jail, 'canary-dir'), { recursive: true });
  writeFileSync(join(jail, 'victim'), 'the victim file: must never change\n');
  writeFileSync(join(jail, 'canary-dir', 'file'), 'a canary beside the cache\n');
  symlinkSync('/etc/hostname', join(jail, 'canary-link'));
  return () => snapshot(jail, [cacheDir]);
}

export function snapshot(root: string, exclude: string[]): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (exclude.some((x) => p === x || p.startsWith(x + '/'))) continue;
      const st = lstatSync(p);
      const rel = relative(root, p);
      if (st.isDirectory()) {
        lines.push(`d ${rel} ${st.mode.toString(8)}`);
        walk(p);
      } else if (st.isSymbolicLink()) lines.push(`l ${rel} -> ${readlinkSync(p)}`);
      else lines.push(`f ${rel} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.isFile() && st.size < 1 << 24 ? contentDigest(p) : '-'}`);
    }
  };
  walk(root);
  return lines.join('\n');
}

/** sha256 of a file, or why it cannot be read (a file the daemon took over may answer EIO). */
function contentDigest(p: string): string {
  try {
    return createHash('sha256').update(readFileSync(p)).digest('hex');
  } catch (err) {
    return `unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
}

/** Bytes used on disk by everything under `dir` (sparse files count their allocated blocks). */
export function diskUsage(dir: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else n += st.blocks * 512;
    }
  };
  walk(dir);
  return n;
}

/**
 * A failure as a user should see it: a non-zero exit, one line that starts with `ondine:` and
 * names an ONDINE_ERR_ code, no stack trace. Returns that line.
 */
export function oneLineError(r: RunResult, what: string): string {
  if (r.code === 0) throw new Error(`${what}: expected a failure, exit 0\nstdout: ${r.stdout.slice(-500)}`);
  if (/^\s+at /m.test(r.stderr)) throw new Error(`${what}: a stack trace reached the user:\n${r.stderr.slice(0, 2000)}`);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('ondine:'));
  if (lines.length !== 1 || !/\[ONDINE_ERR_[A-Z_]+\]/.test(lines[0]!)) throw new Error(`${what}: expected one "ondine: … [ONDINE_ERR_…]" line, exit ${r.code}, got:\n${r.stderr.slice(0, 2000)}`);
  return lines[0]!;
}

/**
 * Checks that all run and all report: each failure is kept with its name, and `throwIfAny`
 * fails once with every one of them (a scenario's invariants are checked also when its own
 * outcome already failed).
 */
export function failureList(): { check: (what: string, fn: () => unknown) => Promise<void>; throwIfAny: () => void } {
  const failures: string[] = [];
  return {
    check: async (what, fn) => {
      try {
        await fn();
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}`);
      }
    },
    throwIfAny: () => {
      if (failures.length > 0) throw new Error(failures.join('\n'));
    },
  };
}

/** The bootstrap with every blob id equal to `from` (blob table and device slots) rewritten as the raw bytes of `to` (up to 64), superblock checksum resealed. */
export function withBlobId(boot: Buffer, from: string, to: Buffer): Buffer {
  const out = Buffer.from(boot);
  const b = parseBootstrap(boot);
  const field = Buffer.alloc(64);
  to.copy(field, 0, 0, Math.min(64, to.length));
  let n = 0;
  if (b.rafs) {
    for (let at = b.rafs.blobTableOffset; at + BLOB_TABLE_ENTRY_SIZE <= b.rafs.blobTableOffset + b.rafs.blobTableSize; at += BLOB_TABLE_ENTRY_SIZE) {
      if (out.subarray(at, at + 64).toString('latin1').replace(/\0+$/, '') === from) {
        field.copy(out, at);
        n++;
      }
    }
  }
  // Device slots (128 bytes each: a 64-byte tag first) name the blob too.
  for (let i = 0; i < b.sb.extraDevices; i++) {
    const at = b.sb.devtSlotoff * 128 + i * 128;
    if (out.subarray(at, at + 64).toString('latin1').replace(/\0+$/, '') === from) field.copy(out, at);
  }
  if (n === 0) throw new Error(`blob id ${from} is not in the blob table`);
  // A consistent bootstrap: block 0's checksum made again, so only the id is wrong.
  sealSuperblock(out.subarray(0, 4096));
  return out;
}

/** A gzip'd tar of crafted entries (the shape of a Nydus bootstrap layer, with any lie in it). */
export function bootstrapLayerOf(entries: CraftEntry[]): Buffer {
  return gzipSync(tarball(entries));
}

/**
 * The decompression bomb: a gzip'd tar whose `image/image.boot` header declares `size` bytes,
 * followed by that many zeros; about 1/1000 of `size` compressed. Made by streaming, so it
 * never holds the zeros in memory.
 */
export async function gzipBomb(size: number): Promise<Buffer> {
  const head = header({ name: 'image/image.boot', size, data: Buffer.alloc(0) });
  const piece = Buffer.alloc(1 << 20);
  let left = size + ((512 - (size % 512)) % 512) + 1024;
  let first = true;
  const src = new Readable({
    read() {
      if (first) {
        first = false;
        return void this.push(head);
      }
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, piece.length);
      left -= n;
      this.push(piece.subarray(0, n));
    },
  });
  const parts: Buffer[] = [];
  const gz = createGzip({ level: 9 });
  gz.on('data', (c: Buffer) => parts.push(c));
  await pipeline(src, gz);
  return Buffer.concat(parts);
}
