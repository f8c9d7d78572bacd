// Fills byte ranges of a cache file (the uncompressed blob layout) on demand. A front end
// (cachefiles READ, fanotify pre-access) asks for a range; the filler works out which chunks
// cover it, adds read-ahead (amplification), fetches each chunk at most once even when many
// readers want it, verifies, and writes it through the front end's RangeWriter. A range is
// either written whole and verified, or fill() rejects: nothing unverified is ever written.
import { alignUp } from '../format/bytes.js';
import { BLOCK_SIZE } from '../format/constants.js';
import type { BlobSource } from './blob-source.js';
import type { BlobChunk, BlobChunkMap } from './blob-chunk-map.js';
import { ChunkReader } from './chunk-reader.js';

export interface RangeWriter {
  /** Writes `data` at `offset` (block aligned); pads the tail to a block with zeros. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Whether [offset, offset + length) already holds valid data (survives daemon restarts). */
  isCached?(offset: number, length: number): boolean;
}

export interface RangeFiller {
  readonly size: number;
  fill(offset: number, length: number, signal?: AbortSignal): Promise<void>;
}

export interface FillStats {
  chunksWritten: number;
  bytesWritten: number;
  amplifiedChunks: number;
}

/** One blob as the daemon knows it: its source and (lazily, once) its chunk map. */
export class BlobHandle {
  private mapPromise: Promise<BlobChunkMap> | undefined;
  private reader: ChunkReader | undefined;

  constructor(readonly blobId: string, readonly source: BlobSource, private readonly load: () => Promise<BlobChunkMap>) {}

  async chunkReader(): Promise<ChunkReader> {
    if (!this.mapPromise) {
      this.mapPromise = this.load();
      // A failed load (source down) must not stay cached: the next READ tries again.
      this.mapPromise.catch(() => { this.mapPromise = undefined; });
    }
    const map = await this.mapPromise;
    this.reader ??= new ChunkReader(this.source, map);
    return this.reader;
  }
}

export interface ChunkedFillerOptions {
  /** Compressed bytes to fetch per miss at least (read-ahead over following chunks). */
  amplifyBytes?: number;
}

/** Fills a chunked (Nydus/Ondine) blob's cache file. One instance per open cache object. */
export class ChunkedBlobFiller implements RangeFiller {
  private readonly inFlight = new Map<number, Promise<void>>();
  private readonly done = new Set<number>();
  readonly stats: FillStats = { chunksWritten: 0, bytesWritten: 0, amplifiedChunks: 0 };

  constructor(
    readonly size: number,
    private readonly blob: BlobHandle,
    private readonly writer: RangeWriter,
    private readonly opts: ChunkedFillerOptions = {},
  ) {}

  private cached(c: BlobChunk): boolean {
    if (this.done.has(c.index)) return true;
    if (this.writer.isCached?.(c.uncompressedOffset, c.uncompressedSize)) {
      this.done.add(c.index);
      return true;
    }
    return false;
  }

  async fill(offset: number, length: number, signal?: AbortSignal): Promise<void> {
    const end = Math.min(offset + length, this.size);
    if (offset >= end) return;
    const reader = await this.blob.chunkReader();
    const map = reader.map;
    const covering = map.covering(offset, end - offset);
    const waits: Promise<void>[] = [];
    const fetch: BlobChunk[] = [];
    for (const c of covering) {
      if (this.cached(c)) continue;
      const pending = this.inFlight.get(c.index);
      if (pending) waits.push(pending);
      else fetch.push(c);
    }
    if (fetch.length) {
      const extra = this.amplify(map, fetch);
      waits.push(...this.start(reader, fetch, extra, signal));
    }
    await this.fillGaps(covering, offset, end);
    await Promise.all(waits);
  }

  /** Chunks following the last miss, not cached or in flight, up to the read-ahead budget. */
  private amplify(map: BlobChunkMap, fetch: BlobChunk[]): BlobChunk[] {
    const budget = this.opts.amplifyBytes ?? 1 << 20;
    let bytes = fetch.reduce((s, c) => s + c.compressedSize, 0);
    const extra: BlobChunk[] = [];
    const last = fetch[fetch.length - 1]!;
    for (let i = map.position(last) + 1; i < map.chunks.length && bytes < budget; i++) {
      const c = map.chunks[i]!;
      if (this.inFlight.has(c.index) || this.cached(c)) break;
      extra.push(c);
      bytes += c.compressedSize;
    }
    return extra;
  }

  /** Starts one fetch for `needed` + `extra`; returns the promises of the needed chunks. */
  private start(reader: ChunkReader, needed: BlobChunk[], extra: BlobChunk[], signal?: AbortSignal): Promise<void>[] {
    const deferred = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
    const out: Promise<void>[] = [];
    for (const c of [...needed, ...extra]) {
      const p = new Promise<void>((resolve, reject) => deferred.set(c.index, { resolve, reject }));
      // Read-ahead failures are nobody's business until someone reads that chunk.
      p.catch(() => undefined);
      const tracked = p.finally(() => this.inFlight.delete(c.index));
      tracked.catch(() => undefined);
      this.inFlight.set(c.index, tracked);
      if (needed.includes(c)) out.push(tracked);
    }
    this.stats.amplifiedChunks += extra.length;
    const settle = (index: number, err?: Error) => {
      const d = deferred.get(index);
      if (!d) return;
      deferred.delete(index);
      if (err) d.reject(err);
      else d.resolve();
    };
    reader.fetch([...needed, ...extra], async ({ chunk, data }) => {
      try {
        await this.writer.write(chunk.uncompressedOffset, data);
        this.done.add(chunk.index);
        this.stats.chunksWritten++;
        this.stats.bytesWritten += data.length;
        settle(chunk.index);
      } catch (err) {
        settle(chunk.index, err as Error);
      }
    }, { signal, onError: (c, err) => settle(c.index, err) })
      .catch((err: Error) => { for (const i of [...deferred.keys()]) settle(i, err); })
      .finally(() => { for (const i of [...deferred.keys()]) settle(i, new Error(`chunk ${i} was not delivered`)); });
    return out;
  }

  /** Blocks of the range that no chunk covers hold no data; the kernel still needs them filled. */
  private async fillGaps(covering: BlobChunk[], offset: number, end: number): Promise<void> {
    let pos = Math.floor(offset / BLOCK_SIZE) * BLOCK_SIZE;
    const gaps: Array<[number, number]> = [];
    for (const c of covering) {
      if (c.uncompressedOffset > pos) gaps.push([pos, c.uncompressedOffset]);
      pos = Math.max(pos, alignUp(c.uncompressedOffset + c.uncompressedSize, BLOCK_SIZE));
    }
    const tail = Math.min(alignUp(end, BLOCK_SIZE), alignUp(this.size, BLOCK_SIZE));
    if (pos < tail) gaps.push([pos, tail]);
    for (const [a, b] of gaps) {
      if (this.writer.isCached?.(a, b - a)) continue;
      await this.writer.write(a, Buffer.alloc(b - a));
    }
  }
}

/** Fills from a flat, uncompressed file-like source (the bootstrap, mkfs.erofs blobs). */
export class FlatFiller implements RangeFiller {
  constructor(
    readonly size: number,
    private readonly read: (offset: number, length: number) => Promise<Buffer>,
    private readonly writer: RangeWriter,
  ) {}

  async fill(offset: number, length: number): Promise<void> {
    const start = Math.floor(offset / BLOCK_SIZE) * BLOCK_SIZE;
    const end = Math.min(offset + length, this.size);
    if (start >= end) return;
    const step = 4 << 20;
    for (let at = start; at < end; at += step) {
      const n = Math.min(step, end - at);
      await this.writer.write(at, await this.read(at, n));
    }
  }
}
