// Shared helpers for the storage tests: the Nydus fixtures, a seeded PRNG, data with a chosen
// compressibility, building small real images with build(), and blob sources that count,
// fail or corrupt reads on purpose.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OndineError } from '../../src/errors.js';
import type { BlobSource } from '../../src/storage/blob-source.js';
import { build, type BuildOptions, type BuildResult } from '../../src/builder/builder.js';
import { parseBootstrap, type Bootstrap } from '../../src/format/bootstrap.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { unpackBlob } from '../../src/storage/unpack.js';
import { DecodePool } from '../../src/storage/decode-pool.js';

/** Compiled to dist/test/storage/support.js: the repository is three levels up. */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

export const FIXTURE_DIR = join(process.env.ONDINE_SHARED ?? resolve(REPO, '..', 'shared'), 'fixtures', 'nydus-rafs-v6');
export const FIXTURE_BOOT = join(FIXTURE_DIR, 'rafs-v6-2.2.boot');
export const FIXTURE_BLOB_ID = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';

export const KiB = 1024;
export const MiB = 1 << 20;

import { mulberry32 as prng } from '../helpers/prng.js';
export { prng };

/** Incompressible bytes from a seed. */
export function randomBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) {
    const v = (r() * 0x100000000) >>> 0;
    b[i] = v & 0xff;
    if (i + 1 < n) b[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) b[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) b[i + 3] = v >>> 24;
  }
  return b;
}

/** Compressible but not trivial bytes: words drawn from a small vocabulary. */
export function textBytes(n: number, seed: number): Buffer {
  const words = ['erofs', 'chunk', 'blob', 'lazy', 'kernel', 'ondine', 'digest', 'zstd', 'inode', 'page'];
  const r = prng(seed);
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = `${words[Math.floor(r() * words.length)]}${Math.floor(r() * 1000)} `;
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('').slice(0, n), 'latin1');
}

/** Asserts that `fn` throws (or rejects with) an OndineError of `code`; returns it. */
export async function rejectsWith(fn: () => unknown, code: string, message?: RegExp): Promise<OndineError> {
  try {
    await fn();
  } catch (err) {
    return assertOndineError(err, code, message);
  }
  return assertOndineError(undefined, code, message);
}

export function throwsWith(fn: () => unknown, code: string, message?: RegExp): OndineError {
  try {
    fn();
  } catch (err) {
    return assertOndineError(err, code, message);
  }
  return assertOndineError(undefined, code, message);
}

function assertOndineError(caught: unknown, code: string, message?: RegExp): OndineError {
  assert.ok(caught !== undefined, `expected ${code}, nothing was thrown`);
  assert.ok(caught instanceof OndineError, `expected an OndineError, got ${String((caught as Error)?.stack ?? caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** A temp directory removed by the returned cleanup. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `ondine-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes files (path -> content) under `root`, creating parents. */
export async function writeTree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [path, data] of Object.entries(files)) {
    const full = join(root, path);
    await mkdir(join(full, '..'), { recursive: true });
    await writeFile(full, data);
  }
}

export interface ReadLog {
  blobId: string;
  offset: number;
  length: number;
}

/**
 * Wraps a source: logs every read, and lets a test fail or corrupt chosen reads. `fail`
 * returns an error to throw for a read; `corrupt` may change the bytes a read returns.
 */
export class ScriptedSource implements BlobSource {
  readonly log: ReadLog[] = [];
  readonly description: string;
  fail?: (r: ReadLog) => Error | undefined;
  corrupt?: (r: ReadLog, bytes: Buffer) => void;

  constructor(readonly inner: BlobSource) {
    this.description = `scripted ${inner.description}`;
  }

  async read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const r = { blobId, offset, length };
    this.log.push(r);
    const err = this.fail?.(r);
    if (err) throw err;
    const bytes = await this.inner.read(blobId, offset, length, signal);
    this.corrupt?.(r, bytes);
    return bytes;
  }

  size(blobId: string): Promise<number> {
    return this.inner.size(blobId);
  }
}

export interface BuiltImage {
  /** The source tree and the output directory live under `root`. */
  root: string;
  src: string;
  out: string;
  blobDir: string;
  result: BuildResult;
  bootstrap: Bootstrap;
  cleanup: () => Promise<void>;
}

/** Builds `files` (written into a fresh directory) with the real builder. */
export async function buildImage(files: Record<string, Buffer | string>, opts: Partial<BuildOptions> = {}): Promise<BuiltImage> {
  const { dir: root, cleanup } = await tempDir('img');
  const src = join(root, 'src');
  const out = join(root, 'out');
  await mkdir(src);
  await writeTree(src, files);
  const result = await build({ sources: [src], outDir: out, workers: 2, ...opts });
  const bootstrap = parseBootstrap(await readFile(result.bootstrapPath));
  return { root, src, out, blobDir: join(out, 'blobs'), result, bootstrap, cleanup };
}

/** Unpacks every blob of `boot` found in `blobDirs` (verifying each chunk) into memory. */
export async function unpackAll(boot: Bootstrap, blobDirs: string[], work: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of boot.blobs) {
    let done = false;
    for (const dir of blobDirs) {
      const src = new LocalDirSource(dir);
      try {
        await src.size(entry.blobId);
      } catch {
        await src.close();
        continue;
      }
      const path = join(work, `${entry.blobId}.unpacked`);
      try {
        const r = await unpackBlob(boot, entry, src, path);
        assert.deepEqual(r.failures, [], `unpacking ${entry.blobId}`);
        out.set(entry.blobId, await readFile(path));
        done = true;
      } finally {
        await src.close();
      }
      break;
    }
    assert.ok(done, `blob ${entry.blobId} not found in ${blobDirs.join(', ')}`);
  }
  return out;
}

/** Every regular file of `boot`, read through its chunk indexes from unpacked blobs; holes read as zeros. */
export function readFiles(boot: Bootstrap, blobs: Map<string, Buffer>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const { path, ino } of boot.walk()) {
    if ((ino.mode & 0o170000) !== 0o100000) continue;
    const data = Buffer.alloc(ino.size);
    if (ino.size > 0) {
      for (const m of boot.chunkMap(ino)) {
        if (m.chunk.blkaddr === 0xffffffff) continue;
        const blob = blobs.get(boot.blobIdOfDevice(m.chunk.deviceId));
        assert.ok(blob, `${path}: blob of device ${m.chunk.deviceId} not unpacked`);
        blob.copy(data, m.fileOffset, m.chunk.blkaddr * 4096, m.chunk.blkaddr * 4096 + m.length);
      }
    }
    out.set(path, data);
  }
  return out;
}

/**
 * A decode pool that hands back the results of the jobs given in one turn of the event loop
 * (the large chunks of one source read) in reverse order: out-of-order delivery, for sure.
 */
export class ReversingPool extends DecodePool {
  /** Batches released with more than one job. */
  reversedBatches = 0;
  private batch: Array<{ p: Promise<Buffer>; resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];

  override decode(...args: Parameters<DecodePool['decode']>): Promise<Buffer> {
    const p = super.decode(...args);
    return new Promise<Buffer>((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => void this.release());
      this.batch.push({ p, resolve, reject });
    });
  }

  private async release(): Promise<void> {
    const batch = this.batch.splice(0);
    const results = await Promise.allSettled(batch.map((b) => b.p));
    if (batch.length > 1) this.reversedBatches++;
    for (let i = batch.length - 1; i >= 0; i--) {
      const r = results[i]!;
      if (r.status === 'fulfilled') batch[i]!.resolve(r.value);
      else batch[i]!.reject(r.reason as Error);
    }
  }
}
