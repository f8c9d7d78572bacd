// Bounds on what a registry may send: a body longer than the descriptor's size (or a
// document's limit) is cut off at the size and refused for good, never read on to some larger
// generic limit and never fetched again (another attempt would get the same bytes). A
// Content-Length that already says too much is refused before any of the body is read.
import type { IncomingHttpHeaders } from 'node:http';
import { RegistryError } from './errors.js';

/**
 * The failure for `what` going past `limit` bytes: permanent, except where the caller knows
 * another endpoint may answer right (a range read past a lying mirror).
 */
export function tooLarge(what: string, limit: number, status?: number, told?: number, permanent = true): RegistryError {
  const detail = told !== undefined ? `its Content-Length says ${told} bytes` : 'the body goes on past them';
  return new RegistryError('ONDINE_ERR_TOO_LARGE', `${what}: more than the ${limit} bytes expected (${detail}); refused`,
    { retryable: !permanent, ...(status !== undefined ? { status } : {}) });
}

/** Content-Length as a byte count, or undefined when absent or not a plain count. */
export function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  const v = headers['content-length'];
  if (typeof v !== 'string' || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Throws before the body is read when its declared length is already over `limit`. */
export function checkDeclared(what: string, headers: IncomingHttpHeaders, limit: number, status?: number, permanent = true): void {
  const told = declaredLength(headers);
  if (told !== undefined && told > limit) throw tooLarge(what, limit, status, told, permanent);
}

/**
 * Counts a body's bytes against `limit`: `take(n)` returns false once a chunk would go past
 * it, and the chunk must then be dropped and the body destroyed.
 */
export class BodyCounter {
  total = 0;
  constructor(readonly limit: number) {}

  take(n: number): boolean {
    if (this.total + n > this.limit) {
      this.total += n;
      return false;
    }
    this.total += n;
    return true;
  }
}
