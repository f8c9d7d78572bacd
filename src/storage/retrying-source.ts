// Retries a source's failed reads that are worth retrying (timeouts, resets, truncated bodies,
// 5xx, 429), with exponential backoff and full jitter, honouring a server's Retry-After; a
// digest mismatch reported by the source is retried once (a second one means the bytes are
// bad, not the wire). Everything else fails at once. The defaults ride out a registry
// restart (~1-3 s here): 6 retries of at least 0.1, 0.2, 0.4, 0.8, 1.6 and 2.5 s. The policy lives here, not in each
// source, so every backend retries alike.
import type { BlobSource } from './blob-source.js';

export interface RetryPolicy {
  /** Attempts after the first (default 6). */
  retries?: number;
  /** First backoff in ms (default 200); doubled each attempt, up to maxDelayMs (default 5 s); half of it is jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * No retry is started past this many ms after the first attempt (default 20 s: under the
   * daemon's 30 s fill timeout, so a reader gets the source's error rather than a timeout).
   */
  budgetMs?: number;
  /** Whether an error is worth another attempt (the registry's classification). */
  isRetryable: (err: unknown) => boolean;
  /** Called before each retry (for logs). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Jitter source in [0, 1) (tests pin it). */
  random?: () => number;
}

const DIGEST_MISMATCH = 'ONDINE_ERR_DIGEST_MISMATCH';

function isDigestMismatch(err: unknown): boolean {
  return (err as { code?: unknown })?.code === DIGEST_MISMATCH;
}

function retryAfter(err: unknown): number | undefined {
  const v = (err as { retryAfterMs?: unknown })?.retryAfterMs;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `attempt` under `policy`: the one retry loop for blob reads and manifest/bootstrap fetches alike. */
export async function withRetries<T>(policy: RetryPolicy, attempt: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const retries = policy.retries ?? 6;
  const base = policy.baseDelayMs ?? 200;
  const max = policy.maxDelayMs ?? 5_000;
  const deadline = Date.now() + (policy.budgetMs ?? 20_000);
  const random = policy.random ?? Math.random;
  let mismatches = 0;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (signal?.aborted) throw err;
      const mismatch = isDigestMismatch(err);
      if (mismatch) mismatches++;
      const worth = mismatch ? mismatches <= 1 : policy.isRetryable(err);
      if (!worth || n >= retries) throw err;
      // Equal jitter: readers failing together spread out, yet none retries at once.
      const step = Math.min(max, base * 2 ** n);
      const backoff = step / 2 + (step / 2) * random();
      const delay = Math.max(backoff, Math.min(retryAfter(err) ?? 0, 30_000));
      if (Date.now() + delay > deadline) throw err;
      policy.onRetry?.(err, n + 1, Math.round(delay));
      await sleep(delay, signal);
    }
  }
}

export class RetryingSource implements BlobSource {
  readonly description: string;
  readonly cancellable: boolean | undefined;
  readonly refetchCorrupt: boolean | undefined;

  constructor(private readonly inner: BlobSource, private readonly policy: RetryPolicy) {
    this.description = inner.description;
    this.cancellable = inner.cancellable;
    this.refetchCorrupt = inner.refetchCorrupt;
  }

  read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return withRetries(this.policy, () => this.inner.read(blobId, offset, length, signal), signal);
  }

  size(blobId: string): Promise<number> {
    return withRetries(this.policy, () => this.inner.size(blobId));
  }

  failed(blobId: string, offset: number, length: number, err: Error): void {
    this.inner.failed?.(blobId, offset, length, err);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
