// One blob's chunks: where each lives compressed and uncompressed, and the digest it must
// hash to. Loaded once per blob (one range read of its chunk-info table) and then answers
// "which chunks cover this uncompressed range" by binary search. Built cheaply, since a mount
// starts it for every blob: entries decoded without BigInts, the bootstrap's chunk table read
// in place (no object per entry), digests kept as views into the tables read and compared as
// bytes (hex is spelled only for a chunk being fetched).
import { CorruptError } from '../errors.js';
import {
  BLOB_FEATURE_CHUNK_INFO_V2, BLOB_FEATURE_INLINED_CHUNK_DIGEST, CHUNK_FLAG_COMPRESSED, Compressor,
} from '../format/constants.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import { ChunkTable, type ChunkTableEntry } from '../format/chunk-table.js';
import {
  CHUNK_INFO_V1_SIZE, CHUNK_INFO_V2_SIZE, chunkInfoV1At, chunkInfoV2At, type ChunkInfo,
} from '../format/chunk-info.js';
import { codecById } from './codecs.js';
import type { BlobSource } from './blob-source.js';

export const DIGEST_SIZE = 32;
const MAX_CHUNK = 16 << 20;

export interface BlobChunk extends ChunkInfo {
  /** Index in the blob's chunk-info table. */
  index: number;
  /** Hex digest the chunk must hash to; undefined when the image records none. */
  readonly digest: string | undefined;
}

export class BlobChunkMap {
  /** Chunks ordered by uncompressed offset. */
  readonly chunks: readonly BlobChunk[];

  constructor(readonly entry: BlobTableEntry, chunks: BlobChunk[]) {
    this.chunks = [...chunks].sort((a, b) => a.uncompressedOffset - b.uncompressedOffset);
    let end = 0;
    for (const c of this.chunks) {
      const what = `blob ${entry.blobId} chunk ${c.index}`;
      if (c.uncompressedSize < 1 || c.uncompressedSize > MAX_CHUNK || c.compressedSize < 1 || c.compressedSize > MAX_CHUNK) {
        throw new CorruptError('blob chunk info', c.index, `${what}: sizes ${c.compressedSize}/${c.uncompressedSize} out of range`);
      }
      if (c.uncompressedOffset < end) throw new CorruptError('blob chunk info', c.index, `${what}: overlaps the previous chunk`);
      end = c.uncompressedOffset + c.uncompressedSize;
      if (end > entry.uncompressedSize) throw new CorruptError('blob chunk info', c.index, `${what}: ends at ${end}, past the blob's uncompressed size ${entry.uncompressedSize}`);
      if (entry.compressedSize && c.compressedOffset + c.compressedSize > entry.compressedSize) {
        throw new CorruptError('blob chunk info', c.index, `${what}: compressed range past the blob's size ${entry.compressedSize}`);
      }
    }
  }

  get blobId(): string {
    return this.entry.blobId;
  }

  /** Chunks overlapping [offset, offset + length) of the uncompressed blob. */
  covering(offset: number, length: number): BlobChunk[] {
    if (length <= 0) return []; // an empty range overlaps nothing (the scan below would return its chunk)
    const end = offset + length;
    const cs = this.chunks;
    let lo = 0;
    let hi = cs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = cs[mid]!;
      if (c.uncompressedOffset + c.uncompressedSize <= offset) lo = mid + 1;
      else hi = mid;
    }
    const out: BlobChunk[] = [];
    for (let i = lo; i < cs.length && cs[i]!.uncompressedOffset < end; i++) out.push(cs[i]!);
    return out;
  }

  /** Position of a chunk in `chunks` (for read-ahead: the chunks that follow it); -1 if not there. */
  position(chunk: BlobChunk): number {
    // A binary search: it runs on every READ, and chunks are ordered by their distinct offsets.
    const cs = this.chunks;
    let lo = 0;
    let hi = cs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cs[mid]!.uncompressedOffset < chunk.uncompressedOffset) lo = mid + 1;
      else hi = mid;
    }
    return cs[lo] === chunk ? lo : -1;
  }
}

/**
 * A chunk as the map holds it: its digest kept as bytes (a view into the chunk-info or chunk
 * table read) and spelled in hex only when asked, which is when the chunk is fetched.
 */
class MapChunk implements BlobChunk {
  constructor(
    readonly index: number,
    readonly compressedOffset: number,
    readonly compressedSize: number,
    readonly uncompressedOffset: number,
    readonly uncompressedSize: number,
    readonly compressed: boolean,
    private digestRaw: Uint8Array | undefined,
  ) {}

  get digest(): string | undefined {
    return this.digestRaw === undefined ? undefined : Buffer.from(this.digestRaw.buffer, this.digestRaw.byteOffset, DIGEST_SIZE).toString('hex');
  }

  get digestBytes(): Uint8Array | undefined {
    return this.digestRaw;
  }

  setDigest(bytes: Uint8Array): void {
    this.digestRaw = bytes;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodeCiTable(entry: BlobTableEntry, raw: Uint8Array, base: number): MapChunk[] {
  const v2 = (entry.features & BLOB_FEATURE_CHUNK_INFO_V2) !== 0;
  const size = v2 ? CHUNK_INFO_V2_SIZE : CHUNK_INFO_V1_SIZE;
  const n = entry.chunkCount;
  if (n * size > raw.length) {
    throw new CorruptError('blob chunk-info table', base, `${n} entries of ${size} bytes do not fit ${raw.length} bytes`);
  }
  // Digests inlined right after the entries, when the table has room for them.
  const inlined = (entry.features & BLOB_FEATURE_INLINED_CHUNK_DIGEST) !== 0 && raw.length >= n * (size + DIGEST_SIZE);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: MapChunk[] = new Array<MapChunk>(n);
  for (let i = 0; i < n; i++) {
    const info = v2 ? chunkInfoV2At(dv, i * size, base) : chunkInfoV1At(dv, i * size, base);
    const digest = inlined ? raw.subarray(n * size + i * DIGEST_SIZE, n * size + (i + 1) * DIGEST_SIZE) : undefined;
    out[i] = new MapChunk(i, info.compressedOffset, info.compressedSize, info.uncompressedOffset, info.uncompressedSize, info.compressed, digest);
  }
  return out;
}

/** Positions in `table` of blob `blobIndex`'s entries, by chunk-info index (the last one wins, as a map would). */
function bootstrapEntriesOf(table: ChunkTable, blobIndex: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const i of table.positionsOf(blobIndex)) out.set(table.ciIndex(i), i);
  return out;
}

/**
 * Loads a blob's chunk map: the chunk-info table from the blob (one range read), digests from
 * the table itself when inlined, else from the bootstrap's chunk table. A blob without a
 * chunk-info table falls back to the bootstrap's chunk table alone. The bootstrap's table is
 * read in place (a ChunkTable; an array of decoded entries is taken too, for tools and tests).
 */
export async function loadBlobChunkMap(
  source: BlobSource,
  entry: BlobTableEntry,
  bootstrapChunks: ChunkTable | readonly ChunkTableEntry[],
  signal?: AbortSignal,
): Promise<BlobChunkMap> {
  const table = bootstrapChunks instanceof ChunkTable ? bootstrapChunks : ChunkTable.fromEntries(bootstrapChunks);
  let chunks: MapChunk[];
  if (entry.ciCompressedSize > 0 && entry.chunkCount > 0) {
    if (entry.ciCompressedSize > 256 << 20 || entry.ciUncompressedSize > 256 << 20) {
      throw new CorruptError('RAFS blob table', 0, `chunk-info table of ${entry.ciUncompressedSize} bytes is implausible`);
    }
    const raw = await source.read(entry.blobId, entry.ciOffset, entry.ciCompressedSize, signal);
    const decoded = entry.ciCompressor === Compressor.None
      ? raw
      : codecById(entry.ciCompressor).decompress(raw, entry.ciUncompressedSize);
    chunks = decodeCiTable(entry, decoded, entry.ciOffset);
    const fromBootstrap = bootstrapEntriesOf(table, entry.blobIndex);
    for (const [ci, at] of fromBootstrap) {
      const c = chunks[ci];
      if (!c) continue;
      if (table.uncompressedOffset(at) !== c.uncompressedOffset || table.compressedOffset(at) !== c.compressedOffset || table.compressedSize(at) !== c.compressedSize) {
        throw new CorruptError('blob chunk-info table', entry.ciOffset, `chunk ${c.index} of blob ${entry.blobId} disagrees with the bootstrap's chunk table`);
      }
      const own = c.digestBytes;
      if (own === undefined) c.setDigest(table.digestBytes(at));
      else if (!sameBytes(own, table.digestBytes(at))) throw new CorruptError('blob chunk-info table', entry.ciOffset, `chunk ${c.index} digest disagrees with the bootstrap's chunk table`);
    }
  } else {
    chunks = [...bootstrapEntriesOf(table, entry.blobIndex).values()].map((at) => new MapChunk(
      table.ciIndex(at), table.compressedOffset(at), table.compressedSize(at), table.uncompressedOffset(at), table.uncompressedSize(at),
      (table.flags(at) & CHUNK_FLAG_COMPRESSED) !== 0, table.digestBytes(at),
    ));
  }
  return new BlobChunkMap(entry, chunks);
}
