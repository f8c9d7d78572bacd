// Runs one fuzz target in a worker thread. It announces each case before running it, so the
// parent can stop a hung decoder (worker.terminate interrupts even a busy loop) and name the case.
import { parentPort, workerData } from 'node:worker_threads';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { S_IFDIR, S_IFMT } from '../../src/format/constants.js';
import { exerciseBootstrap, exerciseBlob, mutate, type Region } from './fuzz-harness.js';
import { buildImage, richTree } from './synthetic-image.js';
import { fixture, BOOT_NAME, BLOB_ID } from './support.js';

export type Target = 'bootstrap' | 'synthetic' | 'blob';
export interface FuzzRequest { target: Target; seed: number; count: number }
export type FuzzMessage =
  | { type: 'case'; i: number; what: string }
  | { type: 'done'; failures: Array<{ i: number; what: string; error: string }>; parsed: number; walkCompleted: number; total: number };

/** Where the interesting bytes are: block 0's tables, and every inode with its xattrs and payload. */
function hotRegions(buf: Buffer): Region[] {
  const b = parseBootstrap(buf);
  const hot: Region[] = [{ start: 1024, end: 1664 }];
  if (b.rafs) {
    hot.push({ start: b.rafs.blobTableOffset, end: b.rafs.blobTableOffset + b.rafs.blobTableSize });
    hot.push({ start: b.rafs.chunkTableOffset, end: b.rafs.chunkTableOffset + b.rafs.chunkTableSize });
  }
  for (const { ino } of b.walk()) {
    let end = ino.payloadOffset + 16;
    if ((ino.mode & S_IFMT) === S_IFDIR) {
      if (ino.layout === 2) end = ino.payloadOffset + (ino.size % b.blockSize || b.blockSize);
      else hot.push({ start: ino.iu * b.blockSize, end: ino.iu * b.blockSize + ino.size });
    }
    hot.push({ start: ino.offset, end: Math.min(buf.length, end) });
  }
  return hot;
}

function run(req: FuzzRequest): void {
  const port = parentPort!;
  const boot = fixture(BOOT_NAME);
  let orig: Buffer;
  let hot: Region[];
  let once: (buf: Buffer) => { parsed: boolean; walkCompleted: boolean };
  if (req.target === 'blob') {
    orig = fixture(BLOB_ID);
    const entry = parseBootstrap(boot).blobs[0]!;
    hot = [{ start: entry.ciOffset - 512, end: orig.length }];
    once = (buf) => { exerciseBlob(buf, entry); return { parsed: true, walkCompleted: true }; };
  } else {
    orig = req.target === 'bootstrap' ? boot : buildImage(richTree()).image;
    hot = hotRegions(orig);
    once = (buf) => exerciseBootstrap(buf);
  }
  const failures: Array<{ i: number; what: string; error: string }> = [];
  let parsed = 0;
  let walkCompleted = 0;
  // Stack traces are most of the cost of a thrown error; a failing case is re-run with them on.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  for (let i = 0; i < req.count; i++) {
    const m = mutate(orig, req.seed, i, hot);
    port.postMessage({ type: 'case', i, what: m.what } satisfies FuzzMessage);
    try {
      const s = once(m.buf);
      if (s.parsed) parsed++;
      if (s.walkCompleted) walkCompleted++;
    } catch (first) {
      Error.stackTraceLimit = limit;
      let err = first;
      try { once(m.buf); } catch (again) { err = again; }
      Error.stackTraceLimit = 0;
      failures.push({ i, what: m.what, error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err) });
    }
  }
  port.postMessage({ type: 'done', failures, parsed, walkCompleted, total: req.count } satisfies FuzzMessage);
}

if (parentPort && workerData) run(workerData as FuzzRequest);
