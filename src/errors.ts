// The project's error base: every failure a user or the kernel can see carries a stable
// `code` (never match on message text) and the errno the kernel front ends will answer with.
import { constants } from 'node:os';

const E = constants.errno;
/** The kernel's EFSCORRUPTED (EUCLEAN), which Node's errno table does not name. */
export const EFSCORRUPTED = 117;

/**
 * Every stable code, with the errno a kernel front end answers for it and the management
 * API's HTTP status: the one table both read. A code not listed here does not compile.
 */
export const ERROR_CODES = {
  ONDINE_ERR_INVALID: { errno: E.EINVAL, status: 400 },
  ONDINE_ERR_INVALID_ARG: { errno: E.EINVAL, status: 400 },
  ONDINE_ERR_NOT_FOUND: { errno: E.ENOENT, status: 404 },
  ONDINE_ERR_EXISTS: { errno: E.EEXIST, status: 409 },
  ONDINE_ERR_BUSY: { errno: E.EBUSY, status: 409 },
  ONDINE_ERR_CORRUPT: { errno: EFSCORRUPTED, status: 422 },
  ONDINE_ERR_UNSUPPORTED: { errno: E.EOPNOTSUPP, status: 422 },
  ONDINE_ERR_DIGEST_MISMATCH: { errno: E.EIO, status: 502 },
  ONDINE_ERR_FETCH: { errno: E.EIO, status: 502 },
  ONDINE_ERR_DECODE_WORKER: { errno: E.EIO, status: 500 },
  ONDINE_ERR_CACHE_DIR: { errno: E.EINVAL, status: 400 },
  ONDINE_ERR_DEVICE: { errno: E.EIO, status: 500 },
  ONDINE_ERR_MOUNT: { errno: E.EINVAL, status: 400 },
  ONDINE_ERR_NO_KERNEL_PATH: { errno: E.EOPNOTSUPP, status: 422 },
  ONDINE_ERR_NO_DAEMON: { errno: E.ECONNREFUSED, status: 503 },
  ONDINE_ERR_DAEMON: { errno: E.EIO, status: 500 },
  ONDINE_ERR_INSTALL: { errno: E.ENOENT, status: 500 },
  ONDINE_ERR_INTERNAL: { errno: E.EIO, status: 500 },
  ONDINE_ERR_BUILD: { errno: E.EIO, status: 500 },
  ONDINE_ERR_TAR_CORRUPT: { errno: EFSCORRUPTED, status: 422 },
  ONDINE_ERR_TAR_CHECKSUM: { errno: EFSCORRUPTED, status: 422 },
  ONDINE_ERR_TAR_TRUNCATED: { errno: EFSCORRUPTED, status: 422 },
  ONDINE_ERR_TAR_UNSUPPORTED: { errno: E.EOPNOTSUPP, status: 422 },
  ONDINE_ERR_UNSUPPORTED_COMPRESSION: { errno: E.EOPNOTSUPP, status: 422 },
  ONDINE_ERR_DECOMPRESS: { errno: EFSCORRUPTED, status: 422 },
  ONDINE_ERR_UNSAFE_PATH: { errno: E.EPERM, status: 422 },
  ONDINE_ERR_SYMLINK_PARENT: { errno: E.ENOTDIR, status: 422 },
  ONDINE_ERR_HARDLINK_TARGET: { errno: E.ENOENT, status: 422 },
  ONDINE_ERR_LAYER_ENTRY: { errno: E.EINVAL, status: 422 },
  ONDINE_ERR_SOURCE_IO: { errno: E.EIO, status: 500 },
  ONDINE_ERR_SOURCE_CHANGED: { errno: E.ESTALE, status: 409 },
  ONDINE_ERR_AUTH: { errno: E.EACCES, status: 401 },
  ONDINE_ERR_DENIED: { errno: E.EACCES, status: 403 },
  ONDINE_ERR_REGISTRY: { errno: E.EIO, status: 502 },
  ONDINE_ERR_TIMEOUT: { errno: E.ETIMEDOUT, status: 504 },
  ONDINE_ERR_NOT_LAZY: { errno: E.EINVAL, status: 422 },
  /** An id or name outside its grammar (src/format/identifiers.ts): refused before any use. */
  ONDINE_ERR_BAD_IDENTIFIER: { errno: E.EINVAL, status: 400 },
  /** A blob of a bootstrap pulled by reference that its manifest does not list. */
  ONDINE_ERR_FOREIGN_BLOB: { errno: E.EINVAL, status: 422 },
  /** More bytes than a descriptor, a limit or a cap allows: refused, never read on. */
  ONDINE_ERR_TOO_LARGE: { errno: E.EFBIG, status: 422 },
  ONDINE_ERR_PRECONDITION: { errno: E.EINVAL, status: 409 },
  ONDINE_ERR_MOUNT_NS: { errno: E.EXDEV, status: 409 },
} as const satisfies Record<string, { errno: number; status: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The API status for a code (500 for one a newer daemon sent that this table lacks). */
export function httpStatus(code: string): number {
  return (ERROR_CODES as Record<string, { status: number }>)[code]?.status ?? 500;
}

export class OndineError extends Error {
  readonly code: ErrorCode;
  readonly errno: number;
  /** `errno` undefined: the table's errno for `code`. */
  constructor(code: ErrorCode, errno: number | undefined, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.errno = errno ?? ERROR_CODES[code].errno;
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
  /** `message` replaces the generic "unsupported: <what>" where a whole sentence says more. */
  constructor(readonly what: string, message?: string) {
    super('ONDINE_ERR_UNSUPPORTED', E.EOPNOTSUPP, message ?? `unsupported: ${what}`);
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
