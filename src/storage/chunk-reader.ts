// Fetch → decompress → verify for a set of chunks of one blob. Adjacent compressed ranges are
// merged into one source read (a registry round trip costs ~3.6 ms here; a few KiB of gap
// costs nothing). Nothing leaves this module unverified.
import type { BlobSource } from './blob-source.js';
import type { BlobChunk, BlobChunkMap } from './blob-chunk-map.js';
import { decodeChunk, type ChunkDecodeSpec } from './chunk-decode.js';
import { codecById } from './codecs.js';
import { digesterById } from './digests.js';

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
}

export class ChunkReader {
  constructor(readonly source: BlobSource, readonly map: BlobChunkMap, private readonly opts: ChunkReaderOptions = {}) {
    // Unknown ids fail here, once, not on every chunk.
    codecById(map.entry.compressor);
    digesterById(map.entry.digester);
  }

  /** What decodeChunk needs to know about `chunk`. */
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
   * Decompresses and verifies one chunk's compressed bytes; into `into` (exactly the chunk's
   * uncompressed size) when given, else into new memory. Either way the returned bytes are
   * only handed on once verified.
   */
  verify(chunk: BlobChunk, compressed: Uint8Array, into?: Uint8Array): Buffer {
    return decodeChunk(this.spec(chunk), compressed, into);
  }

  /**
   * Fetches and verifies `chunks`. Each verified chunk is handed to `onChunk` as soon as its
   * read completes. A bad chunk goes to `onError` when given; otherwise the call rejects with
   * the first failure after the good chunks were delivered.
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
    } = {},
  ): Promise<void> {
    const errors: Error[] = [];
    const fail = (c: BlobChunk, err: Error) => (opts.onError ? opts.onError(c, err) : errors.push(err));
    await Promise.all(planReads(chunks, opts.maxGap ?? this.opts.maxGap).map(async (r) => {
      let bytes: Buffer;
      try {
        bytes = await this.source.read(this.map.blobId, r.offset, r.length, opts.signal);
      } catch (err) {
        for (const c of r.chunks) fail(c, err as Error);
        return;
      }
      for (const c of r.chunks) {
        const at = c.compressedOffset - r.offset;
        let data: Buffer;
        try {
          data = this.verify(c, bytes.subarray(at, at + c.compressedSize), opts.into?.(c));
        } catch (err) {
          fail(c, err as Error);
          continue;
        }
        await onChunk({ chunk: c, data });
      }
    }));
    if (errors.length) throw errors[0];
  }
}
