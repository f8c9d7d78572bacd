// Worker thread: digest, zero-test and compress a batch of chunks (one, or many small ones cut
// from one buffer). Runs off the main thread so that reading sources, hashing and compression
// overlap across cores. The stored bytes of a batch come back in one buffer.
import { codecById } from '../storage/codecs.js';
import { digesterById } from '../storage/digests.js';
import { serveJobs } from '../storage/worker-wire.js';
import type { ChunkBatchResult, ChunkJob } from './chunk-pool.js';

const ZERO = Buffer.alloc(1 << 20);
/** Where zstd writes a batch's chunks before they are copied out at their exact size. */
let scratch = Buffer.allocUnsafeSlow(0);

function allZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - at);
    if (b.compare(ZERO, 0, n, at, at + n) !== 0) return false;
  }
  return true;
}

serveJobs<ChunkJob, ChunkBatchResult>((job) => {
  const digester = digesterById(job.digester);
  const codec = job.compressor !== 0 ? codecById(job.compressor) : undefined;
  // zstd writes each chunk into this worker's scratch buffer (sized for the worst case, kept
  // from batch to batch): no buffer per chunk. Other codecs return a buffer each. Either way
  // the batch's stored bytes go back in one buffer of their exact size (the main thread's GC
  // counts every byte it receives).
  const into = codec?.compressInto && codec.compressBound ? { fn: codec.compressInto, bound: codec.compressBound } : undefined;
  let direct: Buffer | undefined;
  if (into) {
    const need = job.parts.reduce((n, p) => n + Math.max(into.bound(p.length), p.length), 0);
    if (scratch.length < need) scratch = Buffer.allocUnsafeSlow(need);
    direct = scratch;
  }
  const results: ChunkBatchResult['results'] = [];
  // Per part, without `direct`: the bytes to store (a compressed buffer, or a view of the input when it did not shrink).
  const outs: Array<Uint8Array | undefined> = [];
  let total = 0;
  for (const part of job.parts) {
    const data = Buffer.from(job.data, part.offset, part.length);
    const t0 = performance.now();
    if (allZero(data)) {
      results.push({ zero: true, digest: '', storedOffset: 0, storedLength: 0, compressed: false, digestMs: performance.now() - t0, compressMs: 0 });
      outs.push(undefined);
      continue;
    }
    const digest = digester.digest(data);
    const t1 = performance.now();
    let out: Uint8Array = data;
    let compressed = false;
    if (direct && into) {
      const n = into.fn(data, direct.subarray(total), job.level);
      // A chunk that does not shrink is stored raw: readers infer "compressed" from the sizes.
      if (n < data.length) compressed = true;
      else data.copy(direct, total);
      out = direct.subarray(total, total + (compressed ? n : data.length));
    } else if (codec) {
      const c = codec.compress(data, job.level);
      if (c.length < data.length) {
        out = c;
        compressed = true;
      }
    }
    results.push({ zero: false, digest, storedOffset: total, storedLength: out.length, compressed, digestMs: t1 - t0, compressMs: performance.now() - t1 });
    outs.push(out);
    total += out.length;
  }
  // One chunk stored raw: its input buffer goes back as it is, no copy.
  if (job.parts.length === 1 && outs[0] !== undefined && !results[0]!.compressed) {
    results[0]!.storedOffset = job.parts[0]!.offset;
    return { result: { stored: job.data, results }, transfer: [job.data] };
  }
  if (total === 0) return { result: { stored: null, results } };
  const stored = Buffer.allocUnsafeSlow(total);
  if (direct) {
    direct.copy(stored, 0, 0, total);
    return { result: { stored: stored.buffer as ArrayBuffer, results }, transfer: [stored.buffer as ArrayBuffer] };
  }
  for (let i = 0; i < outs.length; i++) {
    const o = outs[i];
    if (o) stored.set(o, results[i]!.storedOffset);
  }
  return { result: { stored: stored.buffer as ArrayBuffer, results }, transfer: [stored.buffer as ArrayBuffer] };
});
