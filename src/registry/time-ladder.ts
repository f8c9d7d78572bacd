// The one statement of how long anything that talks to a registry may take, derived from the
// configured read timeout R (a kernel request not filled in R gets EIO). Every module that
// needs one of these numbers imports it from here; none keeps a copy. The ladder, shortest
// first, each rung leaving room for the one below to report its own error:
//
//   attempt idle       R/3   undici headers and body-idle timeout for one attempt (10 s)
//   body rate          a body must average 64 KiB/s over any 10 s (a byte every 2 s fails in ~10 s)
//   retry budget       2R/3  every attempt of one blob read, backoff included, ends by then (20 s)
//   Retry-After cap    R/3   a server asking to wait longer is not waited for (10 s)
//   fill timeout       R     the front ends answer a request unfilled (EIO) after R (30 s)
//   supervisor         R+5s  the fanotify supervisor denies what the worker left (35 s)
//   failed chunk       5 s   a chunk whose fill failed is refused at once for this long
//   manifest deadline  30 s  total for a manifest, an index, a token or a small request
//                            (HEAD, mount, upload start), every attempt included
//   mount deadline     manifest deadline × 2 + R × 2 (2 min): `ondine mount` as a whole
//                            (an index and its manifest, then the bootstrap layer)
//
// Uploads (push) have no total: a large layer takes what it takes; each attempt is held to
// the attempt idle timeout and no retry starts past the retry budget.

/** A body slower than this, averaged over BODY_RATE_WINDOW_MS, is broken off (retryable). */
export const BODY_MIN_BYTES_PER_SEC = 64 << 10;
export const BODY_RATE_WINDOW_MS = 10_000;
/** A chunk whose fill failed (timed out) is refused at once for this long; then fetched again. */
export const FAILED_CHUNK_MS = 5_000;
/** Total for manifests, indexes, tokens and other small requests. */
export const MANIFEST_DEADLINE_MS = 30_000;
/** The supervisor's deadline is the fill timeout plus this. */
export const SUPERVISOR_MARGIN_MS = 5_000;
export const DEFAULT_READ_TIMEOUT_MS = 30_000;
const CONNECT_CAP_MS = 10_000;

export interface TimeLadder {
  /** R: the fill timeout of the front ends. */
  readTimeoutMs: number;
  connectTimeoutMs: number;
  /** undici's headersTimeout and bodyTimeout for one attempt. */
  attemptIdleMs: number;
  /** Every attempt of one blob read ends by then. */
  retryBudgetMs: number;
  retryAfterCapMs: number;
  manifestDeadlineMs: number;
  bodyMinBytesPerSec: number;
  bodyRateWindowMs: number;
  failedChunkMs: number;
  /** The fanotify supervisor's per-event deadline. */
  supervisorDeadlineMs: number;
  /** `ondine mount` (CLI) and the daemon's pull for it. */
  mountDeadlineMs: number;
}

/** Every number from the read timeout (and the few fixed ones); overrides for tests. */
export function timeLadder(readTimeoutMs: number = DEFAULT_READ_TIMEOUT_MS, over: Partial<Omit<TimeLadder, 'readTimeoutMs'>> = {}): TimeLadder {
  const r = Math.max(1, Math.floor(readTimeoutMs));
  const manifestDeadlineMs = over.manifestDeadlineMs ?? MANIFEST_DEADLINE_MS;
  return {
    readTimeoutMs: r,
    connectTimeoutMs: Math.min(CONNECT_CAP_MS, Math.ceil(r / 3)),
    attemptIdleMs: Math.ceil(r / 3),
    retryBudgetMs: Math.floor((2 * r) / 3),
    retryAfterCapMs: Math.ceil(r / 3),
    bodyMinBytesPerSec: BODY_MIN_BYTES_PER_SEC,
    bodyRateWindowMs: BODY_RATE_WINDOW_MS,
    failedChunkMs: FAILED_CHUNK_MS,
    supervisorDeadlineMs: r + SUPERVISOR_MARGIN_MS,
    mountDeadlineMs: 2 * manifestDeadlineMs + 2 * r,
    ...over,
    manifestDeadlineMs,
  };
}
