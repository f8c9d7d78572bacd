// Shared helpers for the format tests: where the Nydus fixtures live, a seeded PRNG, raw
// little-endian readers (so offsets are checked independently of the decoders), and an
// assertion that a call fails with one of the project's typed errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CorruptError, OndineError } from '../../src/errors.js';

/** This file compiles to dist/test/format/support.js: the repository is three levels up. */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

export const FIXTURE_DIR = join(process.env.ONDINE_SHARED ?? resolve(REPO, '..', 'shared'), 'fixtures', 'nydus-rafs-v6');
export const BOOT_NAME = 'rafs-v6-2.2.boot';
export const BLOB_ID = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
export const TOC_BLOB_NAME = 'toc-2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca';

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURE_DIR, name));
}

export { mulberry32 } from '../helpers/prng.js';

export function dv(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}
export const rd16 = (b: Uint8Array, at: number): number => dv(b).getUint16(at, true);
export const rd32 = (b: Uint8Array, at: number): number => dv(b).getUint32(at, true);
export const rd64 = (b: Uint8Array, at: number): bigint => dv(b).getBigUint64(at, true);
export const wr16 = (b: Uint8Array, at: number, v: number): void => dv(b).setUint16(at, v, true);
export const wr32 = (b: Uint8Array, at: number, v: number): void => dv(b).setUint32(at, v, true);
export const wr64 = (b: Uint8Array, at: number, v: bigint): void => dv(b).setBigUint64(at, v, true);

/** Asserts that fn throws an OndineError with the given code (and, for corrupt data, structure/offset). */
export function assertOndine(
  fn: () => unknown,
  code: string,
  detail: { structure?: string | RegExp; offset?: number; message?: RegExp } = {},
): OndineError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${code} but nothing was thrown`);
  assert.ok(caught instanceof OndineError, `expected an OndineError, got ${String(caught)}`);
  assert.equal(caught.code, code, `code of: ${caught.message}`);
  if (detail.structure !== undefined || detail.offset !== undefined) {
    assert.ok(caught instanceof CorruptError, `expected a CorruptError, got ${caught.name}`);
    if (typeof detail.structure === 'string') assert.equal(caught.structure, detail.structure);
    else if (detail.structure) assert.match(caught.structure, detail.structure);
    if (detail.offset !== undefined) assert.equal(caught.offset, detail.offset, caught.message);
  }
  if (detail.message) assert.match(caught.message, detail.message);
  return caught;
}

export const CORRUPT = 'ONDINE_ERR_CORRUPT';
export const UNSUPPORTED = 'ONDINE_ERR_UNSUPPORTED';
export const INVALID = 'ONDINE_ERR_INVALID';
