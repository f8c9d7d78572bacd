// Chunk digests as ops objects by on-disk id (blake3 0, sha256 1). blake3 runs natively via
// the prebuilt binding of @napi-rs/blake-hash for linux-x64 (an optional dependency: npm skips
// it elsewhere); @noble/hashes is the portable fallback, ~100x slower. The platform package is
// depended on directly because npm 11 writes lock files that lack the wrapper's other
// platforms, which `npm ci` then refuses.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { blake3 as nobleBlake3 } from '@noble/hashes/blake3.js';
import { DigestAlgo } from '../format/constants.js';
import { UnsupportedError } from '../errors.js';

export interface Digester {
  readonly id: DigestAlgo;
  readonly name: 'blake3' | 'sha256';
  /** Hex digest of the (uncompressed) chunk. */
  digest(data: Uint8Array): string;
  /** The same digest as bytes: what verifying a chunk compares, with no hex string made. */
  digestBytes(data: Uint8Array): Uint8Array;
}

type NativeBlake3 = (input: Uint8Array) => Buffer;

function loadNativeBlake3(): NativeBlake3 | undefined {
  try {
    const req = createRequire(import.meta.url);
    return (req('@napi-rs/blake-hash-linux-x64-gnu') as { blake3: NativeBlake3 }).blake3;
  } catch {
    return undefined;
  }
}

const nativeBlake3 = loadNativeBlake3();

export const blake3Digester: Digester = {
  id: DigestAlgo.Blake3,
  name: 'blake3',
  digest: nativeBlake3
    ? (d) => nativeBlake3(d).toString('hex')
    : (d) => Buffer.from(nobleBlake3(d)).toString('hex'),
  digestBytes: nativeBlake3 ?? ((d) => nobleBlake3(d)),
};

export const sha256Digester: Digester = {
  id: DigestAlgo.Sha256,
  name: 'sha256',
  digest: (d) => createHash('sha256').update(d).digest('hex'),
  digestBytes: (d) => createHash('sha256').update(d).digest(),
};

/** A lower-case hex digit's value, -1 for anything else (digests are stored lower case). */
function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Whether `bytes` is the digest `hex` spells (lower case, as chunk maps hold them): compared
 * digit by digit, so verifying a chunk makes no string. Any other spelling does not match.
 */
export function digestMatchesHex(bytes: Uint8Array, hex: string): boolean {
  if (hex.length !== bytes.length * 2) return false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (hexValue(hex.charCodeAt(2 * i)) !== b >> 4 || hexValue(hex.charCodeAt(2 * i + 1)) !== (b & 15)) return false;
  }
  return true;
}

/** The portable implementation, exported so tests can check the native one against it. */
export function blake3Portable(d: Uint8Array): string {
  return Buffer.from(nobleBlake3(d)).toString('hex');
}

export function digesterById(id: number): Digester {
  if (id === DigestAlgo.Blake3) return blake3Digester;
  if (id === DigestAlgo.Sha256) return sha256Digester;
  throw new UnsupportedError(`digest algorithm id ${id}`);
}

export function digesterByName(name: string): Digester {
  if (name === 'blake3') return blake3Digester;
  if (name === 'sha256') return sha256Digester;
  throw new UnsupportedError(`digest "${name}" (use blake3 or sha256)`);
}

export function isNativeBlake3(): boolean {
  return nativeBlake3 !== undefined;
}
