// The grammars of every identifier that becomes part of a path or of a mount-option string:
// blob ids, digests, and the names the kernel and the catalog key things by (fsids, domain
// ids, device tags, image names). Pure: a value in, the value back or an IdentifierError out.
// Checked where the value enters (bootstrap registration, API, kernel messages), never later,
// so no hostile id ever reaches a file name or a comma-split option string.
import { OndineError } from '../errors.js';
import type { Bootstrap } from './bootstrap.js';

/** A blob id: the sha256 hex of the blob (its registry digest without `sha256:`). */
const BLOB_ID = /^[0-9a-f]{64}$/;
const DIGEST = /^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;
/** fsid, domain id, device tag, catalog image name: safe in a path and in a mount option. */
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

export type IdentifierKind = 'blob id' | 'digest' | 'name';

const RULE: Record<IdentifierKind, string> = {
  'blob id': 'must be 64 lowercase hex characters',
  digest: 'must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>',
  name: 'must be 1-64 characters of [A-Za-z0-9._-], and not "." or ".."',
};

/** Longest part of a refused value quoted back: enough to recognise it, never megabytes. */
const QUOTE_MAX = 72;

/** A value (shown escaped and cut short: it may hold NULs, newlines or megabytes). */
export function quoteIdentifier(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : typeof value;
  const shown = JSON.stringify(value.length > QUOTE_MAX ? value.slice(0, QUOTE_MAX) : value);
  return value.length > QUOTE_MAX ? `${shown.slice(0, -1)}…" (${value.length} characters)` : shown;
}

/** An identifier outside its grammar: refused before it is used for anything. */
export class IdentifierError extends OndineError {
  constructor(readonly field: string, readonly kind: IdentifierKind, value: unknown) {
    super('ONDINE_ERR_BAD_IDENTIFIER', undefined, `${field} ${quoteIdentifier(value)} ${RULE[kind]}`);
  }
}

function check(kind: IdentifierKind, re: RegExp, value: unknown, field: string): string {
  if (typeof value !== 'string' || !re.test(value) || value === '.' || value === '..') throw new IdentifierError(field, kind, value);
  return value;
}

export function isBlobId(value: unknown): value is string {
  return typeof value === 'string' && BLOB_ID.test(value);
}

export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value) && value !== '.' && value !== '..';
}

export function checkBlobId(value: unknown, field = 'blob id'): string {
  return check('blob id', BLOB_ID, value, field);
}

export function checkDigest(value: unknown, field = 'digest'): string {
  return check('digest', DIGEST, value, field);
}

/** An fsid, domain id, device tag or catalog image name. */
export function checkName(value: unknown, field: string): string {
  return check('name', NAME, value, field);
}

/** The blob id a sha256 digest names (the hex), or undefined for any other digest. */
export function blobIdOfDigest(digest: string): string | undefined {
  return digest.startsWith('sha256:') && BLOB_ID.test(digest.slice(7)) ? digest.slice(7) : undefined;
}

/**
 * Every identifier a bootstrap carries that may name a file or go into a mount option: the
 * blob table's ids and the device table's tags (an empty tag marks a flat device image, given
 * by the user instead). Called when a bootstrap is registered or mounted, before any of them
 * is used.
 */
export function checkBootstrapIdentifiers(b: Bootstrap, what = 'the bootstrap'): void {
  b.blobs.forEach((e, i) => checkBlobId(e.blobId, `blob ${i + 1} of ${what}: its id`));
  b.devices.forEach((d, i) => {
    if (d.tag !== '') checkName(d.tag, `device ${i + 1} of ${what}: its tag`);
  });
}
