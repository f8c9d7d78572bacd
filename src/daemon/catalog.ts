// The images the daemon serves, with neutral lookups shared by both front ends: an image by
// fsid (within its domain), a blob by id. Sources are kept by spec (a blob directory, a
// registry repository): one opened source per spec, whichever image or front end uses it.
// Blobs are shared: one handle (one chunk map) per blob id and source. Front ends keep small
// adapters of their own (cachefiles-targets.ts, kernel/fanotify/mounts.ts); nothing kernel-specific
// lives here.
import type { FillScheduler } from '../storage/fill-scheduler.js';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseBootstrap, type Bootstrap } from '../format/bootstrap.js';
import { checkBootstrapIdentifiers } from '../format/identifiers.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';
import { BlobHandle } from '../storage/blob-cache.js';
import { loadBlobChunkMap } from '../storage/blob-chunk-map.js';
import { FlatFileSource } from '../storage/flat-file-source.js';
import type { DecodePool } from '../storage/decode-pool.js';
import type { BlobSource, SourceCounters } from '../storage/blob-source.js';
import { describeSource, openSource, sourceKey, type SourceDeps, type SourceSpec } from '../storage/source-spec.js';
import { checkImageSpecNames } from '../kernel/request-names.js';

export interface ImageSpec {
  fsid: string;
  domain?: string;
  /** Path of the bootstrap file. */
  bootstrap: string;
  /** Directory of blobs named by id (default: <bootstrap dir>/blobs); ignored with `source`. */
  blobDir?: string;
  /** Where the blobs come from, when not a local directory (a registry repository). */
  source?: SourceSpec;
  /** The reference the image was pulled by (for listings). */
  ref?: string;
  /** Flat, uncompressed device images by device tag or `device=` value (mkfs.erofs images). */
  devices?: Record<string, string>;
}

export interface ImageInfo {
  fsid: string;
  domain: string | undefined;
  bootstrap: string;
  /** The blob directory, for an image whose blobs are local. */
  blobDir?: string;
  /** Where the blobs come from (never with credentials). */
  source: string;
  ref?: string;
  blobs: string[];
}

export interface ImageRecord {
  spec: ImageSpec & { blobDir: string; source: SourceSpec };
  bytes: Buffer;
  bootstrap: Bootstrap;
  source: BlobSource;
  /** Flat device images by tag, each read through one open file. */
  flat: Map<string, FlatFileSource>;
}

export interface CatalogOptions {
  amplifyBytes?: number;
  /** How long a chunk whose fill timed out is refused at once (the ladder's default when absent). */
  failedChunkMs?: number;
  /** Worker threads every blob's chunks are decoded on (the daemon owns and closes it). */
  decodePool?: DecodePool;
  /** The daemon's one fill scheduler: every blob's source reads wait there for their budget. */
  scheduler?: FillScheduler;
  /** What registry sources are opened with (mirrors, hosts.toml, log). */
  sourceDeps?: SourceDeps;
}

interface OpenSource {
  spec: SourceSpec;
  source: BlobSource;
  counters: SourceCounters;
  /** The key its counters are listed under: the blob directory, or the repository. */
  label: string;
}

export class ImageCatalog {
  private readonly images = new Map<string, ImageRecord>();
  private readonly sources = new Map<string, OpenSource>();
  private readonly handles = new Map<BlobSource, Map<string, BlobHandle>>();
  /** Flat device images by path and size, whichever front end reads them. */
  private readonly flats = new Map<string, FlatFileSource>();

  constructor(readonly opts: CatalogOptions = {}) {}

  private static key(volume: string, fsid: string): string {
    return `${volume}\0${fsid}`;
  }

  /**
   * Registers `input`. `parsed` is its bootstrap already parsed and checked by the daemon
   * itself (a registration by reference: the pull's parse), not read or parsed again.
   */
  async add(input: ImageSpec, parsed?: Bootstrap): Promise<ImageInfo> {
    checkImageSpecNames(input);
    const bootstrapPath = resolve(input.bootstrap);
    const blobDir = resolve(input.blobDir ?? join(dirname(bootstrapPath), 'blobs'));
    const source: SourceSpec = input.source ?? { kind: 'local', dir: blobDir };
    const spec = { ...input, bootstrap: bootstrapPath, blobDir, source };
    const volume = spec.domain ?? spec.fsid;
    const key = ImageCatalog.key(volume, spec.fsid);
    const existing = this.images.get(key);
    if (existing) {
      if (existing.spec.bootstrap === spec.bootstrap && sourceKey(existing.spec.source) === sourceKey(source)) return this.info(existing);
      throw new OndineError('ONDINE_ERR_EXISTS', undefined, `fsid "${spec.fsid}" is already registered${spec.domain ? ` in domain "${spec.domain}"` : ''} with another image`);
    }
    let bytes: Buffer;
    let bootstrap: Bootstrap;
    if (parsed) {
      bootstrap = parsed;
      bytes = Buffer.from(parsed.buf.buffer, parsed.buf.byteOffset, parsed.buf.byteLength);
    } else {
      try {
        bytes = await readFile(bootstrapPath);
      } catch {
        throw new NotFoundError(`bootstrap ${bootstrapPath}`);
      }
      bootstrap = parseBootstrap(bytes);
    }
    if (bootstrap.blockSize !== 4096) throw new InvalidArgumentError(`block size ${bootstrap.blockSize}: the kernel front ends need the page size (4096)`);
    checkBootstrapIdentifiers(bootstrap, `bootstrap ${bootstrapPath}`);
    bootstrap.devices.forEach((d, i) => {
      if (!d.tag && !spec.devices) throw new InvalidArgumentError(`device ${i + 1} of ${bootstrapPath} has an empty tag: give its image with devices (mount it with -o device=)`);
    });
    const flat = new Map<string, FlatFileSource>();
    for (const [tag, path] of Object.entries(spec.devices ?? {})) {
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) throw new NotFoundError(`device image ${path}`);
      flat.set(tag, this.flatSource(path, st.size));
    }
    const rec: ImageRecord = { spec, bytes, bootstrap, source: this.source(source), flat };
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
    const local = r.spec.source.kind === 'local';
    return {
      fsid: r.spec.fsid, domain: r.spec.domain, bootstrap: r.spec.bootstrap,
      ...(local ? { blobDir: r.spec.blobDir } : {}),
      source: describeSource(r.spec.source),
      ...(r.spec.ref ? { ref: r.spec.ref } : {}),
      blobs: r.bootstrap.devices.map((d) => d.tag),
    };
  }

  /** Bytes and requests per blob, by source (a blob directory's path, or `<registry>/<repository>`). */
  sourceCounters(): Record<string, ReturnType<SourceCounters['toJSON']>> {
    const out: Record<string, ReturnType<SourceCounters['toJSON']>> = {};
    for (const s of this.sources.values()) {
      // Two sources of one repository (other credentials) are listed as one.
      const into = (out[s.label] ??= {});
      for (const [id, v] of Object.entries(s.counters.toJSON())) {
        const prev = into[id];
        into[id] = prev ? { bytes: prev.bytes + v.bytes, requests: prev.requests + v.requests } : v;
      }
    }
    if (this.flats.size) out['device images'] = Object.assign({}, ...[...this.flats.values()].map((f) => f.counters.toJSON())) as ReturnType<SourceCounters['toJSON']>;
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

  /**
   * The one source of a spec (a blob directory given as a path is a local spec), opened on
   * first use with its retry, failure memory and counting; for a front end that opens its own.
   */
  source(spec: SourceSpec | string): BlobSource {
    const s: SourceSpec = typeof spec === 'string' ? { kind: 'local', dir: resolve(spec) } : spec;
    const key = sourceKey(s);
    let open = this.sources.get(key);
    if (!open) {
      const opened = openSource(s, this.opts.sourceDeps);
      open = { spec: s, ...opened, label: describeSource(s) };
      this.sources.set(key, open);
    }
    return open.source;
  }

  /** The one handle of blob `entry` from `source` (its chunk map is loaded once, on first use). */
  blob(source: BlobSource, entry: BlobTableEntry, bootstrap: Bootstrap): BlobHandle {
    let bySource = this.handles.get(source);
    if (!bySource) {
      bySource = new Map();
      this.handles.set(source, bySource);
    }
    let h = bySource.get(entry.blobId);
    if (!h) {
      const { decodePool: pool, scheduler } = this.opts;
      h = new BlobHandle(entry.blobId, source, () => loadBlobChunkMap(source, entry, bootstrap.chunkTable), { ...(pool ? { pool } : {}), ...(scheduler ? { scheduler } : {}) });
      bySource.set(entry.blobId, h);
    }
    return h;
  }

  async close(): Promise<void> {
    for (const f of this.flats.values()) await f.close();
    await Promise.all([...this.sources.values()].map((s) => s.source.close?.()));
  }
}
