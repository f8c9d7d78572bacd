// The builder's ChunkSink: cuts files into chunks, sends them to the worker pool, and commits
// results strictly in submission order, so blobs are byte-identical from run to run while
// hashing and compression run in parallel. Dedup is global across files, layers and the chunk
// dict: the first writer of a digest owns the chunk, every later one references it.
import { CHUNK_FLAG_COMPRESSED } from '../format/constants.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import type { ChunkTableEntry } from '../format/chunk-table.js';
import { InvalidArgumentError } from '../errors.js';
import type { ChunkSink, Segment } from './tree.js';
import { BlobWriter, type FinishedBlob } from './blob-writer.js';
import type { ChunkPool, ChunkJobResult } from './chunk-pool.js';
import type { StageClock } from './stages.js';

/** A blob that chunks can live in: one this build writes, or one from the chunk dict. */
export type BlobRef =
  | { kind: 'layer'; layer: number; writer: BlobWriter }
  | { kind: 'dict'; entry: BlobTableEntry };

export interface ChunkLocation {
  blob: BlobRef;
  ciIndex: number;
  digest: string;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
}

/** A file's content: one location per chunk, null for a hole. Complete after ChunkStore.flush(). */
export interface ChunkedContent {
  kind: 'chunks';
  chunks: Array<ChunkLocation | null>;
}

export interface ChunkStoreOptions {
  outDir: string;
  chunkSize: number;
  compressor: number;
  level?: number;
  digester: number;
  /** Bytes of chunk data allowed in flight between reading and committing. */
  maxInFlightBytes?: number;
  onProgress?: (p: BuildProgress) => void;
  /** False: blobs are not fsynced (scratch blobs that are uploaded, then deleted). */
  durable?: boolean;
  stages?: StageClock;
}

export interface BuildProgress {
  bytesIn: number;
  chunks: number;
  uniqueChunks: number;
  holeChunks: number;
  storedBytes: number;
}

export class ChunkStore {
  private readonly dedup = new Map<string, ChunkLocation>();
  private readonly writers = new Map<number, BlobWriter>();
  /** finishLayer()'s answer per layer, from the call on. */
  private readonly finished = new Map<number, Promise<FinishedBlob | undefined>>();
  /** Layers whose finish has run (in commit order): no chunk may go there again. */
  private readonly closed = new Set<number>();
  private commitTail: Promise<void> = Promise.resolve();
  private inFlightBytes = 0;
  private readonly waiters: Array<() => void> = [];
  private failure: unknown;
  readonly progress: BuildProgress = { bytesIn: 0, chunks: 0, uniqueChunks: 0, holeChunks: 0, storedBytes: 0 };
  readonly dictBlobsUsed = new Set<BlobTableEntry>();

  constructor(private readonly pool: ChunkPool, readonly opts: ChunkStoreOptions) {
    const cs = opts.chunkSize;
    if (!Number.isInteger(Math.log2(cs)) || cs < 4096 || cs > 16 << 20) {
      throw new InvalidArgumentError(`chunk size ${cs} must be a power of two from 4 KiB to 16 MiB`);
    }
  }

  /** Seeds dedup with the chunks an existing image's blobs hold (the chunk dict). */
  addDict(blobs: readonly BlobTableEntry[], chunks: readonly ChunkTableEntry[]): number {
    let added = 0;
    for (const c of chunks) {
      const entry = blobs[c.blobIndex];
      if (!entry || entry.digester !== this.opts.digester || this.dedup.has(c.digest)) continue;
      this.dedup.set(c.digest, {
        blob: { kind: 'dict', entry }, ciIndex: c.index, digest: c.digest,
        compressedOffset: c.compressedOffset, compressedSize: c.compressedSize,
        uncompressedOffset: c.uncompressedOffset, uncompressedSize: c.uncompressedSize,
        compressed: (c.flags & CHUNK_FLAG_COMPRESSED) !== 0,
      });
      added++;
    }
    return added;
  }

  sinkForLayer(layer: number): ChunkSink<ChunkedContent> {
    return { storeFile: (size, segments) => this.storeFile(layer, size, segments) };
  }

  private writer(layer: number): BlobWriter {
    let w = this.writers.get(layer);
    if (!w) {
      if (this.closed.has(layer)) throw new Error(`internal: chunk for layer ${layer} after its blob was finished`);
      w = new BlobWriter(this.opts.outDir, this.opts.compressor, this.opts.digester, this.opts.chunkSize, {
        ...(this.opts.durable !== undefined ? { durable: this.opts.durable } : {}),
        ...(this.opts.stages ? { stages: this.opts.stages } : {}),
      });
      this.writers.set(layer, w);
    }
    return w;
  }

  private async admit(bytes: number): Promise<void> {
    const limit = this.opts.maxInFlightBytes ?? Math.max(64 << 20, this.opts.chunkSize * this.pool.size * 4);
    while (this.inFlightBytes > 0 && this.inFlightBytes + bytes > limit) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    if (this.failure) throw this.failure;
    this.inFlightBytes += bytes;
  }

  private release(bytes: number): void {
    this.inFlightBytes -= bytes;
    while (this.waiters.length) this.waiters.shift()!();
  }

  /** Resolves as soon as the file is read; its chunk locations are filled in by flush(). */
  private async storeFile(layer: number, size: number, segments: AsyncIterable<Segment>): Promise<ChunkedContent> {
    const cs = this.opts.chunkSize;
    const content: ChunkedContent = { kind: 'chunks', chunks: new Array(Math.ceil(size / cs)).fill(null) };
    // `filled`: bytes of the chunk written so far; segments come in offset order, and what they
    // skip (holes inside a chunk) is zeroed here, as the buffer is not zero-filled. Its bytes
    // are admitted (counted in flight) before its buffer is taken from the pool.
    let cur: { index: number; buf: Buffer; filled: number } | undefined;
    let submitted = 0;
    const emit = () => {
      if (!cur) return;
      const c = cur;
      cur = undefined;
      if (c.filled < c.buf.length) c.buf.fill(0, c.filled);
      submitted++;
      this.submit(layer, content, c.index, c.buf);
    };
    try {
      for await (const seg of segments) {
        let off = seg.offset;
        let pos = 0;
        if (off + seg.data.length > size) throw new InvalidArgumentError(`segment at ${off}+${seg.data.length} beyond file size ${size}`);
        while (pos < seg.data.length) {
          const index = Math.floor(off / cs);
          if (!cur || cur.index !== index) {
            emit();
            const len = Math.min(cs, size - index * cs);
            await this.admit(len);
            // Small chunks share a batch buffer, large ones own theirs: either way it goes to a
            // worker as it is, never copied.
            cur = { index, buf: this.pool.alloc(len), filled: 0 };
          }
          const within = off - index * cs;
          if (within > cur.filled) cur.buf.fill(0, cur.filled, within);
          const n = Math.min(cur.buf.length - within, seg.data.length - pos);
          seg.data.copy(cur.buf, within, pos, pos + n);
          cur.filled = Math.max(cur.filled, within + n);
          pos += n;
          off += n;
        }
        this.progress.bytesIn += seg.data.length;
      }
      emit();
    } catch (err) {
      // The chunk being filled never goes: its batch must not wait for it, nor the in-flight count.
      if (cur) {
        this.pool.release(cur.buf);
        this.release(cur.buf.length);
        cur = undefined;
      }
      throw err;
    }
    // Chunks no segment touched are holes in the source; they are never read or sent, but
    // they are chunks of the file all the same (dedupRatio = (chunks - holes) / unique).
    const untouched = content.chunks.length - submitted;
    this.progress.chunks += untouched;
    this.progress.holeChunks += untouched;
    return content;
  }

  /** Sends an admitted chunk to the workers; its commit joins the ordered tail. */
  private submit(layer: number, content: ChunkedContent, index: number, buf: Buffer): void {
    const length = buf.length;
    const job = this.pool.run(buf, this.opts.compressor, this.opts.level, this.opts.digester);
    job.catch(() => undefined);
    this.progress.chunks++;
    this.commitTail = this.commitTail.then(async () => {
      try {
        if (this.failure) return;
        content.chunks[index] = await this.commit(layer, await job, length);
      } catch (err) {
        this.failure ??= err;
      } finally {
        this.release(length);
      }
    });
  }

  private async commit(layer: number, r: ChunkJobResult, length: number): Promise<ChunkLocation | null> {
    this.opts.stages?.add('digest', length, r.digestMs);
    if (!r.zero) this.opts.stages?.add('compress', length, r.compressMs, r.storedLength);
    if (r.zero) {
      this.progress.holeChunks++;
      return null;
    }
    const known = this.dedup.get(r.digest);
    if (known) {
      if (known.blob.kind === 'dict') this.dictBlobsUsed.add(known.blob.entry);
      return known;
    }
    const writer = this.writer(layer);
    if (!r.stored) throw new Error('chunk worker returned no bytes for a non-zero chunk');
    const stored = new Uint8Array(r.stored, r.storedOffset, r.storedLength);
    const w = await writer.append(stored, length, r.compressed, r.digest);
    const loc: ChunkLocation = {
      blob: { kind: 'layer', layer, writer }, ciIndex: w.index, digest: r.digest,
      compressedOffset: w.compressedOffset, compressedSize: w.compressedSize,
      uncompressedOffset: w.uncompressedOffset, uncompressedSize: w.uncompressedSize, compressed: w.compressed,
    };
    this.dedup.set(r.digest, loc);
    this.progress.uniqueChunks++;
    this.progress.storedBytes += stored.length;
    this.opts.onProgress?.(this.progress);
    return loc;
  }

  /** Waits for every submitted chunk to be committed; rethrows the first failure. */
  async flush(): Promise<void> {
    await this.commitTail;
    if (this.failure) throw this.failure;
  }

  /**
   * Finishes layer `layer`'s blob once every chunk submitted so far is committed: call it when
   * the layer has been read, before any chunk of a later layer is submitted, and its blob can be
   * uploaded while the next layers build. Resolves undefined for a layer that stored nothing
   * (all its chunks deduplicated, or no file data); rejects with the build's first failure.
   */
  finishLayer(layer: number): Promise<FinishedBlob | undefined> {
    let done = this.finished.get(layer);
    if (done) return done;
    const tail = this.commitTail.then(async () => {
      this.closed.add(layer);
      if (this.failure) throw this.failure;
      const w = this.writers.get(layer);
      if (!w) return undefined;
      if (w.chunkCount > 0) return w.finish();
      await w.abort();
      return undefined;
    });
    done = tail;
    done.catch(() => undefined); // awaited by finish() or the caller; the failure also lands in this.failure
    this.finished.set(layer, done);
    // Later commits wait for the finish (a blob is finished before the next layer's chunks land);
    // its failure is the build's failure.
    this.commitTail = tail.then(() => undefined, (err: unknown) => { this.failure ??= err; });
    return done;
  }

  /** Finishes every layer blob that received chunks (those finishLayer has not), in layer order. */
  async finish(): Promise<Map<BlobWriter, FinishedBlob>> {
    await this.flush();
    const out = new Map<BlobWriter, FinishedBlob>();
    for (const layer of [...new Set([...this.writers.keys(), ...this.finished.keys()])].sort((a, b) => a - b)) {
      const f = await this.finishLayer(layer);
      if (f) out.set(this.writers.get(layer)!, f);
    }
    return out;
  }

  async abort(): Promise<void> {
    await this.commitTail.catch(() => undefined);
    await Promise.all([...this.writers.values()].map((w) => w.abort()));
  }
}
