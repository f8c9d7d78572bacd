// Counts what a source served, per blob (bytes and requests), outside the source itself: what
// `ondine status` shows and laziness is judged by, the same for every kind of source.
import { type BlobSource, SourceCounters } from './blob-source.js';

export class CountingSource implements BlobSource {
  readonly description: string;
  readonly cancellable: boolean | undefined;
  readonly refetchCorrupt: boolean | undefined;

  constructor(private readonly inner: BlobSource, readonly counters = new SourceCounters()) {
    this.description = inner.description;
    this.cancellable = inner.cancellable;
    this.refetchCorrupt = inner.refetchCorrupt;
  }

  async read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const buf = await this.inner.read(blobId, offset, length, signal);
    this.counters.add(blobId, buf.length);
    return buf;
  }

  size(blobId: string): Promise<number> {
    return this.inner.size(blobId);
  }

  failed(blobId: string, offset: number, length: number, err: Error): void {
    this.inner.failed?.(blobId, offset, length, err);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
