// Decode worker thread: decodeChunk (the same function ChunkReader.verify runs) on one chunk
// per message. The verified bytes go back transferred, never copied; a failure goes back as a
// WireError. It keeps no state between jobs.
import { parentPort } from 'node:worker_threads';
import { decodeChunk } from './chunk-decode.js';
import { toWire, type DecodeRequest, type DecodeResponse } from './decode-wire.js';

const port = parentPort!;

port.on('message', (job: DecodeRequest) => {
  let reply: DecodeResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    // Memory of this chunk's own, so it can be transferred back whole.
    const out = new Uint8Array(new ArrayBuffer(job.spec.uncompressedSize));
    decodeChunk(job.spec, new Uint8Array(job.compressed), out);
    reply = { id: job.id, ok: true, data: out.buffer };
    transfer = [out.buffer];
  } catch (err) {
    reply = { id: job.id, ok: false, error: toWire(err) };
  }
  port.postMessage(reply, transfer);
});
