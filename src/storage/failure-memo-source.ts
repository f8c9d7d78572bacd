// Remembers a source's failures for a while, so a stream of kernel READs of something that
// cannot be had (a blob the registry does not have, credentials it refuses, bytes that keep
// failing verification) becomes one request and many prompt errors, not a request per READ.
// A failure of the whole blob (not found, auth, denied) is remembered for the blob; any other
// for its exact range. Failures worth retrying are remembered only briefly once the retries
// are spent: the source may be back in a moment (a restarted registry).
import type { BlobSource } from './blob-source.js';

export interface FailureMemoOptions {
  /** How long a permanent failure is remembered (default 30 s). */
  permanentMs?: number;
  /** How long a failure that outlived its retries is remembered (default 2 s). */
  transientMs?: number;
  /** Whether an error was worth retrying (then it is transient). */
  isRetryable: (err: unknown) => boolean;
  now?: () => number;
}

/** Codes that say the whole blob cannot be had, whichever range is asked. */
const BLOB_WIDE = new Set(['ONDINE_ERR_NOT_FOUND', 'ONDINE_ERR_AUTH', 'ONDINE_ERR_DENIED']);

interface Memo { err: Error; until: number }

export class FailureMemoSource implements BlobSource {
  readonly description: string;
  readonly cancellable: boolean | undefined;
  readonly refetchCorrupt: boolean | undefined;
  private readonly memos = new Map<string, Memo>();

  constructor(private readonly inner: BlobSource, private readonly opts: FailureMemoOptions) {
    this.description = inner.description;
    this.cancellable = inner.cancellable;
    this.refetchCorrupt = inner.refetchCorrupt;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private lookup(key: string): Error | undefined {
    const m = this.memos.get(key);
    if (!m) return undefined;
    if (m.until > this.now()) return m.err;
    this.memos.delete(key);
    return undefined;
  }

  private remember(key: string, err: Error, ms: number): void {
    // Bounded: a storm over many distinct ranges must not grow this without limit.
    if (this.memos.size >= 4096) {
      const now = this.now();
      for (const [k, m] of this.memos) if (m.until <= now) this.memos.delete(k);
      if (this.memos.size >= 4096) this.memos.delete(this.memos.keys().next().value!);
    }
    this.memos.set(key, { err, until: this.now() + ms });
  }

  private record(blobId: string, rangeKey: string, err: unknown, signal?: AbortSignal): void {
    if (signal?.aborted || !(err instanceof Error)) return;
    const code = (err as { code?: unknown }).code;
    const wide = typeof code === 'string' && BLOB_WIDE.has(code);
    const ms = this.opts.isRetryable(err) ? (this.opts.transientMs ?? 2_000) : (this.opts.permanentMs ?? 30_000);
    this.remember(wide ? blobId : rangeKey, err, ms);
  }

  async read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const rangeKey = `${blobId}\0${offset}\0${length}`;
    const known = this.lookup(blobId) ?? this.lookup(rangeKey);
    if (known) throw known;
    try {
      return await this.inner.read(blobId, offset, length, signal);
    } catch (err) {
      this.record(blobId, rangeKey, err, signal);
      throw err;
    }
  }

  async size(blobId: string): Promise<number> {
    const known = this.lookup(blobId);
    if (known) throw known;
    try {
      return await this.inner.size(blobId);
    } catch (err) {
      this.record(blobId, `${blobId}\0size`, err);
      throw err;
    }
  }

  failed(blobId: string, offset: number, length: number, err: Error): void {
    this.remember(`${blobId}\0${offset}\0${length}`, err, this.opts.permanentMs ?? 30_000);
    this.inner.failed?.(blobId, offset, length, err);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
