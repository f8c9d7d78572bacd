// Registry failures, each saying whether another attempt may help. Messages name the registry,
// repository, digest and HTTP status; they never carry credentials, tokens or query strings.
import { NotFoundError, OndineError, DigestMismatchError } from '../errors.js';

export type RegistryErrorCode = 'ONDINE_ERR_REGISTRY' | 'ONDINE_ERR_AUTH' | 'ONDINE_ERR_DENIED' | 'ONDINE_ERR_DIGEST_MISMATCH' | 'ONDINE_ERR_TOO_LARGE' | 'ONDINE_ERR_TIMEOUT';

export interface RegistryErrorOptions {
  retryable: boolean;
  status?: number;
  retryAfterMs?: number;
  cause?: unknown;
}

export class RegistryError extends OndineError {
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly status?: number;
  constructor(code: RegistryErrorCode, message: string, opts: RegistryErrorOptions) {
    super(code, undefined, message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.retryable = opts.retryable;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
    if (opts.status !== undefined) this.status = opts.status;
  }
}

/** The origin registry answered 404: a NotFoundError (ENOENT) that is never worth retrying. */
export class RegistryNotFoundError extends NotFoundError {
  readonly retryable = false;
  readonly status = 404;
}

/** Bytes that do not hash to the digest asked for (a blob stream or a manifest by digest). */
export class RegistryDigestError extends RegistryError {
  constructor(readonly what: string, readonly expected: string, readonly actual: string) {
    super('ONDINE_ERR_DIGEST_MISMATCH', `${what}: digest mismatch (expected ${expected}, got ${actual})`, { retryable: true });
  }
}

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_NODATA']);

/** The resolver's code when `err` (or a cause of it) is a host name that does not resolve. */
export function dnsFailure(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++, e = e.cause as typeof e) {
    if (typeof e.code === 'string' && DNS_CODES.has(e.code)) return e.code;
  }
  return undefined;
}

/**
 * Worth another attempt: timeouts, resets, truncated or too slow bodies, 5xx, 429, 408, and a
 * digest mismatch (the retry loop decides when a mismatch "persists"). Not: a host name that
 * does not resolve, 401 after a refresh, 403, 404, aborts, bad arguments, anything unknown.
 * The reasons are at the head of retry-policy.ts.
 */
export function isRetryable(err: unknown): boolean {
  if (dnsFailure(err) !== undefined) return false;
  if (err instanceof RegistryError) return err.retryable;
  if (err instanceof DigestMismatchError) return true;
  return false;
}

/** Delay a Retry-After header asks for (seconds or an HTTP date), in ms; undefined when absent or bad. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Retryable failure for an HTTP status (5xx, 429, 408), not retryable otherwise. */
export function statusError(what: string, status: number, retryAfter?: string | string[]): RegistryError {
  const retryable = status >= 500 || status === 429 || status === 408;
  const retryAfterMs = retryable ? parseRetryAfter(retryAfter) : undefined;
  const opts: RegistryErrorOptions = { retryable, status };
  if (retryAfterMs !== undefined) opts.retryAfterMs = retryAfterMs;
  return new RegistryError('ONDINE_ERR_REGISTRY', `${what}: HTTP ${status}`, opts);
}

/** URL for messages and logs: scheme, host, path; never userinfo or the query (tokens, upload state). */
export function safeUrl(url: URL | string): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  return `${u.protocol}//${u.host}${u.pathname}`;
}
