// Writes a blob's uncompressed image (what a kernel cache file must hold: each chunk at its
// uncompressed offset, holes elsewhere), verifying every chunk before it is written. A chunk
// that fails verification is reported and its range stays a hole.
import { open } from 'node:fs/promises';
import type { Bootstrap } from '../format/bootstrap.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import type { BlobSource } from './blob-source.js';
import { loadBlobChunkMap } from './blob-chunk-map.js';
import { ChunkReader } from './chunk-reader.js';
import type { DecodePool } from './decode-pool.js';

export interface UnpackProgress {
  blobId: string;
  chunksDone: number;
  chunkCount: number;
  bytesWritten: number;
}

export interface UnpackResult {
  blobId: string;
  path: string;
  uncompressedSize: number;
  chunks: number;
  bytesWritten: number;
  failures: Error[];
}

export interface UnpackOptions {
  /** Compressed bytes per source read batch. */
  batchBytes?: number;
  concurrency?: number;
  /** Worker threads for decoding large chunks (see ChunkReaderOptions.pool). */
  pool?: DecodePool;
  onProgress?: (p: UnpackProgress) => void;
}

export async function unpackBlob(
  bootstrap: Bootstrap, entry: BlobTableEntry, source: BlobSource, outPath: string, opts: UnpackOptions = {},
): Promise<UnpackResult> {
  const map = await loadBlobChunkMap(source, entry, bootstrap.chunkTable);
  const reader = new ChunkReader(source, map, opts.pool ? { pool: opts.pool } : {});
  const fh = await open(outPath, 'w');
  const result: UnpackResult = { blobId: entry.blobId, path: outPath, uncompressedSize: entry.uncompressedSize, chunks: map.chunks.length, bytesWritten: 0, failures: [] };
  try {
    await fh.truncate(entry.uncompressedSize);
    const byCompressed = [...map.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
    const batchBytes = opts.batchBytes ?? 8 << 20;
    const batches: (typeof byCompressed)[] = [];
    let cur: typeof byCompressed = [];
    let curBytes = 0;
    for (const c of byCompressed) {
      if (cur.length && curBytes + c.compressedSize > batchBytes) { batches.push(cur); cur = []; curBytes = 0; }
      cur.push(c);
      curBytes += c.compressedSize;
    }
    if (cur.length) batches.push(cur);
    let done = 0;
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        await reader.fetch(batch, async ({ chunk, data }) => {
          await fh.write(data, 0, data.length, chunk.uncompressedOffset);
          result.bytesWritten += data.length;
        }, { onError: (_c, err) => result.failures.push(err) });
        done += batch.length;
        opts.onProgress?.({ blobId: entry.blobId, chunksDone: done, chunkCount: map.chunks.length, bytesWritten: result.bytesWritten });
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency ?? 2 }, worker));
    await fh.sync();
  } finally {
    await fh.close();
  }
  return result;
}
