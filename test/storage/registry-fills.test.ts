// Independent misses against the real docker-registry: fills of distinct chunks that arrive
// together reach the registry at once, up to the fill scheduler's budget and never past it,
// and read-ahead never takes the slots kept for readers. A gate in front of the registry holds
// every blob GET until `n` are open at once (or a few seconds pass), so fills made one after
// another would show as one open request at a time, and the test fails.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BlobHandle, ChunkedBlobCache, type RangeWriter } from '../../src/storage/blob-cache.js';
import { loadBlobChunkMap, type BlobChunk } from '../../src/storage/blob-chunk-map.js';
import { FillScheduler } from '../../src/storage/fill-scheduler.js';
import { openSource } from '../../src/storage/source-spec.js';
import { pushTestBlob, startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { buildImage, KiB, randomBytes, unpackAll, type BuiltImage } from './support.js';

const REPO = 'sched/fills';

/** Counts blob GETs open at once; while armed, holds each until `n` are open (or `maxHoldMs`). */
async function startGate(target: string) {
  const t = new URL(target);
  let open = 0;
  let maxOpen = 0;
  let armed = 0;
  let held: Array<() => void> = [];
  let timer: NodeJS.Timeout | undefined;
  const releaseAll = () => {
    armed = 0;
    if (timer) clearTimeout(timer);
    for (const go of held.splice(0)) go();
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const blob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    const forward = () => {
      const up = httpRequest({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host }, agent: false }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      up.on('error', () => req.socket.destroy());
      req.pipe(up);
    };
    if (!blob) return forward();
    open++;
    maxOpen = Math.max(maxOpen, open);
    res.on('close', () => { open--; });
    if (armed > 0) {
      held.push(forward);
      if (open >= armed) releaseAll();
      return;
    }
    forward();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    arm(n: number, maxHoldMs = 5_000) {
      maxOpen = open;
      armed = n;
      timer = setTimeout(releaseAll, maxHoldMs);
    },
    maxOpen: () => maxOpen,
    stop: () => new Promise<void>((r) => {
      releaseAll();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** A cache file in memory (what was written, by block). */
class Memory implements RangeWriter {
  readonly bytes: Buffer;
  constructor(size: number) {
    this.bytes = Buffer.alloc(size + 4096);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data, offset);
  }
}

let reg: RegistryServer;
let gate: Awaited<ReturnType<typeof startGate>>;
let img: BuiltImage;
let unpacked: Buffer;

before(async () => {
  reg = await startRegistry();
  gate = await startGate(reg.url);
  // Incompressible 16 KiB chunks: each chunk's compressed bytes are a range of their own.
  img = await buildImage({ big: randomBytes(40 * 16 * KiB, 7) }, { chunkSize: 16 * KiB });
  const entry = img.bootstrap.blobs[0]!;
  await pushTestBlob(reg, REPO, await readFile(join(img.blobDir, entry.blobId)));
  unpacked = (await unpackAll(img.bootstrap, [img.blobDir], img.root)).get(entry.blobId)!;
});
after(async () => {
  await gate?.stop();
  await reg?.stop();
  await img?.cleanup();
});

async function setup(budget: number) {
  const entry = img.bootstrap.blobs[0]!;
  const { source } = openSource({ kind: 'registry', registry: gate.host, repository: REPO, insecure: true });
  const scheduler = new FillScheduler({ budget, reserved: 2 });
  const handle = new BlobHandle(entry.blobId, source, () => loadBlobChunkMap(source, entry, img.bootstrap.chunks), { scheduler });
  const reader = await handle.chunkReader(); // the chunk table's read, before the gate is armed
  const cache = new ChunkedBlobCache(entry.uncompressedSize, handle, { amplifyBytes: 0 });
  const mem = new Memory(entry.uncompressedSize);
  return { source, scheduler, cache, mem, chunks: reader.map.chunks as readonly BlobChunk[] };
}

test('fills of distinct chunks that arrive together reach the registry at once, up to the budget and not past it', async () => {
  const { source, scheduler, cache, mem, chunks } = await setup(6);
  try {
    // Every other chunk: no two fills' chunks are neighbours, so none share a range request.
    const wanted = chunks.filter((_, i) => i % 2 === 0).slice(0, 12);
    gate.arm(6);
    await Promise.all(wanted.map((c) => cache.fill(c.uncompressedOffset, c.uncompressedSize, mem)));
    assert.equal(gate.maxOpen(), 6, `${gate.maxOpen()} blob GETs were open at once for 12 independent fills and a budget of 6`);
    for (const c of wanted) {
      const at = c.uncompressedOffset;
      assert.ok(mem.bytes.subarray(at, at + c.uncompressedSize).equals(unpacked.subarray(at, at + c.uncompressedSize)), `chunk ${c.index} differs`);
    }
    assert.equal(scheduler.stats().demand.requests, 12);
  } finally {
    await source.close?.();
  }
});

test('read-ahead queued on the registry never takes the slots kept for readers', async () => {
  const { source, scheduler, cache, mem, chunks } = await setup(4);
  try {
    // Four read-ahead reads fill what read-ahead may take (budget 4 - 2 reserved) and queue.
    const ra = chunks.filter((_, i) => i % 2 === 1).slice(0, 4);
    gate.arm(4);
    const raRuns = ra.map((c) => scheduler.run(source, 'readahead', c.compressedSize, () => source.read(img.bootstrap.blobs[0]!.blobId, c.compressedOffset, c.compressedSize)));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(scheduler.inFlight(source), 2, 'read-ahead took more than budget - reserved');
    // Two readers arrive: they get the reserved slots at once, which opens the gate.
    const d = chunks.filter((_, i) => i % 2 === 0).slice(0, 2);
    await Promise.all(d.map((c) => cache.fill(c.uncompressedOffset, c.uncompressedSize, mem)));
    assert.equal(gate.maxOpen(), 4);
    await Promise.all(raRuns);
    assert.equal(scheduler.stats().readahead.requests, 4);
  } finally {
    await source.close?.();
  }
});
