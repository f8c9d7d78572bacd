// The images the daemon serves, and the answer to the kernel's question "which bytes is this
// cache object?": (volume, cookie) → the bootstrap, a chunked data blob, or a flat blob.
// Blobs are shared: one handle (one chunk map, one source) per blob id and source.
import { readFile, stat, open } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseBootstrap, type Bootstrap } from '../format/bootstrap.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';
import { BlobHandle, ChunkedBlobFiller, FlatFiller } from '../storage/blob-filler.js';
import { loadBlobChunkMap } from '../storage/blob-chunk-map.js';
import { LocalDirSource } from '../storage/local-dir-source.js';
import type { DecodePool } from '../storage/decode-pool.js';
import type { BlobSource } from '../storage/blob-source.js';
import type { CacheTarget, TargetResolver } from '../kernel/cachefiles/frontend.js';
import { volumeName } from '../kernel/cachefiles/messages.js';

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

interface ImageRecord {
  spec: ImageSpec & { blobDir: string };
  bytes: Buffer;
  bootstrap: Bootstrap;
  source: LocalDirSource;
  deviceSizes: Map<string, number>;
}

export interface RegistryOptions {
  amplifyBytes?: number;
  /** Worker threads every blob's chunks are decoded on (the daemon owns and closes it). */
  decodePool?: DecodePool;
}

const NAME = /^[A-Za-z0-9._:-]{1,128}$/;
/** Bootstrap bytes written per metadata miss (aligned windows): all of a typical bootstrap. */
const BOOTSTRAP_WINDOW = 8 << 20;

export class ImageRegistry implements TargetResolver {
  private readonly images = new Map<string, ImageRecord>();
  private readonly sources = new Map<string, LocalDirSource>();
  private readonly handles = new Map<string, BlobHandle>();

  constructor(private readonly opts: RegistryOptions = {}) {}

  private static key(volume: string, fsid: string): string {
    return `${volume}\0${fsid}`;
  }

  async add(input: ImageSpec): Promise<ImageInfo> {
    if (!NAME.test(input.fsid)) throw new InvalidArgumentError(`fsid "${input.fsid}" must be 1-128 characters of [A-Za-z0-9._:-]`);
    if (input.domain !== undefined && !NAME.test(input.domain)) throw new InvalidArgumentError(`domain "${input.domain}" must be 1-128 characters of [A-Za-z0-9._:-]`);
    const bootstrapPath = resolve(input.bootstrap);
    const spec = { ...input, bootstrap: bootstrapPath, blobDir: resolve(input.blobDir ?? join(dirname(bootstrapPath), 'blobs')) };
    const volume = spec.domain ?? spec.fsid;
    const key = ImageRegistry.key(volume, spec.fsid);
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
    if (bootstrap.blockSize !== 4096) throw new InvalidArgumentError(`block size ${bootstrap.blockSize}: fscache mode needs the page size (4096)`);
    const deviceSizes = new Map<string, number>();
    for (const [tag, path] of Object.entries(spec.devices ?? {})) {
      deviceSizes.set(tag, (await stat(path)).size);
    }
    bootstrap.devices.forEach((d, i) => {
      if (!d.tag && !spec.devices) throw new InvalidArgumentError(`device ${i + 1} of ${bootstrapPath} has an empty tag: give its image with devices (mount it with -o device=)`);
    });
    let source = this.sources.get(spec.blobDir);
    if (!source) {
      source = new LocalDirSource(spec.blobDir);
      this.sources.set(spec.blobDir, source);
    }
    const rec: ImageRecord = { spec, bytes, bootstrap, source, deviceSizes };
    this.images.set(key, rec);
    return this.info(rec);
  }

  remove(fsid: string, domain?: string): boolean {
    return this.images.delete(ImageRegistry.key(domain ?? fsid, fsid));
  }

  list(): ImageInfo[] {
    return [...this.images.values()].map((r) => this.info(r));
  }

  private info(r: ImageRecord): ImageInfo {
    return { fsid: r.spec.fsid, domain: r.spec.domain, bootstrap: r.spec.bootstrap, blobDir: r.spec.blobDir, blobs: r.bootstrap.devices.map((d) => d.tag) };
  }

  sourceCounters(): Record<string, ReturnType<LocalDirSource['counters']['toJSON']>> {
    const out: Record<string, ReturnType<LocalDirSource['counters']['toJSON']>> = {};
    for (const [dir, s] of this.sources) out[dir] = s.counters.toJSON();
    return out;
  }

  private handle(source: BlobSource & { dir?: string }, rec: ImageRecord, index: number): BlobHandle {
    const entry = rec.bootstrap.blobs[index]!;
    const key = `${source.description}\0${entry.blobId}`;
    let h = this.handles.get(key);
    if (!h) {
      const pool = this.opts.decodePool;
      h = new BlobHandle(entry.blobId, source, () => loadBlobChunkMap(source, entry, rec.bootstrap.chunks), pool ? { pool } : {});
      this.handles.set(key, h);
    }
    return h;
  }

  resolve(volumeKey: string, cookieKey: string): CacheTarget | undefined {
    const volume = volumeName(volumeKey);
    if (volume === undefined) return undefined;
    const inVolume = [...this.images.values()].filter((r) => (r.spec.domain ?? r.spec.fsid) === volume);
    const own = inVolume.find((r) => r.spec.fsid === cookieKey);
    if (own) {
      const bytes = own.bytes;
      return {
        size: bytes.length,
        label: `bootstrap:${own.spec.fsid}`,
        // The whole bootstrap is in memory: the first metadata READ writes all of it (up to
        // BOOTSTRAP_WINDOW at a time), so metadata never costs a READ round trip again.
        filler: (writer) => new FlatFiller(bytes.length, async (o, n) => bytes.subarray(o, Math.min(o + n, bytes.length)), writer, { window: BOOTSTRAP_WINDOW }),
      };
    }
    for (const rec of inVolume) {
      const flat = rec.spec.devices?.[cookieKey];
      if (flat !== undefined) {
        const size = rec.deviceSizes.get(cookieKey)!;
        return { size, label: `device:${cookieKey}`, filler: (writer) => new FlatFiller(size, (o, n) => readRange(flat, o, n), writer) };
      }
      const index = rec.bootstrap.devices.findIndex((d) => d.tag === cookieKey);
      if (index >= 0 && rec.bootstrap.blobs[index]) {
        const entry = rec.bootstrap.blobs[index]!;
        const handle = this.handle(rec.source, rec, index);
        return {
          size: entry.uncompressedSize,
          label: `blob:${entry.blobId.slice(0, 12)}`,
          filler: (writer) => new ChunkedBlobFiller(entry.uncompressedSize, handle, writer, { amplifyBytes: this.opts.amplifyBytes ?? 1 << 20 }),
        };
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.close()));
  }
}

async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
