// Decode worker thread: decodeChunk (the same function ChunkReader.verify runs) on one chunk
// per job. The verified bytes go back transferred, never copied; a failure goes back as the
// error decodeChunk threw (worker-wire). It keeps no state between jobs.
import { decodeChunk } from './chunk-decode.js';
import type { DecodeJob } from './decode-pool.js';
import { serveJobs } from './worker-wire.js';

serveJobs((job: DecodeJob) => {
  // Memory of this chunk's own, so it can be transferred back whole; not zeroed first (wasted
  // work on every chunk): decodeChunk either fills all of it or throws, and nothing is sent
  // back on a throw.
  const out = new Uint8Array(Buffer.allocUnsafeSlow(job.spec.uncompressedSize).buffer, 0, job.spec.uncompressedSize);
  decodeChunk(job.spec, new Uint8Array(job.compressed), out);
  return { result: out.buffer, transfer: [out.buffer] };
});
