// Bootstraps pulled from registries, kept in the cache directory: <cacheDir>/ondine/bootstraps/
// <sha256 of the bootstrap>, and bootstraps/by-layer/<layer hex> naming the bootstrap a layer gave.
// A pull streams the layer into a temporary file under a cap, checks the whole bootstrap
// (superblock, blob table, chunk table, root inode) and only then fsyncs and renames it into
// place and writes the by-layer link: a pull that fails leaves neither a partial file nor a
// link, so a later mount never trusts what was not checked. Whatever is found later is
// checked against its own name (its sha256) before use. Every file and directory here is
// reached through CacheDir (openat2 beneath a directory fd, no link followed): a link planted
// in the cache directory fails the pull with ONDINE_ERR_UNSAFE_PATH and nothing is written
// anywhere else.
import { createHash } from 'node:crypto';
import { closeSync, fsync, write } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LayerSource } from '../builder/import/tar/source.js';
import { parseBootstrap, type Bootstrap } from '../format/bootstrap.js';
import { CacheDir, readWhole, type CacheSubdirHandle } from '../storage/cache-dir.js';
import { DEFAULT_MAX_BOOTSTRAP_BYTES, extractBootstrapTo } from './bootstrap-extract.js';

export interface StoredBootstrap {
  path: string;
  bytes: Buffer;
}

/** A bootstrap just pulled: stored, and parsed once (the parse its checks ran on). */
export interface PulledBootstrap extends StoredBootstrap {
  bootstrap: Bootstrap;
  /** Where the pull's time went, ms: fetch and extract, parse and checks, fsync and rename. */
  stages: { fetchMs: number; checkMs: number; storeMs: number };
}

const TEMP_PREFIX = '.pull-';
/** A temporary file this old belongs to no pull still running (a crashed one): removed. */
const STALE_TEMP_MS = 60 * 60_000;
/** A by-layer record holds a sha256 in hex (and perhaps a newline). */
const MAX_RECORD_BYTES = 128;

const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);

/** The hex of a sha256 layer digest, or undefined for any other digest (then no record is kept). */
function layerHex(layerDigest: string): string | undefined {
  return /^sha256:([0-9a-f]{64})$/.exec(layerDigest)?.[1];
}

export class BootstrapStore {
  private readonly maxBytes: number;

  constructor(readonly cache: CacheDir, opts: { maxBytes?: number } = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BOOTSTRAP_BYTES;
  }

  /** <cacheDir>/ondine/bootstraps (for listings and logs; never opened by this path). */
  get dir(): string {
    return join(this.cache.root, 'bootstraps');
  }

  /**
   * The bootstrap stored for a layer digest, if any and intact (it hashes to its name).
   * A record or bootstrap that is not a regular file (a planted link) is an
   * ONDINE_ERR_UNSAFE_PATH, not a miss.
   */
  find(layerDigest: string): StoredBootstrap | undefined {
    const hex = layerHex(layerDigest);
    if (!hex) return undefined;
    const record = this.cache.readFile('bootstraps/by-layer', hex, MAX_RECORD_BYTES);
    const name = record?.toString('utf8').trim();
    if (!name || !/^[0-9a-f]{64}$/.test(name)) return undefined;
    const bytes = this.cache.readFile('bootstraps', name, this.maxBytes);
    if (!bytes || createHash('sha256').update(bytes).digest('hex') !== name) return undefined;
    return { path: join(this.dir, name), bytes };
  }

  /**
   * Streams the bootstrap layer (`layer` carries its digest and size, checked over every byte)
   * into the store; returns the stored bootstrap with its parse. `check` (given that parse)
   * may refuse it before it is put in place. Throws, leaving nothing behind, on any fault.
   */
  async pull(layerDigest: string, layer: LayerSource, check?: (bootstrap: Bootstrap) => void): Promise<PulledBootstrap> {
    const hex = layerHex(layerDigest);
    // Both directories are opened (and checked) before a byte is fetched.
    const dir = this.cache.openDir('bootstraps');
    let records: CacheSubdirHandle | undefined;
    try {
      if (hex) records = this.cache.openDir('bootstraps/by-layer');
      removeStaleTemps(dir);
      const tmp = dir.createTemp(TEMP_PREFIX);
      let fd: number | undefined = tmp.fd;
      let placed = false;
      try {
        const out = tmp.fd;
        const t0 = performance.now();
        const got = await extractBootstrapTo(layer, {
          write: async (b) => {
            for (let done = 0; done < b.length;) done += (await writeAsync(out, b, done, b.length - done)).bytesWritten;
          },
        }, { maxBytes: this.maxBytes });
        // Read back through the same fd: what is checked is what was written.
        const bytes = await readWhole(out, got.size + 1);
        if (bytes.length !== got.size || createHash('sha256').update(bytes).digest('hex') !== got.sha256) {
          throw new Error(`${dir.pathOf(tmp.name)}: the file written is not the bootstrap read`);
        }
        const t1 = performance.now();
        const bootstrap = parseBootstrap(bytes); // superblock, device table, blob and chunk tables, root inode
        check?.(bootstrap); // the caller's own checks (its blobs are the manifest's), before it is trusted
        const t2 = performance.now();
        await fsyncAsync(out);
        closeSync(out);
        fd = undefined;
        await dir.rename(tmp.name, got.sha256);
        placed = true;
        await dir.sync();
        if (records && hex) await remember(records, hex, got.sha256);
        const stages = { fetchMs: Math.round(t1 - t0), checkMs: Math.round(t2 - t1), storeMs: Math.round(performance.now() - t2) };
        return { path: dir.pathOf(got.sha256), bytes, bootstrap, stages };
      } finally {
        if (fd !== undefined) closeSync(fd);
        if (!placed) {
          try { dir.remove(tmp.name); } catch { /* already gone */ }
        }
      }
    } finally {
      records?.close();
      dir.close();
    }
  }
}

/** The by-layer record, written only for a bootstrap in place; losing it only costs a fetch. */
async function remember(records: CacheSubdirHandle, hex: string, name: string): Promise<void> {
  let tmp: { fd: number; name: string } | undefined;
  try {
    tmp = records.createTemp(`${hex.slice(0, 16)}.new-`);
    const bytes = Buffer.from(name);
    for (let done = 0; done < bytes.length;) done += (await writeAsync(tmp.fd, bytes, done, bytes.length - done)).bytesWritten;
    await fsyncAsync(tmp.fd);
    closeSync(tmp.fd);
    const made = tmp.name;
    tmp = undefined;
    try {
      // rename replaces the record's name itself, a link planted there included.
      await records.rename(made, hex);
    } catch (err) {
      records.remove(made);
      throw err;
    }
    await records.sync();
  } catch {
    if (tmp) {
      try { closeSync(tmp.fd); } catch { /* closed */ }
      try { records.remove(tmp.name); } catch { /* gone */ }
    }
  }
}

/** Temporary files of pulls that crashed; only housekeeping (nothing reads these files). */
function removeStaleTemps(dir: CacheSubdirHandle): void {
  const now = Date.now();
  let names: string[];
  try {
    names = dir.list();
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    try {
      const st = dir.lstat(name);
      if (st && now - st.mtimeMs > STALE_TEMP_MS) dir.remove(name);
    } catch {
      // A name that fails its check (or a directory) is left alone.
    }
  }
}
