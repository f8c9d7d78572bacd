// The one retry loop for every registry call (convert, push, blob reads, pulls) and the policy
// it follows, derived from the read timeout (time-ladder.ts). Which errors are permanent:
//   - every RegistryError the client marked not retryable: 401 after a token refresh, 403,
//     404, a manifest that is not JSON, an answer over its size cap, bad arguments;
//   - a host name that does not resolve (ENOTFOUND, and EAI_AGAIN too: the resolver did not
//     answer, which a few seconds of backoff do not cure; a user is better told at once);
//   - anything that is not a registry error (a bug, a bad argument), and any abort.
// Worth another attempt: timeouts, resets, truncated or too slow bodies, 5xx, 429, 408, and a
// digest mismatch up to `digestMismatchRetries` times (more means the bytes are bad, not the
// wire). A Retry-After up to `retryAfterCapMs` is waited for; a longer one ends the loop with
// the error. No retry starts when its delay would end past the budget, and with a hard
// deadline the attempt in flight is cancelled at it. The loop is the only place that says
// "gave up after N attempts", so the count is the true one.
import { DigestMismatchError } from '../errors.js';
import { RegistryError, isRetryable, type RegistryErrorCode } from './errors.js';
import { timeLadder, type TimeLadder } from './time-ladder.js';

export { dnsFailure, isRetryable } from './errors.js';

export interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retry). */
  attempts: number;
  /** No retry starts whose delay would end past this many ms after the first attempt began. */
  budgetMs: number;
  /** A Retry-After longer than this is not waited for: the loop gives up with the error. */
  retryAfterCapMs: number;
  /** A digest mismatch is retried this many times at most. */
  digestMismatchRetries: number;
  /** First backoff; doubled per retry up to maxDelayMs; half of each delay is jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Jitter source in [0, 1) (tests pin it). */
  random?: () => number;
}

/** The policy for a read timeout: 5 attempts inside the retry budget; overrides for tests. */
export function retryPolicy(ladder: TimeLadder = timeLadder(), over: Partial<RetryPolicy> = {}): RetryPolicy {
  return {
    attempts: 5,
    budgetMs: ladder.retryBudgetMs,
    retryAfterCapMs: ladder.retryAfterCapMs,
    digestMismatchRetries: 1,
    baseDelayMs: 200,
    maxDelayMs: 5_000,
    ...over,
  };
}

function isDigestMismatch(err: unknown): boolean {
  return err instanceof DigestMismatchError || (err as { code?: unknown })?.code === 'ONDINE_ERR_DIGEST_MISMATCH';
}

function retryAfterMs(err: unknown): number | undefined {
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

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** The last error, saying once how many attempts were made and why the loop stopped. */
function gaveUp(err: unknown, attempts: number, why = ''): RegistryError {
  const e = err as { code?: unknown; status?: unknown; retryAfterMs?: unknown; message?: unknown };
  const code: RegistryErrorCode = e?.code === 'ONDINE_ERR_DIGEST_MISMATCH' || e?.code === 'ONDINE_ERR_TIMEOUT' || e?.code === 'ONDINE_ERR_AUTH' || e?.code === 'ONDINE_ERR_DENIED'
    ? e.code : 'ONDINE_ERR_REGISTRY';
  const opts: ConstructorParameters<typeof RegistryError>[2] = { retryable: true, cause: err };
  if (typeof e?.status === 'number') opts.status = e.status;
  if (typeof e?.retryAfterMs === 'number') opts.retryAfterMs = e.retryAfterMs;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return new RegistryError(code, `${message} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}${why})`, opts);
}

export interface RetryRun {
  /** For messages: what is being fetched. */
  what: string;
  /** The caller's cancellation: ends the loop (and the attempt in flight) with its reason. */
  signal?: AbortSignal;
  /**
   * A hard total: the attempt in flight is cancelled this many ms after the first began and
   * the loop ends with ONDINE_ERR_TIMEOUT. Without it only `policy.budgetMs` applies, to
   * starting retries (an upload or a stream may take longer once started).
   */
  deadlineMs?: number;
  /** Called before each retry (for logs). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `attempt` under `policy`. Each attempt gets a signal (the caller's, plus the hard
 * deadline when there is one) to hand to the request; a value it returns (a stream) is not
 * cancelled afterwards.
 */
export async function withRetries<T>(policy: RetryPolicy, run: RetryRun, attempt: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  const started = Date.now();
  const budgetEnd = started + Math.min(policy.budgetMs, run.deadlineMs ?? Infinity);
  const random = policy.random ?? Math.random;
  let mismatches = 0;
  for (let n = 1; ; n++) {
    if (run.signal?.aborted) throw run.signal.reason;
    let deadline: AbortController | undefined;
    let timer: NodeJS.Timeout | undefined;
    if (run.deadlineMs !== undefined) {
      const ctl = new AbortController();
      deadline = ctl;
      // Retryable: the source may well answer in a moment (the failure memo keeps it briefly).
      const timeout = new RegistryError('ONDINE_ERR_TIMEOUT', `${run.what}: no answer within ${seconds(run.deadlineMs)}`, { retryable: true });
      timer = setTimeout(() => ctl.abort(timeout), Math.max(0, started + run.deadlineMs - Date.now()));
    }
    const signal = deadline ? (run.signal ? AbortSignal.any([run.signal, deadline.signal]) : deadline.signal) : run.signal;
    try {
      return await attempt(signal);
    } catch (err) {
      if (run.signal?.aborted) throw run.signal.reason;
      if (deadline?.signal.aborted) {
        const timeout = deadline.signal.reason as RegistryError;
        throw n === 1 ? timeout : new RegistryError('ONDINE_ERR_TIMEOUT', `${timeout.message} (${n} attempts; the last: ${(err as Error).message})`, { retryable: true, cause: err });
      }
      if (!isRetryable(err)) throw err;
      if (isDigestMismatch(err) && ++mismatches > policy.digestMismatchRetries) throw gaveUp(err, n, ': the bytes keep failing verification');
      if (n >= policy.attempts) throw gaveUp(err, n);
      const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      let delay = step / 2 + (step / 2) * random();
      const after = retryAfterMs(err);
      if (after !== undefined) {
        if (after > policy.retryAfterCapMs) throw gaveUp(err, n, `: the registry asks to wait ${seconds(after)}, more than ${seconds(policy.retryAfterCapMs)}`);
        delay = Math.max(delay, after);
      }
      if (Date.now() + delay > budgetEnd) throw gaveUp(err, n, ` in ${seconds(Date.now() - started)}`);
      run.onRetry?.(err, n, Math.round(delay));
      await sleep(delay, run.signal);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }
}
