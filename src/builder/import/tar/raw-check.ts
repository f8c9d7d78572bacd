// The stage every stored layer byte passes through before any decoder sees it: it counts the
// bytes, cuts the stream off at the descriptor's size (more is refused at once, never read
// on), and at the end of the raw stream checks the count and the digest. Its flush runs only
// when the raw stream has ended, so a layer whose data ended early in the decoder (bytes after
// the gzip member) still has every byte hashed before it can count as read.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { InvalidArgumentError } from '../../../errors.js';
import { LayerDigestError, LayerSizeError } from '../errors.js';

export interface RawExpectation {
  /** `sha256:<hex>` or `sha512:<hex>` of the stored bytes. */
  digest?: string;
  /** Exact stored size (the descriptor's). */
  size?: number;
}

const ALGORITHMS = new Set(['sha256', 'sha512']);

export class RawCheck extends Transform {
  /** Stored bytes seen so far. */
  total = 0;
  /** Set once the raw stream ended and every check passed. */
  verified = false;
  private readonly hash: Hash | undefined;
  private readonly algorithm: string | undefined;

  constructor(private readonly source: string, private readonly expect: RawExpectation = {}) {
    super({ highWaterMark: 1 << 20 });
    if (expect.digest !== undefined) {
      const algorithm = expect.digest.slice(0, expect.digest.indexOf(':'));
      if (!ALGORITHMS.has(algorithm)) throw new InvalidArgumentError(`${source}: unsupported digest ${JSON.stringify(expect.digest)}`);
      this.algorithm = algorithm;
      this.hash = createHash(algorithm);
    }
    if (expect.size !== undefined && (!Number.isSafeInteger(expect.size) || expect.size < 0)) {
      throw new InvalidArgumentError(`${source}: size ${JSON.stringify(expect.size)} is not a byte count`);
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const limit = this.expect.size;
    if (limit !== undefined && this.total + chunk.length > limit) {
      this.total += chunk.length;
      cb(new LayerSizeError(this.source, limit, this.total, true));
      return;
    }
    this.total += chunk.length;
    this.hash?.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const { size, digest } = this.expect;
    if (size !== undefined && this.total !== size) {
      cb(new LayerSizeError(this.source, size, this.total, false));
      return;
    }
    if (this.hash !== undefined && digest !== undefined) {
      const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
      if (actual !== digest) {
        cb(new LayerDigestError(this.source, digest, actual));
        return;
      }
    }
    this.verified = true;
    cb();
  }
}
