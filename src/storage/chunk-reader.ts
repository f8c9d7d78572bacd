// Fetch → decompress → verify for a set of chunks of one blob. Adjacent compressed ranges are
// merged into one source read (a registry round trip costs ~3.6 ms here; a few KiB of gap
// costs nothing). Nothing leaves this module unverified.
import type { BlobSource } from './blob-source.js';
import type { BlobChunk, BlobChunkMap } from './blob-chunk-map.js';
import { decodeChunk, type ChunkDecodeSpec } from './chunk-decode.js';
import { codecById } from './codecs.js';
import type { DecodePool } from './decode-pool.js';
import { digesterById } from './digests.js';
import type { FillClass, FillScheduler } from './fill-scheduler.js';

/** Bytes that did not decode or verify (as opposed to a source or worker failure). */
function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'ONDINE_ERR_DIGEST_MISMATCH' || code === 'ONDINE_ERR_CORRUPT';
}

export interface SourceRead {
  offset: number;
  length: number;
  chunks: BlobChunk[];
}

export interface VerifiedChunk {
  chunk: BlobChunk;
  data: Buffer;
}

/** Groups chunks (any order) into source reads; gaps up to `maxGap` bytes are read through. */
export function planReads(chunks: readonly BlobChunk[], maxGap = 64 << 10, maxRead = 16 << 20): SourceRead[] {
  const sorted = [...chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
  const reads: SourceRead[] = [];
  let cur: SourceRead | undefined;
  for (const c of sorted) {
    const end = c.compressedOffset + c.compressedSize;
    if (cur && c.compressedOffset >= cur.offset + cur.length && c.compressedOffset - (cur.offset + cur.length) <= maxGap && end - cur.offset <= maxRead) {
      cur.length = end - cur.offset;
      cur.chunks.push(c);
    } else if (cur && c.compressedOffset < cur.offset + cur.length) {
      // Chunks sharing compressed bytes (never written by our builder, but legal): extend.
      cur.length = Math.max(cur.length, end - cur.offset);
      cur.chunks.push(c);
    } else {
      cur = { offset: c.compressedOffset, length: c.compressedSize, chunks: [c] };
      reads.push(cur);
    }
  }
  return reads;
}

export interface ChunkReaderOptions {
  /** Refuse chunks without a known digest (default true). */
  requireDigest?: boolean;
  maxGap?: number;
  /**
   * Worker threads to decode large chunks on (shared by many readers). Without one, or once
   * it is closed or broken, every chunk decodes on the calling thread.
   */
  pool?: DecodePool;
  /**
   * Chunks of at least this many uncompressed bytes go to the pool (default 128 KiB): below
   * that, the round trip to a worker costs more than the decode it saves.
   */
  poolMinBytes?: number;
  /**
   * The daemon's fill scheduler: every source read waits there for a slot of its source's
   * connection budget, by class. Without one, reads go straight to the source.
   */
  scheduler?: FillScheduler;
}

export const DEFAULT_POOL_MIN_BYTES = 128 << 10;

export class ChunkReader {
  private readonly poolMinBytes: number;

  constructor(readonly source: BlobSource, readonly map: BlobChunkMap, private readonly opts: ChunkReaderOptions = {}) {
    // Unknown ids fail here, once, not on every chunk.
    codecById(map.entry.compressor);
    digesterById(map.entry.digester);
    this.poolMinBytes = opts.poolMinBytes ?? DEFAULT_POOL_MIN_BYTES;
  }

  /** What decodeChunk needs to know about `chunk` (also what a decode worker is sent). */
  spec(chunk: BlobChunk): ChunkDecodeSpec {
    return {
      blobId: this.map.blobId,
      chunkIndex: chunk.index,
      codec: chunk.compressed ? this.map.entry.compressor : 0,
      digester: this.map.entry.digester,
      uncompressedSize: chunk.uncompressedSize,
      digest: chunk.digest,
      requireDigest: this.opts.requireDigest !== false,
    };
  }

  /**
   * Decompresses and verifies one chunk's compressed bytes on this thread; into `into`
   * (exactly the chunk's uncompressed size) when given, else into new memory. Either way the
   * returned bytes are only handed on once verified.
   */
  verify(chunk: BlobChunk, compressed: Uint8Array, into?: Uint8Array): Buffer {
    return decodeChunk(this.spec(chunk), compressed, into);
  }

  /** One source read, through the scheduler when there is one (keyed by the source). */
  private read(offset: number, length: number, cls: FillClass, signal?: AbortSignal): Promise<Buffer> {
    const sched = this.opts.scheduler;
    if (!sched) return this.source.read(this.map.blobId, offset, length, signal);
    return sched.run(this.source, cls, length, () => this.source.read(this.map.blobId, offset, length, signal), signal);
  }

  private offloads(chunk: BlobChunk): boolean {
    const pool = this.opts.pool;
    return pool !== undefined && pool.usable && chunk.uncompressedSize >= this.poolMinBytes;
  }

  /**
   * verify() on a worker thread. Worker memory comes back transferred; a caller's slot
   * (`into`) cannot be transferred, so the verified bytes are copied into it.
   */
  private async verifyOffThread(chunk: BlobChunk, compressed: Uint8Array, into?: (chunk: BlobChunk) => Uint8Array | undefined): Promise<Buffer> {
    const data = await this.opts.pool!.decode(this.spec(chunk), compressed);
    const slot = into?.(chunk);
    if (!slot || slot.length !== data.length) return data;
    slot.set(data);
    return Buffer.from(slot.buffer, slot.byteOffset, slot.byteLength);
  }

  /**
   * Fetches and verifies `chunks`. Each verified chunk is handed to `onChunk` as soon as it is
   * verified, and onChunk is awaited: calls for the chunks of one source read never overlap.
   * With a pool, large chunks decode on worker threads while small ones decode here, so
   * chunks may arrive in any order. A bad chunk goes to `onError` when given; otherwise the
   * call rejects with the first failure after the good chunks were delivered.
   */
  async fetch(
    chunks: readonly BlobChunk[],
    onChunk: (v: VerifiedChunk) => void | Promise<void>,
    opts: {
      signal?: AbortSignal;
      onError?: (chunk: BlobChunk, err: Error) => void;
      /** Where to decompress a chunk (its uncompressed size), e.g. its slot in a write buffer. */
      into?: (chunk: BlobChunk) => Uint8Array | undefined;
      /** Overrides the reader's gap bridging for this call (0: only back-to-back chunks share a read). */
      maxGap?: number;
      /**
       * Chunks a reader is waiting for: decoded on this thread at once, since a worker round
       * trip adds latency to the one read that matters; the pool takes the rest (read-ahead),
       * where throughput counts.
       */
      urgent?: (chunk: BlobChunk) => boolean;
      /** The class of this call's source reads for the scheduler (default 'demand'). */
      fillClass?: FillClass;
      /** Compressed bytes one source read may span at most (default 16 MiB). */
      maxRead?: number;
    } = {},
  ): Promise<void> {
    const errors: Error[] = [];
    const fail = (c: BlobChunk, err: Error) => (opts.onError ? opts.onError(c, err) : errors.push(err));
    const cls = opts.fillClass ?? 'demand';
    await Promise.all(planReads(chunks, opts.maxGap ?? this.opts.maxGap, opts.maxRead).map(async (r) => {
      let bytes: Buffer;
      try {
        bytes = await this.read(r.offset, r.length, cls, opts.signal);
      } catch (err) {
        for (const c of r.chunks) fail(c, err as Error);
        return;
      }
      const slice = (b: Buffer, c: BlobChunk) => b.subarray(c.compressedOffset - r.offset, c.compressedOffset - r.offset + c.compressedSize);
      // Bytes from a source that may corrupt them in transit (a proxy, a cut body) are read
      // once more when a chunk fails to verify; one refetch serves every chunk of the read.
      let refetched: Promise<Buffer> | undefined;
      const again = async (c: BlobChunk, err: unknown, decode: (b: Uint8Array) => Buffer | Promise<Buffer>): Promise<Buffer> => {
        if (!this.source.refetchCorrupt || !isCorruption(err) || opts.signal?.aborted) throw err;
        refetched ??= this.read(r.offset, r.length, cls, opts.signal);
        try {
          return await decode(slice(await refetched, c));
        } catch (err2) {
          if (isCorruption(err2)) this.source.failed?.(this.map.blobId, c.compressedOffset, c.compressedSize, err2 as Error);
          throw err2;
        }
      };
      // One delivery at a time per read: each waits for the one before (back-pressure), and
      // once a delivery fails, later ones of this read are not made.
      let chain: Promise<void> = Promise.resolve();
      const deliver = (chunk: BlobChunk, data: Buffer) => (chain = chain.then(() => onChunk({ chunk, data })));
      const pending: Promise<void>[] = [];
      // Large chunks go to the workers first (the pool queues them), so the small ones
      // decoded here overlap with them.
      const local: BlobChunk[] = [];
      for (const c of r.chunks) {
        if (!this.offloads(c) || opts.urgent?.(c)) {
          local.push(c);
          continue;
        }
        const off = (b: Uint8Array) => this.verifyOffThread(c, b, opts.into);
        pending.push(off(slice(bytes, c)).catch((err: unknown) => again(c, err, off)).then((data) => deliver(c, data), (err: Error) => { fail(c, err); }));
      }
      for (const c of local) {
        let data: Buffer;
        try {
          data = this.verify(c, slice(bytes, c), opts.into?.(c));
        } catch (err) {
          try {
            data = await again(c, err, (b) => this.verify(c, b, opts.into?.(c)));
          } catch (err2) {
            fail(c, err2 as Error);
            continue;
          }
        }
        const d = deliver(c, data);
        pending.push(d);
        try {
          await d;
        } catch {
          break;
        }
      }
      for (const s of await Promise.allSettled(pending)) if (s.status === 'rejected') throw s.reason;
    }));
    if (errors.length) throw errors[0];
  }
}
