// Errors of the native layer. NativeError carries the kernel's verdict unchanged (`code`
// is the errno name, `errno` the positive number); the addon constructs it directly, so
// thrown and rejected errors alike are real instances. Mapping to ONDINE_ERR_* codes is
// the callers' job: this layer has no policy.
import { OndineError } from '../errors.js';

export class NativeError extends Error {
  /** errno name, e.g. 'EBUSY'. */
  readonly code: string;
  /** Positive errno, e.g. 16 for EBUSY. */
  readonly errno: number;
  /** The call that failed, e.g. 'open', 'mount', 'LZ4_decompress_safe'. */
  readonly syscall: string;
  /** The path the call was about, when there was one. */
  readonly path: string | undefined;

  constructor(
    message: string,
    code: string,
    errno: number,
    syscall: string,
    path?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'NativeError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }

  /** Same facts with a message that says what they mean; the original becomes the cause. */
  explain(message: string): NativeError {
    return new NativeError(
      `${this.code}: ${message}`,
      this.code,
      this.errno,
      this.syscall,
      this.path,
      { cause: this },
    );
  }
}

/**
 * A call into the addon with arguments it would refuse, raised before any syscall (by the
 * checks in front of the addon, or by the addon's own). An Ondine error, so the CLI prints
 * it as one line.
 */
export class NativeArgumentError extends OndineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ONDINE_ERR_INVALID_ARG', undefined, message, options);
  }
}
