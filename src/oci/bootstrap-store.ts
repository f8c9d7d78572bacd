// Bootstraps pulled from registries, kept in the cache directory: <root>/bootstraps/<sha256 of
// the bootstrap>, and <root>/bootstraps/by-layer/<layer hex> naming the bootstrap a layer gave.
// A pull streams the layer into a temporary file under a cap, checks the whole bootstrap
// (superblock, blob table, chunk table, root inode) and only then fsyncs and renames it into
// place and writes the by-layer link: a pull that fails leaves neither a partial file nor a
// link, so a later mount never trusts what was not checked. Whatever is found later is
// checked against its own name (its sha256) before use.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerSource } from '../builder/import/tar/source.js';
import { parseBootstrap } from '../format/bootstrap.js';
import { DEFAULT_MAX_BOOTSTRAP_BYTES, extractBootstrapTo } from './bootstrap-extract.js';

export interface StoredBootstrap {
  path: string;
  bytes: Buffer;
}

const TEMP_PREFIX = '.pull-';
/** A temporary file this old belongs to no pull still running (a crashed one): removed. */
const STALE_TEMP_MS = 60 * 60_000;

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class BootstrapStore {
  readonly dir: string;
  private readonly maxBytes: number;

  /** `root` is the cache directory's own folder (CacheDir.root). */
  constructor(root: string, opts: { maxBytes?: number } = {}) {
    this.dir = join(root, 'bootstraps');
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BOOTSTRAP_BYTES;
  }

  private linkPath(layerDigest: string): string | undefined {
    const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
    return m ? join(this.dir, 'by-layer', m[1]!) : undefined;
  }

  /** The bootstrap stored for a layer digest, if any and intact (it hashes to its name). */
  find(layerDigest: string): StoredBootstrap | undefined {
    const link = this.linkPath(layerDigest);
    if (!link) return undefined;
    try {
      const name = readFileSync(link, 'utf8').trim();
      if (!/^[0-9a-f]{64}$/.test(name)) return undefined;
      const path = join(this.dir, name);
      const st = statSync(path);
      if (!st.isFile() || st.size > this.maxBytes) return undefined;
      const bytes = readFileSync(path);
      return createHash('sha256').update(bytes).digest('hex') === name ? { path, bytes } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Streams the bootstrap layer (`layer` carries its digest and size, checked over every byte)
   * into the store; returns the stored bootstrap. `check` may refuse it before it is put in
   * place. Throws, leaving nothing behind, on any fault.
   */
  async pull(layerDigest: string, layer: LayerSource, check?: (bytes: Buffer) => void): Promise<StoredBootstrap> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.removeStaleTemps();
    const tmp = join(this.dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    let fh: FileHandle | undefined = await open(tmp, 'wx', 0o600);
    let placed = false;
    try {
      const file = fh;
      const got = await extractBootstrapTo(layer, { write: async (b) => { await file.write(b); } }, { maxBytes: this.maxBytes });
      const bytes = await readFile(tmp);
      if (bytes.length !== got.size || createHash('sha256').update(bytes).digest('hex') !== got.sha256) {
        throw new Error(`${tmp}: the file written is not the bootstrap read`);
      }
      parseBootstrap(bytes); // superblock, device table, blob and chunk tables, root inode
      check?.(bytes); // the caller's own checks (its blobs are the manifest's), before it is trusted
      await fh.sync();
      await fh.close();
      fh = undefined;
      const path = join(this.dir, got.sha256);
      await rename(tmp, path);
      placed = true;
      await syncDir(this.dir);
      await this.remember(layerDigest, got.sha256);
      return { path, bytes };
    } finally {
      await fh?.close().catch(() => undefined);
      if (!placed) await unlink(tmp).catch(() => undefined);
    }
  }

  /** The by-layer link, written only for a bootstrap in place; losing it only costs a fetch. */
  private async remember(layerDigest: string, name: string): Promise<void> {
    const link = this.linkPath(layerDigest);
    if (!link) return;
    const dir = join(this.dir, 'by-layer');
    const tmp = `${link}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.write(name);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, link);
      await syncDir(dir);
    } catch {
      await unlink(tmp).catch(() => undefined);
    }
  }

  private removeStaleTemps(): void {
    try {
      const now = Date.now();
      for (const name of readdirSync(this.dir)) {
        if (!name.startsWith(TEMP_PREFIX)) continue;
        const p = join(this.dir, name);
        const st = statSync(p, { throwIfNoEntry: false });
        if (st && now - st.mtimeMs > STALE_TEMP_MS) rmSync(p, { force: true });
      }
    } catch {
      // Only housekeeping: nothing reads these files.
    }
  }
}
