// What crosses between a WorkerPool and its threads: jobs and replies by id, and errors as
// plain data. A typed error is rebuilt on the main thread through its own constructor, so a
// job that fails on a worker throws the same class, code and message as it would have on the
// calling thread. serveJobs is the worker's side: one handler call per job, no state.
import { parentPort } from 'node:worker_threads';
import { CorruptError, DigestMismatchError, OndineError, UnsupportedError, type ErrorCode } from '../errors.js';

export interface JobMessage<P> {
  id: number;
  payload: P;
}

export type ReplyMessage<R> =
  | { id: number; ok: true; result: R }
  | { id: number; ok: false; error: WireError };

export type WireError =
  | { kind: 'corrupt'; structure: string; offset: number; detail: string }
  | { kind: 'unsupported'; what: string }
  | { kind: 'digest'; blobId: string; chunkIndex: number; expected: string; actual: string }
  | { kind: 'ondine'; name: string; code: string; errno: number; message: string }
  | { kind: 'other'; name: string; message: string };

/** What a job handler hands back: the result, and the memory in it to transfer, not copy. */
export interface JobReply<R> {
  result: R;
  transfer?: ArrayBuffer[];
}

/** In a worker thread: answers every job from the pool with `handle` (its throw included). */
export function serveJobs<P, R>(handle: (payload: P) => JobReply<R>): void {
  const port = parentPort;
  if (!port) throw new Error('serveJobs runs in a worker thread');
  port.on('message', (job: JobMessage<P>) => {
    let reply: ReplyMessage<R>;
    let transfer: ArrayBuffer[] = [];
    try {
      const r = handle(job.payload);
      reply = { id: job.id, ok: true, result: r.result };
      transfer = r.transfer ?? [];
    } catch (err) {
      reply = { id: job.id, ok: false, error: toWire(err) };
    }
    port.postMessage(reply, transfer);
  });
}

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
