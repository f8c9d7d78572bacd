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
};

export const sha256Digester: Digester = {
  id: DigestAlgo.Sha256,
  name: 'sha256',
  digest: (d) => createHash('sha256').update(d).digest('hex'),
};

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
