// Fetch → decompress → verify. planReads merges what it should and nothing more; the source
// sees the merged reads (its own counters prove it); a chunk that fails its digest or
// decoding is reported and never delivered while its neighbours are; a failed read reports
// every chunk it carried.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { planReads, ChunkReader, type VerifiedChunk } from '../../src/storage/chunk-reader.js';
import { BlobChunkMap, loadBlobChunkMap, type BlobChunk } from '../../src/storage/blob-chunk-map.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { DigestMismatchError, FetchError, CorruptError, UnsupportedError } from '../../src/errors.js';
import { buildImage, FIXTURE_BOOT, FIXTURE_DIR, KiB, MiB, randomBytes, rejectsWith, ScriptedSource, textBytes, type BuiltImage } from './support.js';

function chunk(index: number, compressedOffset: number, compressedSize: number): BlobChunk {
  return { index, compressedOffset, compressedSize, uncompressedOffset: index * 4096 * 64, uncompressedSize: compressedSize, compressed: false, digest: undefined };
}
const shape = (reads: ReturnType<typeof planReads>) => reads.map((r) => [r.offset, r.length, r.chunks.map((c) => c.index)]);

// ---- planReads ----

test('planReads: adjacent chunks merge into one read, in any input order', () => {
  const cs = [chunk(2, 200, 100), chunk(0, 0, 100), chunk(1, 100, 100)];
  assert.deepEqual(shape(planReads(cs)), [[0, 300, [0, 1, 2]]]);
});

test('planReads: gaps up to maxGap are read through, larger gaps split', () => {
  const cs = [chunk(0, 0, 100), chunk(1, 150, 100), chunk(2, 1000, 100)];
  assert.deepEqual(shape(planReads(cs, 50)), [[0, 250, [0, 1]], [1000, 100, [2]]], 'gap of exactly maxGap merges');
  assert.deepEqual(shape(planReads(cs, 49)), [[0, 100, [0]], [150, 100, [1]], [1000, 100, [2]]], 'gap of maxGap + 1 splits');
  assert.deepEqual(shape(planReads(cs, 750)), [[0, 1100, [0, 1, 2]]]);
  assert.deepEqual(shape(planReads(cs, 0)), [[0, 100, [0]], [150, 100, [1]], [1000, 100, [2]]]);
  assert.deepEqual(shape(planReads([chunk(0, 0, 100), chunk(1, 100, 100)], 0)), [[0, 200, [0, 1]]], 'adjacent merges even with no gap allowed');
});

test('planReads: the default gap is 64 KiB', () => {
  const cs = [chunk(0, 0, 10), chunk(1, 10 + 64 * KiB, 10), chunk(2, 20 + 128 * KiB + 1, 10)];
  assert.deepEqual(shape(planReads(cs)), [[0, 20 + 64 * KiB, [0, 1]], [20 + 128 * KiB + 1, 10, [2]]]);
});

test('planReads: a read never grows past maxRead; a single larger chunk still gets its read', () => {
  const cs = Array.from({ length: 10 }, (_, i) => chunk(i, i * 100, 100));
  assert.deepEqual(shape(planReads(cs, 0, 300)), [[0, 300, [0, 1, 2]], [300, 300, [3, 4, 5]], [600, 300, [6, 7, 8]], [900, 100, [9]]]);
  assert.deepEqual(shape(planReads(cs, 0, 299)), [[0, 200, [0, 1]], [200, 200, [2, 3]], [400, 200, [4, 5]], [600, 200, [6, 7]], [800, 200, [8, 9]]]);
  assert.deepEqual(shape(planReads([chunk(0, 0, 500), chunk(1, 500, 10)], 0, 300)), [[0, 500, [0]], [500, 10, [1]]]);
  // The default cap is 16 MiB: 17 adjacent 1 MiB chunks need two reads.
  const big = Array.from({ length: 17 }, (_, i) => chunk(i, i * MiB, MiB));
  assert.deepEqual(planReads(big).map((r) => r.chunks.length), [16, 1]);
});

test('planReads: chunks sharing compressed bytes extend one read; empty input plans nothing', () => {
  const cs = [chunk(0, 0, 100), chunk(1, 50, 100), chunk(2, 60, 20)];
  assert.deepEqual(shape(planReads(cs, 0)), [[0, 150, [0, 1, 2]]]);
  assert.deepEqual(planReads([]), []);
});

test('planReads: every chunk lands in exactly one read that contains it (randomised)', () => {
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let round = 0; round < 200; round++) {
    const cs: BlobChunk[] = [];
    let at = 0;
    for (let i = 0; i < 1 + Math.floor(rnd() * 30); i++) {
      at += Math.floor(rnd() * 3000) * (rnd() < 0.5 ? 0 : 1);
      const size = 1 + Math.floor(rnd() * 5000);
      cs.push(chunk(i, at, size));
      at += size;
    }
    const maxGap = Math.floor(rnd() * 4000);
    const maxRead = 5000 + Math.floor(rnd() * 20000);
    const reads = planReads([...cs].reverse(), maxGap, maxRead);
    const seen = reads.flatMap((r) => r.chunks.map((c) => c.index)).sort((a, b) => a - b);
    assert.deepEqual(seen, cs.map((c) => c.index));
    for (const r of reads) {
      for (const c of r.chunks) assert.ok(c.compressedOffset >= r.offset && c.compressedOffset + c.compressedSize <= r.offset + r.length);
      if (r.chunks.length > 1) assert.ok(r.length <= maxRead, `read of ${r.length} > ${maxRead}`);
    }
    for (let i = 1; i < reads.length; i++) assert.ok(reads[i]!.offset >= reads[i - 1]!.offset + reads[i - 1]!.length, 'reads do not overlap');
  }
});

// ---- ChunkReader on built blobs ----

const CS = 64 * KiB;
let zimg: BuiltImage; // zstd
let rawimg: BuiltImage; // compressor none: a flipped byte reaches the digest check
const FILES = {
  'a.txt': textBytes(5 * CS + 1234, 41),
  'r.bin': randomBytes(2 * CS, 42),
  'z/small.txt': 'small file',
};

before(async () => {
  zimg = await buildImage(FILES, { chunkSize: CS });
  rawimg = await buildImage(FILES, { chunkSize: CS, compressor: 'none' });
});
after(async () => {
  await zimg?.cleanup();
  await rawimg?.cleanup();
});

async function open(img: BuiltImage) {
  const src = new LocalDirSource(img.blobDir);
  const scripted = new ScriptedSource(src);
  const map = await loadBlobChunkMap(src, img.bootstrap.blobs[0]!, img.bootstrap.chunks);
  src.counters.bytes.clear();
  src.counters.requests.clear();
  return { src, scripted, map };
}

/** The expected uncompressed bytes of each chunk (by ci index), from the source files. */
async function expectedChunks(img: BuiltImage): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  for (const { path, ino } of img.bootstrap.walk()) {
    if ((ino.mode & 0o170000) !== 0o100000 || ino.size === 0) continue;
    const data = await readFile(join(img.src, path));
    for (const m of img.bootstrap.chunkMap(ino)) {
      out.set(m.chunk.blobCiIndex, data.subarray(m.fileOffset, m.fileOffset + m.length));
    }
  }
  return out;
}

test('fetch: every chunk arrives verified and equal to the source bytes, in one merged read', async () => {
  const { src, map } = await open(zimg);
  try {
    const reader = new ChunkReader(src, map);
    const got = new Map<number, Buffer>();
    await reader.fetch(map.chunks, ({ chunk: c, data }) => { got.set(c.index, data); });
    const want = await expectedChunks(zimg);
    assert.equal(got.size, map.chunks.length);
    for (const [i, d] of want) assert.ok(got.get(i)!.equals(d), `chunk ${i}`);
    const id = map.blobId;
    assert.equal(src.counters.requests.get(id), 1, 'the blob\'s chunks are contiguous: one read');
    const lastEnd = Math.max(...map.chunks.map((c) => c.compressedOffset + c.compressedSize));
    assert.equal(src.counters.bytes.get(id), lastEnd, 'exactly the chunk data, no more');
  } finally {
    await src.close();
  }
});

test('fetch: counters at the source show merged and split reads', async () => {
  const { src, map } = await open(zimg);
  try {
    const id = map.blobId;
    const pick = [map.chunks[0]!, map.chunks[2]!, map.chunks[4]!];
    await new ChunkReader(src, map, { maxGap: 0 }).fetch(pick, () => undefined);
    assert.equal(src.counters.requests.get(id), 3, 'three separate chunks, no gap allowed: three reads');
    assert.equal(src.counters.bytes.get(id), pick.reduce((n, c) => n + c.compressedSize, 0));
    src.counters.bytes.clear();
    src.counters.requests.clear();
    await new ChunkReader(src, map, { maxGap: 1 << 30 }).fetch(pick, () => undefined);
    assert.equal(src.counters.requests.get(id), 1, 'gaps read through: one read');
    assert.equal(src.counters.bytes.get(id), pick[2]!.compressedOffset + pick[2]!.compressedSize - pick[0]!.compressedOffset);
    src.counters.bytes.clear();
    src.counters.requests.clear();
    await new ChunkReader(src, map, { maxGap: 0 }).fetch([map.chunks[1]!, map.chunks[2]!, map.chunks[3]!], () => undefined);
    assert.equal(src.counters.requests.get(id), 1, 'adjacent chunks: one read');
  } finally {
    await src.close();
  }
});

test('fetch: a digest mismatch is DigestMismatchError and only the bad chunk is withheld', async () => {
  const { src, scripted, map } = await open(rawimg);
  try {
    const victim = map.chunks[2]!;
    assert.equal(victim.compressed, false);
    scripted.corrupt = (r, bytes) => { bytes[victim.compressedOffset - r.offset + 100]! ^= 0x20; };
    const delivered: number[] = [];
    const errors: Array<[number, Error]> = [];
    await new ChunkReader(scripted, map).fetch(map.chunks, ({ chunk: c }) => { delivered.push(c.index); }, {
      onError: (c, err) => errors.push([c.index, err]),
    });
    assert.deepEqual(delivered.sort((a, b) => a - b), map.chunks.map((c) => c.index).filter((i) => i !== victim.index));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]![0], victim.index);
    const err = errors[0]![1];
    assert.ok(err instanceof DigestMismatchError, String(err));
    assert.equal(err.code, 'ONDINE_ERR_DIGEST_MISMATCH');
    assert.equal(err.errno, 5, 'EIO');
    assert.equal(err.chunkIndex, victim.index);
    assert.equal(err.blobId, map.blobId);
  } finally {
    await src.close();
  }
});

test('fetch: a tampered digest in the map is caught the same way', async () => {
  const { src, map } = await open(zimg);
  try {
    // Plain copies (the map's chunks spell their digest through a getter, which a spread drops).
    const chunks = map.chunks.map((c) => ({
      index: c.index, compressedOffset: c.compressedOffset, compressedSize: c.compressedSize,
      uncompressedOffset: c.uncompressedOffset, uncompressedSize: c.uncompressedSize, compressed: c.compressed, digest: c.digest,
    }));
    chunks[1]!.digest = '0'.repeat(64);
    const tampered = new BlobChunkMap(map.entry, chunks);
    const delivered: number[] = [];
    const failed: number[] = [];
    await new ChunkReader(src, tampered).fetch(tampered.chunks, ({ chunk: c }) => { delivered.push(c.index); }, { onError: (c, e) => { assert.ok(e instanceof DigestMismatchError); failed.push(c.index); } });
    assert.deepEqual(failed, [1]);
    assert.equal(delivered.length, map.chunks.length - 1);
    assert.ok(!delivered.includes(1));
  } finally {
    await src.close();
  }
});

test('fetch: a compressed chunk that no longer decodes is CorruptError and withheld', async () => {
  const { src, scripted, map } = await open(zimg);
  try {
    const victim = map.chunks.find((c) => c.compressed)!;
    // Clobber its frame magic: the zstd decoder must refuse it outright.
    scripted.corrupt = (r, bytes) => { bytes.fill(0, victim.compressedOffset - r.offset, victim.compressedOffset - r.offset + 4); };
    const delivered: number[] = [];
    const errors: Array<[number, Error]> = [];
    await new ChunkReader(scripted, map).fetch(map.chunks, ({ chunk: c }) => { delivered.push(c.index); }, { onError: (c, e) => errors.push([c.index, e]) });
    assert.deepEqual(errors.map(([i]) => i), [victim.index]);
    assert.ok(errors[0]![1] instanceof CorruptError);
    assert.equal(delivered.length, map.chunks.length - 1);
  } finally {
    await src.close();
  }
});

test('fetch without onError: good chunks are delivered, then the first failure rejects', async () => {
  const { src, scripted, map } = await open(rawimg);
  try {
    const victim = map.chunks[3]!;
    scripted.corrupt = (r, bytes) => { bytes[victim.compressedOffset - r.offset]! ^= 1; };
    const delivered: number[] = [];
    const err = await rejectsWith(() => new ChunkReader(scripted, map).fetch(map.chunks, ({ chunk: c }) => { delivered.push(c.index); }), 'ONDINE_ERR_DIGEST_MISMATCH');
    assert.ok(err instanceof DigestMismatchError);
    assert.equal(delivered.length, map.chunks.length - 1);
  } finally {
    await src.close();
  }
});

test('fetch: a failed source read reports each chunk of that read to onError, other reads still deliver', async () => {
  const { src, scripted, map } = await open(zimg);
  try {
    // maxGap 0 and chunks {0,1,2} + {4,5}: two reads. Fail the second.
    const first = [map.chunks[0]!, map.chunks[1]!, map.chunks[2]!];
    const second = [map.chunks[4]!, map.chunks[5]!];
    const boom = new FetchError('connection reset by test');
    scripted.fail = (r) => (r.offset === second[0]!.compressedOffset ? boom : undefined);
    const delivered: number[] = [];
    const errors: Array<[number, Error]> = [];
    await new ChunkReader(scripted, map, { maxGap: 0 }).fetch([...second, ...first], ({ chunk: c }) => { delivered.push(c.index); }, {
      onError: (c, e) => errors.push([c.index, e]),
    });
    assert.equal(scripted.log.length, 2);
    assert.deepEqual(delivered.sort(), first.map((c) => c.index).sort());
    assert.deepEqual(errors.map(([i]) => i).sort(), second.map((c) => c.index).sort());
    for (const [, e] of errors) assert.equal(e, boom, 'the source\'s own error, not a wrapper');
  } finally {
    await src.close();
  }
});

test('fetch: a failing read of one merged range fails all its chunks; without onError the call rejects', async () => {
  const { src, scripted, map } = await open(zimg);
  try {
    scripted.fail = () => new FetchError('no route to blob');
    const errors: number[] = [];
    await new ChunkReader(scripted, map).fetch(map.chunks, () => assert.fail('nothing may be delivered'), { onError: (c) => errors.push(c.index) });
    assert.equal(scripted.log.length, 1, 'one merged read');
    assert.deepEqual(errors.sort((a, b) => a - b), map.chunks.map((c) => c.index));
    await rejectsWith(() => new ChunkReader(scripted, map).fetch(map.chunks, () => undefined), 'ONDINE_ERR_FETCH', /no route/);
  } finally {
    await src.close();
  }
});

test('verify: chunks without a digest are refused unless requireDigest is false', async () => {
  const boot = parseBootstrap(await readFile(FIXTURE_BOOT));
  const src = new LocalDirSource(FIXTURE_DIR);
  try {
    const bare = await loadBlobChunkMap(src, boot.blobs[0]!, []);
    const errors: Error[] = [];
    await new ChunkReader(src, bare).fetch(bare.chunks, () => assert.fail('unverifiable chunk delivered'), { onError: (_c, e) => errors.push(e) });
    assert.equal(errors.length, 2);
    for (const e of errors) assert.ok(e instanceof UnsupportedError);
    const got: VerifiedChunk[] = [];
    await new ChunkReader(src, bare, { requireDigest: false }).fetch(bare.chunks, (v) => { got.push(v); });
    assert.deepEqual(got.map((v) => v.data.length).sort(), [13400, 16931]);
  } finally {
    await src.close();
  }
});

test('Nydus fixture: both zstd chunks fetched in one read and verified against blake3 digests', async () => {
  const boot = parseBootstrap(await readFile(FIXTURE_BOOT));
  const src = new LocalDirSource(FIXTURE_DIR);
  try {
    const map = await loadBlobChunkMap(src, boot.blobs[0]!, boot.chunks);
    src.counters.bytes.clear();
    src.counters.requests.clear();
    const got = new Map<number, Buffer>();
    await new ChunkReader(src, map).fetch(map.chunks, ({ chunk: c, data }) => { got.set(c.index, data); });
    assert.equal(src.counters.requests.get(map.blobId), 1);
    assert.equal(src.counters.bytes.get(map.blobId), 4828 + 2974);
    assert.equal(got.get(0)!.length, 16931);
    assert.equal(got.get(1)!.length, 13400);
    // The files are Rust sources (lib.rs, sync_io.rs).
    assert.match(got.get(0)!.toString('utf8'), /\bfn\b|\buse\b/);
  } finally {
    await src.close();
  }
});
