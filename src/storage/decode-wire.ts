// What crosses between the decode pool and its worker threads: jobs, results, and errors as
// plain data. A typed error is rebuilt on the main thread through its own constructor, so the
// pool path throws the same class, code and message as decoding on the calling thread.
import { CorruptError, DigestMismatchError, OndineError, UnsupportedError, type ErrorCode } from '../errors.js';
import type { ChunkDecodeSpec } from './chunk-decode.js';

export interface DecodeRequest {
  id: number;
  spec: ChunkDecodeSpec;
  /** The chunk's compressed bytes, whole (transferred). */
  compressed: ArrayBuffer;
}

export type WireError =
  | { kind: 'corrupt'; structure: string; offset: number; detail: string }
  | { kind: 'unsupported'; what: string }
  | { kind: 'digest'; blobId: string; chunkIndex: number; expected: string; actual: string }
  | { kind: 'ondine'; name: string; code: string; errno: number; message: string }
  | { kind: 'other'; name: string; message: string };

export type DecodeResponse =
  | { id: number; ok: true; data: ArrayBuffer }
  | { id: number; ok: false; error: WireError };

export function toWire(err: unknown): WireError {
  if (err instanceof CorruptError) return { kind: 'corrupt', structure: err.structure, offset: err.offset, detail: err.detail };
  if (err instanceof UnsupportedError) return { kind: 'unsupported', what: err.what };
  if (err instanceof DigestMismatchError) {
    return { kind: 'digest', blobId: err.blobId, chunkIndex: err.chunkIndex, expected: err.expected, actual: err.actual };
  }
  if (err instanceof OndineError) return { kind: 'ondine', name: err.name, code: err.code, errno: err.errno, message: err.message };
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind: 'other', name: e.name, message: e.message };
}

export function fromWire(w: WireError): Error {
  switch (w.kind) {
    case 'corrupt': return new CorruptError(w.structure, w.offset, w.detail);
    case 'unsupported': return new UnsupportedError(w.what);
    case 'digest': return new DigestMismatchError(w.blobId, w.chunkIndex, w.expected, w.actual);
    case 'ondine': {
      // Some other OndineError: its code and errno are what callers act on; the name says which.
      const e = new OndineError(w.code as ErrorCode, w.errno, w.message);
      e.name = w.name;
      return e;
    }
    case 'other': {
      const e = new Error(w.message);
      e.name = w.name;
      return e;
    }
  }
}
