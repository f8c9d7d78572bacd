// Typed failures of the importers (directory walk, tar reader, OCI layer application). Each
// class has one stable `code`; callers branch on the code or the class, never on the message.
// Where a failure belongs to a tar entry, `source` is the layer file, `offset` the byte offset
// of the entry's first header block in the *uncompressed* tar stream, and `entry` its name.
import { constants } from 'node:os';
import { OndineError, type ErrorCode } from '../../errors.js';

const E = constants.errno;
const EUCLEAN = 117;

export interface EntryContext {
  /** The tarball (or directory) being imported. */
  source?: string | undefined;
  /** Offset of the entry's first header block in the uncompressed tar stream. */
  offset?: number | undefined;
  /** The entry's name as stored in the archive. */
  entry?: string | undefined;
}

function where(ctx: EntryContext): string {
  const parts: string[] = [];
  if (ctx.source !== undefined) parts.push(ctx.source);
  if (ctx.entry !== undefined) parts.push(`entry ${JSON.stringify(ctx.entry)}`);
  if (ctx.offset !== undefined) parts.push(`at offset ${ctx.offset}`);
  return parts.length > 0 ? `${parts.join(': ')}: ` : '';
}

export abstract class ImportError extends OndineError {
  readonly source: string | undefined;
  readonly offset: number | undefined;
  readonly entry: string | undefined;
  constructor(code: ErrorCode, errno: number, ctx: EntryContext, detail: string, options?: { cause?: unknown }) {
    super(code, errno, `${where(ctx)}${detail}`, options);
    this.source = ctx.source;
    this.offset = ctx.offset;
    this.entry = ctx.entry;
  }
}

/** Bytes that are not a valid tar stream: bad field, bad PAX record, inconsistent sparse map. */
export class TarCorruptError extends ImportError {
  constructor(ctx: EntryContext, detail: string, code: ErrorCode = 'ONDINE_ERR_TAR_CORRUPT') {
    super(code, EUCLEAN, ctx, detail);
  }
}

/** A header block whose checksum does not match its contents. */
export class TarChecksumError extends TarCorruptError {
  constructor(ctx: EntryContext, readonly expected: number, readonly actual: number) {
    super(ctx, `header checksum mismatch (stored ${expected}, computed ${actual})`, 'ONDINE_ERR_TAR_CHECKSUM');
  }
}

/** The stream ended inside a header, an entry's data or its padding. */
export class TarTruncatedError extends TarCorruptError {
  constructor(ctx: EntryContext, detail: string) {
    super(ctx, `archive is truncated: ${detail}`, 'ONDINE_ERR_TAR_TRUNCATED');
  }
}

/** Well-formed tar that uses something not implemented (multi-volume, an unknown entry type). */
export class TarUnsupportedError extends ImportError {
  constructor(ctx: EntryContext, what: string) {
    super('ONDINE_ERR_TAR_UNSUPPORTED', E.EOPNOTSUPP, ctx, `unsupported: ${what}`);
  }
}

/** A layer file compressed with an algorithm Ondine does not read (xz, bzip2, ...). */
export class UnsupportedCompressionError extends ImportError {
  constructor(source: string, readonly algorithm: string) {
    super('ONDINE_ERR_UNSUPPORTED_COMPRESSION', E.EOPNOTSUPP, { source }, `${algorithm} compression is not supported (use gzip, zstd or none)`);
  }
}

/** The compressed stream of a layer does not decode. */
export class DecompressError extends ImportError {
  constructor(source: string, readonly algorithm: string, cause: unknown) {
    super('ONDINE_ERR_DECOMPRESS', EUCLEAN, { source }, `${algorithm} stream does not decode: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** An entry or hardlink target whose path would leave the image root, or contains NUL. */
export class UnsafePathError extends ImportError {
  constructor(ctx: EntryContext, readonly path: string, reason: string) {
    super('ONDINE_ERR_UNSAFE_PATH', E.EPERM, ctx, `unsafe path ${JSON.stringify(path)}: ${reason}`);
  }
}

/** An entry whose parent path passes through a symlink in the tree; it is never followed. */
export class SymlinkParentError extends ImportError {
  constructor(ctx: EntryContext, readonly symlinkPath: string) {
    super('ONDINE_ERR_SYMLINK_PARENT', E.ENOTDIR, ctx, `path component ${JSON.stringify(symlinkPath)} is a symlink in the image; entries are never written through symlinks`);
  }
}

/** A hardlink whose target does not exist (yet) in the image or is not linkable. */
export class HardlinkTargetError extends ImportError {
  constructor(ctx: EntryContext, readonly target: string, reason: string) {
    super('ONDINE_ERR_HARDLINK_TARGET', E.ENOENT, ctx, `hardlink target ${JSON.stringify(target)} ${reason}`);
  }
}

/** A layer's stored bytes do not hash to the digest its descriptor names. */
export class LayerDigestError extends ImportError {
  constructor(source: string, readonly expected: string, readonly actual: string) {
    super('ONDINE_ERR_DIGEST_MISMATCH', E.EIO, { source }, `digest mismatch (expected ${expected}, got ${actual})`);
  }
}

/** A layer's stored bytes are more or fewer than its descriptor says (cut off at the size when more). */
export class LayerSizeError extends ImportError {
  constructor(source: string, readonly expected: number, readonly actual: number, more: boolean) {
    super(more ? 'ONDINE_ERR_TOO_LARGE' : 'ONDINE_ERR_TAR_TRUNCATED', more ? E.EFBIG : EUCLEAN, { source },
      more ? `more than the ${expected} bytes its descriptor states (cut off there)` : `ends early (${actual} of ${expected} bytes)`);
  }
}

/** An entry that cannot be placed: parent is a file, replaces the root with a non-directory, bad whiteout. */
export class LayerEntryError extends ImportError {
  constructor(ctx: EntryContext, detail: string) {
    super('ONDINE_ERR_LAYER_ENTRY', E.EINVAL, ctx, detail);
  }
}

/** A host filesystem call failed while importing; names the path and the syscall. */
export class SourceIoError extends ImportError {
  readonly path: string;
  readonly syscall: string | undefined;
  constructor(path: string, cause: unknown) {
    const err = cause as NodeJS.ErrnoException;
    const errno = typeof err?.errno === 'number' ? Math.abs(err.errno) : E.EIO;
    super('ONDINE_ERR_SOURCE_IO', errno, {}, `${path}: ${err?.message ?? String(cause)}`, { cause });
    this.path = path;
    this.syscall = err?.syscall;
  }
}

/** A file changed while it was imported (replaced, truncated); the result would be inconsistent. */
export class SourceChangedError extends ImportError {
  constructor(readonly path: string, detail: string) {
    super('ONDINE_ERR_SOURCE_CHANGED', E.ESTALE, {}, `${path}: changed during import: ${detail}`);
  }
}
