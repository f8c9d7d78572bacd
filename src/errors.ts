// The project's error base: every failure a user or the kernel can see carries a stable
// `code` (never match on message text) and the errno the kernel front ends will answer with.
import { constants } from 'node:os';

const E = constants.errno;
/** The kernel's EFSCORRUPTED (EUCLEAN), which Node's errno table does not name. */
export const EFSCORRUPTED = 117;

export class OndineError extends Error {
  readonly code: string;
  readonly errno: number;
  constructor(code: string, errno: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.errno = errno;
    this.name = new.target.name;
  }
}

/** Bytes that do not decode: a truncated, bit-flipped or hostile structure. EFSCORRUPTED = EUCLEAN. */
export class CorruptError extends OndineError {
  readonly structure: string;
  readonly offset: number;
  readonly detail: string;
  constructor(structure: string, offset: number, detail: string) {
    super('ONDINE_ERR_CORRUPT', EFSCORRUPTED, `${structure} at offset ${offset}: ${detail}`);
    this.structure = structure;
    this.offset = offset;
    this.detail = detail;
  }
}

/** Well-formed but uses something Ondine does not implement (a compressor, a layout). */
export class UnsupportedError extends OndineError {
  constructor(readonly what: string) {
    super('ONDINE_ERR_UNSUPPORTED', E.EOPNOTSUPP, `unsupported: ${what}`);
  }
}

/** A caller passed a value outside what the format allows. */
export class InvalidArgumentError extends OndineError {
  constructor(message: string) {
    super('ONDINE_ERR_INVALID', E.EINVAL, message);
  }
}

/** A chunk whose content does not hash to its recorded digest. */
export class DigestMismatchError extends OndineError {
  constructor(readonly blobId: string, readonly chunkIndex: number, readonly expected: string, readonly actual: string) {
    super('ONDINE_ERR_DIGEST_MISMATCH', E.EIO,
      `chunk ${chunkIndex} of blob ${blobId}: digest mismatch (expected ${expected}, got ${actual})`);
  }
}

/** A blob or image that a source does not have. */
export class NotFoundError extends OndineError {
  constructor(what: string) {
    super('ONDINE_ERR_NOT_FOUND', E.ENOENT, `not found: ${what}`);
  }
}

/** A source (disk, network) failed to deliver bytes. */
export class FetchError extends OndineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ONDINE_ERR_FETCH', E.EIO, message, options);
  }
}

/**
 * A decode worker thread died (crashed or was terminated) while it held a chunk: the chunk
 * is not known to be bad, it was just not decoded. The reader sees EIO; a retry may succeed.
 */
export class DecodeWorkerError extends OndineError {
  constructor(message: string) {
    super('ONDINE_ERR_DECODE_WORKER', E.EIO, message);
  }
}
