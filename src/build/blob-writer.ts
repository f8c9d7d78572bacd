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

export class BlobWriter {
  private fh: FileHandle | undefined;
  private readonly tmpPath: string;
  private readonly hash = createHash('sha256');
  private compressedEnd = 0;
  private uncompressedEnd = 0;
  readonly chunks: WrittenChunk[] = [];

  constructor(readonly dir: string, readonly compressor: Compressor, readonly digester: number, readonly chunkSize: number) {
    this.tmpPath = join(dir, `.tmp-blob-${randomBytes(6).toString('hex')}`);
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  private async write(buf: Uint8Array): Promise<void> {
    this.fh ??= await open(this.tmpPath, 'w');
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, done, buf.length - done);
      done += bytesWritten;
    }
    this.hash.update(buf);
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
    await this.fh!.sync();
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
    await this.fh?.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}
