// The snapshotter's failures as containerd's errdefs see them: each OndineError code maps to
// the one gRPC status containerd turns back into ErrNotFound, ErrAlreadyExists, … (errdefs
// FromGRPC). Helpers build the errors the Snapshots semantics need, with stable codes.
import { status } from '@grpc/grpc-js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';

const GRPC_BY_CODE: Partial<Record<string, status>> = {
  ONDINE_ERR_NOT_FOUND: status.NOT_FOUND,
  ONDINE_ERR_EXISTS: status.ALREADY_EXISTS,
  ONDINE_ERR_PRECONDITION: status.FAILED_PRECONDITION,
  ONDINE_ERR_BUSY: status.FAILED_PRECONDITION,
  ONDINE_ERR_MOUNT_NS: status.FAILED_PRECONDITION,
  ONDINE_ERR_NOT_LAZY: status.FAILED_PRECONDITION,
  ONDINE_ERR_INVALID: status.INVALID_ARGUMENT,
  ONDINE_ERR_INVALID_ARG: status.INVALID_ARGUMENT,
  ONDINE_ERR_UNSAFE_PATH: status.INVALID_ARGUMENT,
  ONDINE_ERR_UNSUPPORTED: status.UNIMPLEMENTED,
  ONDINE_ERR_NO_DAEMON: status.UNAVAILABLE,
  ONDINE_ERR_TIMEOUT: status.DEADLINE_EXCEEDED,
};

/** The gRPC status an error is answered with (UNKNOWN for what containerd has no class for). */
export function grpcStatus(err: unknown): status {
  const code = (err as { code?: unknown })?.code;
  return (typeof code === 'string' && GRPC_BY_CODE[code]) || status.UNKNOWN;
}

export const notFound = (what: string) => new NotFoundError(what);
export const exists = (what: string) => new OndineError('ONDINE_ERR_EXISTS', undefined, `${what}: already exists`);
export const precondition = (why: string) => new OndineError('ONDINE_ERR_PRECONDITION', undefined, why);
export const invalid = (why: string) => new InvalidArgumentError(why);
