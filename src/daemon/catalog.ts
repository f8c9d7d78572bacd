// The images the daemon serves, with neutral lookups shared by both front ends: an image by
// fsid (within its domain), a blob by id. Blobs are shared: one handle (one chunk map, one
// source) per blob id and source, whichever image or front end asks. Front ends keep small
// adapters of their own (cachefiles-targets.ts, fanotify-mounts.ts); nothing kernel-specific
// lives here.
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseBootstrap, type Bootstrap } from '../format/bootstrap.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';
import { BlobHandle } from '../storage/blob-cache.js';
import { loadBlobChunkMap } from '../storage/blob-chunk-map.js';
import { LocalDirSource } from '../storage/local-dir-source.js';
import { FlatFileSource } from '../storage/flat-file-source.js';
import type { DecodePool } from '../storage/decode-pool.js';
import type { BlobSource } from '../storage/blob-source.js';

export interface ImageSpec {
  fsid: string;
  domain?: string;
  /** Path of the bootstrap file. */
  bootstrap: string;
  /** Directory of blobs named by id (default: <bootstrap dir>/blobs). */
  blobDir?: string;
  /** Flat, uncompressed device images by device tag or `device=` value (mkfs.erofs images). */
  devices?: Record<string, string>;
}

export interface ImageInfo {
  fsid: string;
  domain: string | undefined;
  bootstrap: string;
  blobDir: string;
  blobs: string[];
}

export interface ImageRecord {
  spec: ImageSpec & { blobDir: string };
  bytes: Buffer;
  bootstrap: Bootstrap;
  source: LocalDirSource;
  /** Flat device images by tag, each read through one open file. */
  flat: Map<string, FlatFileSource>;
}

export interface CatalogOptions {
  amplifyBytes?: number;
  /** Worker threads every blob's chunks are decoded on (the daemon owns and closes it). */
  decodePool?: DecodePool;
}

const NAME = /^[A-Za-z0-9._:-]{1,128}$/;

export class ImageCatalog {
  private readonly images = new Map<string, ImageRecord>();
  private readonly sources = new Map<string, LocalDirSource>();
  private readonly handles = new Map<string, BlobHandle>();
  /** Flat device images by path and size, whichever front end reads them. */
  private readonly flats = new Map<string, FlatFileSource>();

  constructor(readonly opts: CatalogOptions = {}) {}

  private static key(volume: string, fsid: string): string {
    return `${volume}\0${fsid}`;
  }

  async add(input: ImageSpec): Promise<ImageInfo> {
    if (!NAME.test(input.fsid)) throw new InvalidArgumentError(`fsid "${input.fsid}" must be 1-128 characters of [A-Za-z0-9._:-]`);
    if (input.domain !== undefined && !NAME.test(input.domain)) throw new InvalidArgumentError(`domain "${input.domain}" must be 1-128 characters of [A-Za-z0-9._:-]`);
    const bootstrapPath = resolve(input.bootstrap);
    const spec = { ...input, bootstrap: bootstrapPath, blobDir: resolve(input.blobDir ?? join(dirname(bootstrapPath), 'blobs')) };
    const volume = spec.domain ?? spec.fsid;
    const key = ImageCatalog.key(volume, spec.fsid);
    const existing = this.images.get(key);
    if (existing) {
      if (existing.spec.bootstrap === spec.bootstrap && existing.spec.blobDir === spec.blobDir) return this.info(existing);
      throw new OndineError('ONDINE_ERR_EXISTS', 17, `fsid "${spec.fsid}" is already registered${spec.domain ? ` in domain "${spec.domain}"` : ''} with another image`);
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(bootstrapPath);
    } catch {
      throw new NotFoundError(`bootstrap ${bootstrapPath}`);
    }
    const bootstrap = parseBootstrap(bytes);
    if (bootstrap.blockSize !== 4096) throw new InvalidArgumentError(`block size ${bootstrap.blockSize}: the kernel front ends need the page size (4096)`);
    bootstrap.devices.forEach((d, i) => {
      if (!d.tag && !spec.devices) throw new InvalidArgumentError(`device ${i + 1} of ${bootstrapPath} has an empty tag: give its image with devices (mount it with -o device=)`);
    });
    const flat = new Map<string, FlatFileSource>();
    for (const [tag, path] of Object.entries(spec.devices ?? {})) {
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) throw new NotFoundError(`device image ${path}`);
      flat.set(tag, this.flatSource(path, st.size));
    }
    const rec: ImageRecord = { spec, bytes, bootstrap, source: this.source(spec.blobDir), flat };
    this.images.set(key, rec);
    return this.info(rec);
  }

  remove(fsid: string, domain?: string): boolean {
    const key = ImageCatalog.key(domain ?? fsid, fsid);
    const rec = this.images.get(key);
    if (!rec) return false;
    this.images.delete(key);
    return true;
  }

  list(): ImageInfo[] {
    return [...this.images.values()].map((r) => this.info(r));
  }

  /** The image registered under `fsid` in `volume` (its domain, or its own fsid). */
  image(volume: string, fsid: string): ImageRecord | undefined {
    return this.images.get(ImageCatalog.key(volume, fsid));
  }

  /** Images of one volume (a domain shares blobs across its images). */
  inVolume(volume: string): ImageRecord[] {
    return [...this.images.values()].filter((r) => (r.spec.domain ?? r.spec.fsid) === volume);
  }

  private info(r: ImageRecord): ImageInfo {
    return { fsid: r.spec.fsid, domain: r.spec.domain, bootstrap: r.spec.bootstrap, blobDir: r.spec.blobDir, blobs: r.bootstrap.devices.map((d) => d.tag) };
  }

  sourceCounters(): Record<string, ReturnType<LocalDirSource['counters']['toJSON']>> {
    const out: Record<string, ReturnType<LocalDirSource['counters']['toJSON']>> = {};
    for (const [dir, s] of this.sources) out[dir] = s.counters.toJSON();
    if (this.flats.size) out['device images'] = Object.assign({}, ...[...this.flats.values()].map((f) => f.counters.toJSON())) as ReturnType<LocalDirSource['counters']['toJSON']>;
    return out;
  }

  /** The one reader of a flat device image (counted like a blob source, by its path). */
  flatSource(path: string, size: number): FlatFileSource {
    const key = `${resolve(path)}\0${size}`;
    let f = this.flats.get(key);
    if (!f) {
      f = new FlatFileSource(resolve(path), size);
      this.flats.set(key, f);
    }
    return f;
  }

  /** Sources by description (blob directories); for a front end that opens its own. */
  source(blobDir: string): LocalDirSource {
    const dir = resolve(blobDir);
    let source = this.sources.get(dir);
    if (!source) {
      source = new LocalDirSource(dir);
      this.sources.set(dir, source);
    }
    return source;
  }

  /** The one handle of blob `entry` from `source` (its chunk map is loaded once, on first use). */
  blob(source: BlobSource, entry: BlobTableEntry, bootstrap: Bootstrap): BlobHandle {
    const key = `${source.description}\0${entry.blobId}`;
    let h = this.handles.get(key);
    if (!h) {
      const pool = this.opts.decodePool;
      h = new BlobHandle(entry.blobId, source, () => loadBlobChunkMap(source, entry, bootstrap.chunks), pool ? { pool } : {});
      this.handles.set(key, h);
    }
    return h;
  }

  async close(): Promise<void> {
    for (const f of this.flats.values()) await f.close();
    await Promise.all([...this.sources.values()].map((s) => s.close()));
  }
}
