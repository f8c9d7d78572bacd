// Writes one data blob: chunk data appended in commit order, then the chunk-info table (v1)
// with inlined digests and the 4096-byte header. The file is named by its sha256 once done,
// so a blob's name always proves its content.
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { alignUp } from '../format/bytes.js';
import {
  BLOB_FEATURE_ALIGNED, BLOB_FEATURE_INLINED_CHUNK_DIGEST, BLOCK_SIZE, Compressor,
} from '../format/constants.js';
import { encodeBlobMetaHeader } from '../format/blob-meta-header.js';
import { CHUNK_INFO_V1_SIZE, encodeChunkInfoV1, type ChunkInfo } from '../format/chunk-info.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import type { StageClock } from './stages.js';

export interface WrittenChunk extends ChunkInfo {
  index: number;
  digest: string;
}

export interface FinishedBlob {
  blobId: string;
  path: string;
  entry: Omit<BlobTableEntry, 'blobIndex'>;
  chunks: WrittenChunk[];
}

export const BLOB_DIGEST_SIZE = 32;
const WRITE_BATCH = 4 << 20;

export class BlobWriter {
  private fh: FileHandle | undefined;
  private readonly tmpPath: string;
  private readonly hash = createHash('sha256');
  /** Bytes queued for the file (each owned by this writer: chunk buffers are never reused). */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private compressedEnd = 0;
  private uncompressedEnd = 0;
  readonly chunks: WrittenChunk[] = [];

  /**
   * `durable` false skips the fsync at the end: for scratch blobs that are uploaded and deleted
   * (convert), where a crash loses nothing worth keeping.
   */
  constructor(readonly dir: string, readonly compressor: Compressor, readonly digester: number, readonly chunkSize: number,
    private readonly extra: { durable?: boolean; stages?: StageClock } = {}) {
    this.tmpPath = join(dir, `.tmp-blob-${randomBytes(6).toString('hex')}`);
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  /**
   * Queues bytes for the file. Chunks are written in batches of about WRITE_BATCH bytes: one
   * write per chunk costs a thread-pool round trip each (most chunks of real trees are small
   * files), and the commit of the next chunk would wait for it.
   */
  private async write(buf: Uint8Array): Promise<void> {
    const t = performance.now();
    this.hash.update(buf);
    this.extra.stages?.add('hash', buf.length, performance.now() - t);
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (this.pendingBytes >= WRITE_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const bufs = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const t = performance.now();
    this.fh ??= await open(this.tmpPath, 'w');
    let { bytesWritten: done } = await this.fh.writev(bufs);
    this.extra.stages?.add('write', total, performance.now() - t);
    if (done === total) return;
    const rest = Buffer.concat(bufs, total); // a short write (rare): finish it plainly
    while (done < total) {
      const { bytesWritten } = await this.fh.write(rest, done, total - done);
      done += bytesWritten;
    }
  }

  /** Appends a chunk; `stored` is the compressed form, or the raw data when it did not shrink. */
  async append(stored: Uint8Array, uncompressedSize: number, compressed: boolean, digest: string): Promise<WrittenChunk> {
    const c: WrittenChunk = {
      index: this.chunks.length,
      compressedOffset: this.compressedEnd,
      compressedSize: stored.length,
      uncompressedOffset: this.uncompressedEnd,
      uncompressedSize,
      compressed,
      digest,
    };
    await this.write(stored);
    this.chunks.push(c);
    this.compressedEnd += stored.length;
    this.uncompressedEnd += alignUp(uncompressedSize, BLOCK_SIZE);
    return c;
  }

  /** Writes the meta section, names the blob by its sha256 and returns its table entry. */
  async finish(): Promise<FinishedBlob> {
    const n = this.chunks.length;
    const table = Buffer.alloc(n * (CHUNK_INFO_V1_SIZE + BLOB_DIGEST_SIZE));
    this.chunks.forEach((c, i) => {
      encodeChunkInfoV1(table, i * CHUNK_INFO_V1_SIZE, c);
      table.write(c.digest, n * CHUNK_INFO_V1_SIZE + i * BLOB_DIGEST_SIZE, 'hex');
    });
    const features = BLOB_FEATURE_ALIGNED | BLOB_FEATURE_INLINED_CHUNK_DIGEST;
    const ciOffset = this.compressedEnd;
    await this.write(table);
    await this.write(encodeBlobMetaHeader({
      features, ciCompressor: Compressor.None, ciEntries: n, ciOffset,
      ciCompressedSize: table.length, ciUncompressedSize: table.length,
    }));
    await this.flush();
    if (this.extra.durable !== false) {
      const t = performance.now();
      await this.fh!.sync();
      this.extra.stages?.add('write', 0, performance.now() - t);
    }
    await this.fh!.close();
    this.fh = undefined;
    const blobId = this.hash.digest('hex');
    const path = join(this.dir, blobId);
    await rename(this.tmpPath, path);
    const compressedSize = ciOffset + table.length + 4096;
    return {
      blobId,
      path,
      chunks: this.chunks,
      entry: {
        blobId, chunkSize: this.chunkSize, chunkCount: n, compressor: this.compressor, digester: this.digester,
        features, compressedSize, uncompressedSize: this.uncompressedEnd, tocSize: 0,
        ciCompressor: Compressor.None, ciOffset, ciCompressedSize: table.length, ciUncompressedSize: table.length,
        tocDigest: '', metaDigest: '', metaSize: 0,
      },
    };
  }

  async abort(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh?.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}
