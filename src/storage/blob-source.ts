// Where compressed blob bytes come from. Every backend (local directory, registry, http)
// answers the same question: these bytes of that blob, or a typed error.
export interface BlobSource {
  /** For logs and errors; never contains credentials. */
  readonly description: string;
  /**
   * False when read() ignores its signal (a local file read is not worth cancelling), so
   * callers need not make one. Absent means it is honoured.
   */
  readonly cancellable?: boolean;
  /** Reads exactly [offset, offset + length) of the blob's compressed bytes. */
  read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /** The blob's size in bytes. */
  size(blobId: string): Promise<number>;
  close?(): Promise<void>;
  /**
   * True when bytes that fail verification may be a transport fault (a proxy flipped a byte,
   * a body was cut short) rather than a bad blob: the chunk reader then reads them once more
   * before it gives up. Absent: a local file, whose bytes a second read would not change.
   */
  readonly refetchCorrupt?: boolean;
  /**
   * Told when the bytes of [offset, offset + length) failed verification even on a refetch:
   * a source that remembers failures answers the next reads of that range with `err` at
   * once instead of fetching it again.
   */
  failed?(blobId: string, offset: number, length: number, err: Error): void;
}

/** Bytes and requests served per blob, counted at the source (what laziness is judged by). */
export class SourceCounters {
  readonly bytes = new Map<string, number>();
  readonly requests = new Map<string, number>();
  add(blobId: string, length: number): void {
    this.bytes.set(blobId, (this.bytes.get(blobId) ?? 0) + length);
    this.requests.set(blobId, (this.requests.get(blobId) ?? 0) + 1);
  }
  totalBytes(): number {
    let n = 0;
    for (const v of this.bytes.values()) n += v;
    return n;
  }
  toJSON(): Record<string, { bytes: number; requests: number }> {
    const out: Record<string, { bytes: number; requests: number }> = {};
    for (const [id, bytes] of this.bytes) out[id] = { bytes, requests: this.requests.get(id) ?? 0 };
    return out;
  }
}
