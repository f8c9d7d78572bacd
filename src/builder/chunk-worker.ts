// Worker thread: digest, zero-test and compress one chunk. Runs off the main thread so that
// reading sources, hashing and compression overlap across cores.
import { codecById } from '../storage/codecs.js';
import { digesterById } from '../storage/digests.js';
import { serveJobs } from '../storage/worker-wire.js';
import type { ChunkJob, ChunkJobResult } from './chunk-pool.js';

const ZERO = Buffer.alloc(1 << 20);

function allZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - at);
    if (b.compare(ZERO, 0, n, at, at + n) !== 0) return false;
  }
  return true;
}

serveJobs((job: ChunkJob) => {
  const data = Buffer.from(job.data, 0, job.length);
  const t0 = performance.now();
  if (allZero(data)) {
    const result: ChunkJobResult = { zero: true, digest: '', stored: null, storedLength: 0, compressed: false, digestMs: performance.now() - t0, compressMs: 0 };
    return { result };
  }
  const digest = digesterById(job.digester).digest(data);
  const t1 = performance.now();
  let stored: ArrayBuffer = job.data;
  let storedLength = job.length;
  let compressed = false;
  if (job.compressor !== 0) {
    const out = codecById(job.compressor).compress(data, job.level);
    // A chunk that does not shrink is stored raw: readers infer "compressed" from the sizes.
    if (out.length < data.length) {
      const copy = new Uint8Array(out.length);
      copy.set(out);
      stored = copy.buffer;
      storedLength = out.length;
      compressed = true;
    }
  }
  const result: ChunkJobResult = { zero: false, digest, stored, storedLength, compressed, digestMs: t1 - t0, compressMs: performance.now() - t1 };
  return { result, transfer: [stored] };
});
