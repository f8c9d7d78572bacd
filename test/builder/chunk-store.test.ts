// The chunk store on its own (real worker pool, real blob files): chunking across segment
// boundaries, ordered commit (byte-identical blobs whatever the pool size), dedup, zero
// chunks as holes, raw storage of incompressible chunks, the chunk dict, backpressure, and
// refusal of chunk sizes the format cannot express.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChunkPool } from '../../src/builder/chunk-pool.js';
import { ChunkStore, type ChunkedContent, type ChunkLocation, type ChunkStoreOptions } from '../../src/builder/chunk-store.js';
import type { FinishedBlob } from '../../src/builder/blob-writer.js';
import type { Segment } from '../../src/builder/tree.js';
import { codecById } from '../../src/storage/codecs.js';
import { blake3Digester, sha256Digester } from '../../src/storage/digests.js';
import { decodeBlobMetaHeader } from '../../src/format/blob-meta-header.js';
import { decodeChunkInfoV1 } from '../../src/format/chunk-info.js';
import type { BlobTableEntry } from '../../src/format/blob-table.js';
import type { ChunkTableEntry } from '../../src/format/chunk-table.js';
import { Compressor, DigestAlgo } from '../../src/format/constants.js';
import { KiB, MiB, randomBytes, rejectsWith, tempDir, textBytes, throwsWith } from '../storage/support.js';

const CS = 64 * KiB;
let pool: ChunkPool;
let work: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pool = new ChunkPool(2);
  work = await tempDir('chunkstore');
});
after(async () => {
  await pool?.close();
  await work?.cleanup();
});

function store(opts: Partial<ChunkStoreOptions> = {}, p = pool): ChunkStore {
  return new ChunkStore(p, { outDir: work.dir, chunkSize: CS, compressor: Compressor.Zstd, digester: DigestAlgo.Blake3, ...opts });
}

async function* segs(list: Segment[]): AsyncIterable<Segment> {
  for (const s of list) yield s;
}

/** The whole file as segments of `step` bytes (odd steps cross chunk boundaries). */
function pieces(data: Buffer, step: number, offset = 0): Segment[] {
  const out: Segment[] = [];
  for (let at = 0; at < data.length; at += step) out.push({ offset: offset + at, data: data.subarray(at, at + step) });
  return out;
}

async function put(s: ChunkStore, data: Buffer, step = 10_000, layer = 0): Promise<ChunkedContent> {
  return s.sinkForLayer(layer).storeFile(data.length, segs(pieces(data, step)));
}

/** Reads one stored chunk back out of a finished blob file and decodes it. */
async function readChunk(blob: FinishedBlob, l: ChunkLocation): Promise<Buffer> {
  const fh = await open(blob.path, 'r');
  try {
    const buf = Buffer.alloc(l.compressedSize);
    await fh.read(buf, 0, buf.length, l.compressedOffset);
    return l.compressed ? codecById(blob.entry.compressor).decompress(buf, l.uncompressedSize) : buf;
  } finally {
    await fh.close();
  }
}

async function readBack(blob: FinishedBlob, content: ChunkedContent, size: number, chunkSize = CS): Promise<Buffer> {
  const out = Buffer.alloc(size);
  for (const [i, l] of content.chunks.entries()) if (l) (await readChunk(blob, l)).copy(out, i * chunkSize);
  return out;
}

function only(m: Map<unknown, FinishedBlob>): FinishedBlob {
  assert.equal(m.size, 1);
  return [...m.values()][0]!;
}

test('invalid chunk sizes are InvalidArgumentError: 3000, 2 KiB, 32 MiB, 0, 12 KiB', () => {
  for (const chunkSize of [3000, 2 * KiB, 32 * MiB, 0, 12 * KiB, -4096, 4096.5]) {
    throwsWith(() => store({ chunkSize }), 'ONDINE_ERR_INVALID', /chunk size/);
  }
  for (const chunkSize of [4 * KiB, MiB, 16 * MiB]) store({ chunkSize });
});

test('a file is cut into chunk-size pieces whatever the segment sizes, and reads back exactly', async () => {
  const s = store();
  const data = textBytes(5 * CS + 999, 1);
  const contents = await Promise.all([7, 4096, CS, CS + 1, 1 << 20].map((step) => put(s, data, step)));
  const blob = only(await s.finish());
  for (const c of contents) {
    assert.equal(c.chunks.length, 6);
    assert.ok((await readBack(blob, c, data.length)).equals(data));
    assert.deepEqual(c.chunks.map((l) => l!.uncompressedSize), [CS, CS, CS, CS, CS, 999]);
  }
  // Five stores of the same bytes: one copy of each chunk in the blob.
  assert.equal(blob.chunks.length, 6);
  assert.equal(s.progress.chunks, 30);
  assert.equal(s.progress.uniqueChunks, 6);
  assert.equal(s.progress.bytesIn, 5 * data.length);
});

test('digests are of the uncompressed chunk, with the chosen algorithm', async () => {
  const data = textBytes(2 * CS, 2);
  for (const [digester, g] of [[DigestAlgo.Blake3, blake3Digester], [DigestAlgo.Sha256, sha256Digester]] as const) {
    const s = store({ digester });
    const c = await put(s, data);
    const blob = only(await s.finish());
    assert.equal(blob.entry.digester, digester);
    assert.deepEqual(c.chunks.map((l) => l!.digest), [g.digest(data.subarray(0, CS)), g.digest(data.subarray(CS))]);
  }
});

test('dedup within a file and across files: a repeated chunk is stored once', async () => {
  const s = store();
  const block = randomBytes(CS, 3);
  const repeated = Buffer.concat([block, block, block, block]);
  const a = await put(s, repeated);
  const b = await put(s, Buffer.concat([textBytes(CS, 4), block]));
  const blob = only(await s.finish());
  assert.equal(blob.chunks.length, 2, 'the random block and the text block');
  const locs = new Set([...a.chunks, b.chunks[1]]);
  assert.equal(locs.size, 1, 'every copy of the block is the same location');
  assert.equal(s.progress.chunks, 6);
  assert.equal(s.progress.uniqueChunks, 2);
  assert.ok((await readBack(blob, a, repeated.length)).equals(repeated));
});

test('dedup across layers: a chunk first stored by layer 0 is referenced by layer 1, which writes no blob', async () => {
  const s = store();
  const data = textBytes(3 * CS, 5);
  const l0 = await put(s, data, 5000, 0);
  const l1 = await put(s, data, 3333, 1);
  const blobs = await s.finish();
  assert.equal(blobs.size, 1);
  assert.deepEqual(l1.chunks, l0.chunks);
  for (const l of l1.chunks) assert.deepEqual(l!.blob.kind === 'layer' && l!.blob.layer, 0);
  // A new chunk in layer 1 goes into layer 1's own blob.
  const s2 = store();
  await put(s2, data, 5000, 0);
  const mixed = await put(s2, Buffer.concat([data, textBytes(CS, 6)]), 5000, 1);
  const two = await s2.finish();
  assert.equal(two.size, 2);
  assert.deepEqual(mixed.chunks.map((l) => l!.blob.kind === 'layer' && l!.blob.layer), [0, 0, 0, 1]);
  assert.deepEqual([...two.values()].map((b) => b.chunks.length), [3, 1]);
});

/** The shared pool, counting the chunks sent to its workers. */
function countingPool(): { pool: ChunkPool; runs: () => number } {
  let runs = 0;
  const wrapped = {
    get size() { return pool.size; },
    alloc: (length: number) => pool.alloc(length),
    release: (buf: Buffer) => pool.release(buf),
    run: (...args: Parameters<ChunkPool['run']>) => { runs++; return pool.run(...args); },
  };
  return { pool: wrapped as unknown as ChunkPool, runs: () => runs };
}

test('zero chunks become holes; ranges no segment covered are holes that were never sent', async () => {
  const counting = countingPool();
  const s = store({}, counting.pool);
  const text = textBytes(CS, 7);
  // Chunk 0 text, chunk 1 all zeros (written), chunk 2 never written (sparse), chunk 3 text tail.
  const size = 3 * CS + 100;
  const list: Segment[] = [
    { offset: 0, data: text },
    { offset: CS, data: Buffer.alloc(CS) },
    { offset: 3 * CS, data: text.subarray(0, 100) },
  ];
  const c = await s.sinkForLayer(0).storeFile(size, segs(list));
  const blob = only(await s.finish());
  assert.deepEqual(c.chunks.map((l) => l === null), [false, true, true, false]);
  assert.equal(s.progress.holeChunks, 2);
  assert.equal(counting.runs(), 3, 'three chunks were sent to workers; the untouched one was not');
  const back = await readBack(blob, c, size);
  assert.ok(back.subarray(0, CS).equals(text));
  assert.ok(back.subarray(CS, 3 * CS).equals(Buffer.alloc(2 * CS)));
  assert.ok(back.subarray(3 * CS).equals(text.subarray(0, 100)));
  // A whole file of zeros stores nothing at all.
  const z = store();
  const zc = await put(z, Buffer.alloc(4 * CS + 5));
  assert.deepEqual(zc.chunks, [null, null, null, null, null]);
  assert.equal((await z.finish()).size, 0, 'no blob for a store that kept no chunk');
});

test('a chunk partly written is stored with zeros in its gaps', async () => {
  const s = store();
  const list: Segment[] = [{ offset: 100, data: Buffer.from('abc') }, { offset: CS - 2, data: Buffer.from('wxyz') }];
  const c = await s.sinkForLayer(0).storeFile(CS + 10, segs(list));
  const blob = only(await s.finish());
  const want = Buffer.alloc(CS + 10);
  want.write('abc', 100);
  want.write('wxyz', CS - 2);
  assert.ok((await readBack(blob, c, CS + 10)).equals(want));
});

test('incompressible chunks are stored raw with compressed = false; compressible ones compressed', async () => {
  const s = store();
  const c = await put(s, Buffer.concat([randomBytes(CS, 8), textBytes(CS, 9)]));
  const blob = only(await s.finish());
  const [raw, packed] = c.chunks as ChunkLocation[];
  assert.equal(raw!.compressed, false);
  assert.equal(raw!.compressedSize, CS);
  assert.equal(packed!.compressed, true);
  assert.ok(packed!.compressedSize < CS / 2);
  // The blob's own chunk-info table says the same (v1 infers "compressed" from the sizes).
  const file = await readFile(blob.path);
  const header = decodeBlobMetaHeader(file, file.length - 4096);
  const infos = [0, 1].map((i) => decodeChunkInfoV1(file, header.ciOffset + i * 16));
  assert.deepEqual(infos.map((i) => i.compressed), [false, true]);
  assert.deepEqual(infos.map((i) => i.compressedSize), [CS, packed!.compressedSize]);
});

test('compressor none stores every chunk raw; lz4 and gzip compress', async () => {
  for (const [compressor, expectCompressed] of [[Compressor.None, false], [Compressor.Lz4Block, true], [Compressor.Gzip, true]] as const) {
    const s = store({ compressor });
    const data = textBytes(2 * CS, 10);
    const c = await put(s, data);
    const blob = only(await s.finish());
    assert.equal(blob.entry.compressor, compressor);
    for (const l of c.chunks) assert.equal(l!.compressed, expectCompressed);
    assert.ok((await readBack(blob, c, data.length)).equals(data));
  }
});

test('ordered commit: the blob is byte-identical whatever the pool size and segment sizes', async () => {
  const files = [textBytes(7 * CS + 3, 11), randomBytes(3 * CS, 12), textBytes(100, 13), textBytes(9 * CS, 14)];
  const ids: string[] = [];
  for (const [workers, step] of [[1, 4096], [4, 12345], [2, CS]] as const) {
    const p = new ChunkPool(workers);
    try {
      const s = store({}, p);
      for (const f of files) await put(s, f, step);
      ids.push(only(await s.finish()).blobId);
    } finally {
      await p.close();
    }
  }
  assert.equal(new Set(ids).size, 1, `blob ids differ: ${ids.join(' ')}`);
});

test('backpressure: a tiny in-flight limit still completes, and files resolve in order', async () => {
  const s = store({ maxInFlightBytes: 1 });
  const files = Array.from({ length: 5 }, (_, i) => textBytes(3 * CS + i, 20 + i));
  const contents = [];
  for (const f of files) contents.push(await put(s, f, 7000));
  const blob = only(await s.finish());
  for (const [i, f] of files.entries()) assert.ok((await readBack(blob, contents[i]!, f.length)).equals(f));
});

test('a segment past the file size is InvalidArgumentError', async () => {
  const s = store();
  await rejectsWith(() => s.sinkForLayer(0).storeFile(10, segs([{ offset: 5, data: Buffer.alloc(6) }])), 'ONDINE_ERR_INVALID', /beyond file size/);
  await s.abort();
});

test('the chunk dict: known digests are referenced in the dict blob, never written again', async () => {
  // Build a "previous image" blob, then describe it as a bootstrap would.
  const first = store();
  const old = textBytes(3 * CS, 30);
  await put(first, old);
  const prev = only(await first.finish());
  const entry: BlobTableEntry = { ...prev.entry, blobIndex: 0 };
  const chunks: ChunkTableEntry[] = prev.chunks.map((c) => ({
    digest: c.digest, blobIndex: 0, flags: c.compressed ? 1 : 0, compressedSize: c.compressedSize, uncompressedSize: c.uncompressedSize,
    compressedOffset: c.compressedOffset, uncompressedOffset: c.uncompressedOffset, fileOffset: 0, index: c.index, crc32: 0,
  }));

  const s = store();
  assert.equal(s.addDict([entry], chunks), 3);
  assert.equal(s.addDict([entry], chunks), 0, 'digests already known are not added twice');
  const fresh = textBytes(CS, 31);
  const c = await put(s, Buffer.concat([old.subarray(CS, 2 * CS), fresh, old.subarray(0, CS)]));
  const blobs = await s.finish();
  assert.equal(blobs.size, 1, 'a blob for the one new chunk');
  assert.equal(only(blobs).chunks.length, 1);
  assert.deepEqual(c.chunks.map((l) => l!.blob.kind), ['dict', 'layer', 'dict']);
  assert.deepEqual(c.chunks.filter((l) => l!.blob.kind === 'dict').map((l) => l!.ciIndex), [1, 0]);
  assert.deepEqual([...s.dictBlobsUsed], [entry]);
  assert.equal(s.progress.uniqueChunks, 1);
  // The dict chunk's location is the old blob's: its bytes read back from there.
  assert.ok((await readChunk(prev, c.chunks[0]!)).equals(old.subarray(CS, 2 * CS)));

  // A dict with another digest algorithm offers nothing.
  const sha = store({ digester: DigestAlgo.Sha256 });
  assert.equal(sha.addDict([entry], chunks), 0);
  await put(sha, old);
  assert.equal(sha.dictBlobsUsed.size, 0);
  assert.equal(only(await sha.finish()).chunks.length, 3);
});

test('the worker pool survives many small files (and many chunks in flight)', async () => {
  const s = store({ chunkSize: 4096 });
  const files = Array.from({ length: 3000 }, (_, i) => Buffer.from(`file number ${i} ${'.'.repeat(i % 97)}`));
  const contents = await Promise.all(files.map((f) => put(s, f)));
  const blob = only(await s.finish());
  assert.equal(s.progress.chunks, 3000);
  assert.equal(blob.chunks.length, 3000);
  for (const i of [0, 1, 1234, 2999]) assert.ok((await readBack(blob, contents[i]!, files[i]!.length, 4096)).equals(files[i]!));
});

test('blob names are the sha256 of their bytes', async () => {
  const s = store();
  await put(s, textBytes(2 * CS, 40));
  const blob = only(await s.finish());
  const bytes = await readFile(join(work.dir, blob.blobId));
  assert.equal(createHash('sha256').update(bytes).digest('hex'), blob.blobId);
  assert.equal(bytes.length, blob.entry.compressedSize);
});

test('a worker that dies fails the pool\'s jobs instead of leaving them pending forever', async () => {
  const p = new ChunkPool(2);
  try {
    const ok = await p.run(Buffer.from(textBytes(1000, 50)), Compressor.Zstd, undefined, DigestAlgo.Blake3);
    assert.equal(ok.zero, false);
    // Kill one worker from outside (as an out-of-memory abort would), then keep submitting.
    await p.killWorkerForTest(0);
    const jobs = Array.from({ length: 4 }, (_, i) => p.run(Buffer.from(textBytes(1000, 60 + i)), Compressor.Zstd, undefined, DigestAlgo.Blake3));
    // A liveness guard, not a timing assertion: a job sent to the dead worker never settles.
    const PENDING = Symbol('pending');
    const guard = new Promise<typeof PENDING>((r) => setTimeout(() => r(PENDING), 20_000).unref());
    const outcomes = await Promise.race([Promise.allSettled(jobs), guard]);
    assert.notEqual(outcomes, PENDING, 'jobs were left pending after a worker died');
    for (const o of outcomes as PromiseSettledResult<unknown>[]) {
      assert.equal(o.status, 'rejected', 'a pool with a dead worker must refuse work, not half-do it');
    }
  } finally {
    await p.close();
  }
});

test('gaps between segments inside a chunk read back as zeros (chunk buffers are not zero-filled)', async () => {
  // Dirty the allocator first: fresh chunk buffers must not show earlier bytes in the gaps.
  const s0 = store();
  await put(s0, randomBytes(4 * CS, 31));
  await s0.finish();
  const s = store();
  const a = textBytes(1000, 32);
  const b = textBytes(3000, 33);
  const size = 2 * CS + 100;
  // Data at 0, a gap, data at 5000 crossing nothing; then a gap to the end of chunk 0, chunk 1
  // untouched (a hole), and a short tail in chunk 2 after a gap.
  const content = await s.sinkForLayer(0).storeFile(size, segs([
    { offset: 0, data: a }, { offset: 5000, data: b }, { offset: 2 * CS + 50, data: a.subarray(0, 50) },
  ]));
  const blob = only(await s.finish());
  const want = Buffer.alloc(size);
  a.copy(want, 0);
  b.copy(want, 5000);
  a.copy(want, 2 * CS + 50, 0, 50);
  assert.equal(content.chunks[1], null, 'the untouched chunk is a hole');
  assert.ok((await readBack(blob, content, size)).equals(want));
});

test('finishLayer: a layer\'s blob is finished after its chunks and before the next layer\'s; finish() returns it too', async () => {
  const s = store();
  const one = await put(s, textBytes(3 * CS, 34), 7000, 0);
  const early = s.finishLayer(0);
  const two = await put(s, Buffer.concat([textBytes(CS, 34), textBytes(2 * CS, 35)]), 9000, 1);
  const f0 = await early;
  assert.ok(f0, 'layer 0 stored chunks');
  assert.equal(f0.entry.chunkCount, 3);
  assert.equal(createHash('sha256').update(await readFile(f0.path)).digest('hex'), f0.blobId);
  const all = await s.finish();
  assert.equal(all.size, 2);
  assert.equal([...all.values()][0], f0, 'finish() hands back the same finished blob');
  assert.equal(two.chunks[0]!.blob, one.chunks[0]!.blob, 'layer 1 reuses layer 0\'s chunk');
  assert.equal(await s.finishLayer(5), undefined, 'a layer that stored nothing has no blob');
});
