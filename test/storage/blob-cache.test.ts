// The range filler behind every cachefiles READ: it writes exactly what the unpacked blob
// holds, fetches each chunk once however many readers want it (and never reads a chunk's
// bytes again through a gap), reads ahead only for sequential readers, writes nothing it
// could not verify, and trusts what the cache file already holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { alignUp } from '../../src/format/bytes.js';
import { BlobHandle, ChunkedBlobCache, FlatBlobCache, type BlobCache, type FillAbort, type RangeWriter } from '../../src/storage/blob-cache.js';
import { loadBlobChunkMap, type BlobChunk } from '../../src/storage/blob-chunk-map.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { DecodePool } from '../../src/storage/decode-pool.js';
import { FillScheduler } from '../../src/storage/fill-scheduler.js';
import type { ChunkedCacheOptions } from '../../src/storage/blob-cache.js';
import { buildImage, KiB, MiB, randomBytes, ReversingPool, ScriptedSource, textBytes, unpackAll, type BuiltImage } from './support.js';

const BLOCK = 4096;

/** A blob cache with one writer for every fill (the tests' cache file). */
function bind<C extends BlobCache>(blobCache: C, writer: RangeWriter) {
  return { cache: blobCache, fill: (offset: number, length: number, abort?: FillAbort) => blobCache.fill(offset, length, writer, abort) };
}

/** A cache file in memory: records writes, answers isCached from what was written. */
class MemoryCache implements RangeWriter {
  readonly bytes: Buffer;
  readonly written = new Set<number>(); // block numbers
  readonly writes: { offset: number; length: number }[] = [];
  allocated = 0;

  constructor(size: number, withAlloc = false) {
    this.bytes = Buffer.alloc(alignUp(size, BLOCK));
    if (withAlloc) {
      this.alloc = (n: number) => {
        this.allocated++;
        return Buffer.allocUnsafe(alignUp(n, BLOCK)).fill(0xee); // stale contents on purpose
      };
    }
  }

  alloc?: (size: number) => Uint8Array;

  async write(offset: number, data: Uint8Array): Promise<void> {
    assert.equal(offset % BLOCK, 0, `write at ${offset} is not block aligned`);
    const length = alignUp(data.length, BLOCK);
    this.writes.push({ offset, length });
    this.bytes.set(data, offset);
    this.bytes.fill(0, offset + data.length, offset + length);
    for (let b = offset / BLOCK; b < (offset + length) / BLOCK; b++) this.written.add(b);
  }

  isCached(offset: number, length: number): boolean {
    for (let b = Math.floor(offset / BLOCK); b < Math.ceil((offset + length) / BLOCK); b++) if (!this.written.has(b)) return false;
    return true;
  }

  /** Asserts the written blocks of [offset, end) hold what `expected` holds. */
  assertMatches(expected: Buffer, offset: number, end: number): void {
    for (let b = Math.floor(offset / BLOCK); b < Math.ceil(end / BLOCK); b++) {
      assert.ok(this.written.has(b), `block ${b} was not written`);
      const want = Buffer.alloc(BLOCK);
      expected.copy(want, 0, b * BLOCK, Math.min((b + 1) * BLOCK, expected.length));
      assert.ok(this.bytes.subarray(b * BLOCK, (b + 1) * BLOCK).equals(want), `block ${b} differs from the unpacked blob`);
    }
  }
}

/** A source whose reads wait for release() when they touch a held chunk. */
class GatedSource extends ScriptedSource {
  private held: { offset: number; end: number } | undefined;
  private waiters: (() => void)[] = [];
  hold(c: BlobChunk): void {
    this.held = { offset: c.compressedOffset, end: c.compressedOffset + c.compressedSize };
  }
  release(): void {
    this.held = undefined;
    for (const w of this.waiters.splice(0)) w();
  }
  override async read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const h = this.held;
    if (h && offset < h.end && offset + length > h.offset) await new Promise<void>((r) => this.waiters.push(r));
    return super.read(blobId, offset, length, signal);
  }
}

let img: BuiltImage;
let blob: Buffer;
let blobId: string;
let chunks: readonly BlobChunk[];
let pool: DecodePool;

before(async () => {
  // Mixed compressibility, so compressed chunk sizes differ; 16 KiB chunks: many of them.
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 12; i++) files[`f${i}`] = i % 2 ? randomBytes(40 * KiB + i * 777, i) : textBytes(56 * KiB + i * 333, i);
  img = await buildImage(files, { chunkSize: 16 * KiB });
  assert.equal(img.bootstrap.blobs.length, 1);
  blobId = img.bootstrap.blobs[0]!.blobId;
  blob = (await unpackAll(img.bootstrap, [img.blobDir], img.root)).get(blobId)!;
  chunks = (await loadBlobChunkMap(new LocalDirSource(img.blobDir), img.bootstrap.blobs[0]!, img.bootstrap.chunks)).chunks;
  assert.ok(chunks.length >= 30, `only ${chunks.length} chunks`);
  pool = new DecodePool({ size: 2 });
});
after(async () => {
  await pool?.close();
  await img.cleanup();
});

function setup(opts: { amplifyBytes?: number; withAlloc?: boolean; cache?: MemoryCache; pool?: DecodePool; scheduler?: FillScheduler; more?: ChunkedCacheOptions } = {}) {
  const source = new GatedSource(new LocalDirSource(img.blobDir));
  const entry = img.bootstrap.blobs[0]!;
  const handle = new BlobHandle(blobId, source, () => loadBlobChunkMap(source, entry, img.bootstrap.chunks), {
    ...(opts.pool ? { pool: opts.pool, poolMinBytes: 1 } : {}),
    ...(opts.scheduler ? { scheduler: opts.scheduler } : {}),
  });
  const cache = opts.cache ?? new MemoryCache(entry.uncompressedSize, opts.withAlloc);
  const filler = bind(new ChunkedBlobCache(entry.uncompressedSize, handle, { amplifyBytes: opts.amplifyBytes ?? 0, ...opts.more }), cache);
  /** Source bytes read for chunk data (the chunk-info table read is not counted). */
  const dataReads = () => source.log.filter((r) => r.offset < entry.ciOffset || entry.ciCompressedSize === 0);
  return { source, cache, filler, dataReads, entry };
}

const mid = (i: number) => chunks[i]!;

for (const mode of ['sync', 'pool'] as const) {
  // Every filler test runs twice: decoding on this thread, and on the decode pool (every chunk,
  // whatever its size, so chunks of one read complete and arrive in any order).
  const tag = mode === 'pool' ? ' (decode pool)' : '';
  const use = (opts: Parameters<typeof setup>[0] = {}) => setup({ ...opts, ...(mode === 'pool' ? { pool } : {}) });

  test(`filler${tag}: random ranges fill with exactly the unpacked bytes, fetching only covering chunks`, async () => {
    const { cache, filler, dataReads } = use();
    const ranges = [[0, 1], [5 * BLOCK, 3 * BLOCK], [blob.length - 100, 100], [mid(10).uncompressedOffset + 1000, 20 * KiB]] as const;
    for (const [off, len] of ranges) {
      await filler.fill(off, len);
      cache.assertMatches(blob, off, off + len);
    }
    const fetched = dataReads().reduce((s, r) => s + r.length, 0);
    // Whole blocks are filled: a chunk sharing a block with a range is part of it.
    const blocks = ranges.map(([o, l]) => [Math.floor(o / BLOCK) * BLOCK, alignUp(o + l, BLOCK)] as const);
    const needed = new Set(blocks.flatMap(([s, e]) => chunks.filter((c) => c.uncompressedOffset < e && c.uncompressedOffset + c.uncompressedSize > s)));
    assert.equal(fetched, [...needed].reduce((s, c) => s + c.compressedSize, 0), 'fetched exactly the covering chunks');
  });

  test(`filler${tag}: many concurrent readers of overlapping ranges fetch every chunk once`, async () => {
    const { cache, filler, dataReads } = use({ amplifyBytes: 64 * KiB });
    const fills: Promise<void>[] = [];
    for (let r = 0; r < 8; r++) {
      for (let off = (r * 3 * BLOCK) % (64 * KiB); off < blob.length; off += 48 * KiB) fills.push(filler.fill(off, 24 * KiB));
    }
    await Promise.all(fills);
    const seen = new Map<number, number>();
    for (const r of dataReads()) {
      for (const c of chunks) {
        if (c.compressedOffset < r.offset + r.length && c.compressedOffset + c.compressedSize > r.offset) seen.set(c.index, (seen.get(c.index) ?? 0) + 1);
      }
    }
    for (const [i, n] of seen) assert.equal(n, 1, `chunk ${i} was read ${n} times from the source`);
    for (let off = 0; off < blob.length; off += 48 * KiB) cache.assertMatches(blob, off, Math.min(off + 24 * KiB, blob.length));
  });

  test(`filler${tag}: a chunk in flight between two needed chunks is waited for, not read again through the gap`, async () => {
    const { source, cache, filler, dataReads } = use();
    const [a, b, c] = [mid(4), mid(5), mid(6)];
    source.hold(b);
    const first = filler.fill(b.uncompressedOffset, BLOCK);
    await new Promise((r) => setImmediate(r));
    const second = filler.fill(a.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize - a.uncompressedOffset);
    await new Promise((r) => setImmediate(r));
    source.release();
    await Promise.all([first, second]);
    const reads = dataReads();
    const overB = reads.filter((r) => r.offset < b.compressedOffset + b.compressedSize && r.offset + r.length > b.compressedOffset);
    assert.equal(overB.length, 1, `chunk ${b.index}'s bytes were read ${overB.length} times: ${JSON.stringify(reads)}`);
    cache.assertMatches(blob, a.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize);
  });

  test(`filler${tag}: sequential READs read ahead within the window; a random READ fetches only what it needs`, async () => {
    const window = 64 * KiB;
    const { filler, dataReads } = use({ amplifyBytes: window });
    // Random: two far-apart READs, no read-ahead.
    await filler.fill(mid(20).uncompressedOffset, BLOCK);
    await filler.fill(mid(2).uncompressedOffset, BLOCK);
    assert.equal(filler.cache.stats.amplifiedChunks, 0, 'random READs read ahead');
    assert.equal(dataReads().length, 2);
    // Sequential: the next READ starts where the last one ended.
    await filler.fill(mid(3).uncompressedOffset, BLOCK);
    assert.ok(filler.cache.stats.amplifiedChunks > 0, 'a sequential READ did not read ahead');
    const ahead = dataReads().slice(2).reduce((s, r) => s + r.length, 0) - mid(3).compressedSize;
    assert.ok(ahead > 0 && ahead <= window + 16 * KiB, `read ahead ${ahead} bytes for a ${window}-byte window`);
    assert.ok(!dataReads().slice(2).some((r) => r.offset <= mid(20).compressedOffset && r.offset + r.length > mid(20).compressedOffset), 'read ahead refetched a cached chunk');
  });

  test(`filler${tag}: a corrupt chunk is never written and fails its reader; its neighbours are written`, async () => {
    const { source, cache, filler } = use({ withAlloc: true });
    const [a, bad, c] = [mid(7), mid(8), mid(9)];
    source.corrupt = (r, bytes) => {
      const at = bad.compressedOffset - r.offset;
      if (at >= 0 && at < r.length) bytes[at + Math.floor(bad.compressedSize / 2)]! ^= 0xff;
    };
    await assert.rejects(filler.fill(a.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize - a.uncompressedOffset));
    assert.ok(cache.allocated > 0, 'the run buffer path was not taken');
    for (let b = Math.floor(bad.uncompressedOffset / BLOCK); b < Math.ceil((bad.uncompressedOffset + bad.uncompressedSize) / BLOCK); b++) {
      assert.ok(!cache.written.has(b), `block ${b} of the corrupt chunk was written`);
    }
    cache.assertMatches(blob, a.uncompressedOffset, a.uncompressedOffset + a.uncompressedSize);
    cache.assertMatches(blob, c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize);
    // Once the source serves good bytes, the same READ succeeds.
    source.corrupt = undefined;
    await filler.fill(bad.uncompressedOffset, bad.uncompressedSize);
    cache.assertMatches(blob, bad.uncompressedOffset, bad.uncompressedOffset + bad.uncompressedSize);
  });

  test(`filler${tag}: run buffers from the writer are written whole, stale padding zeroed`, async () => {
    const { cache, filler } = use({ withAlloc: true, amplifyBytes: 256 * KiB });
    for (let off = 0; off < blob.length; off += 8 * KiB) await filler.fill(off, 8 * KiB);
    cache.assertMatches(blob, 0, blob.length);
    assert.ok(cache.allocated > 0);
    assert.ok(cache.writes.some((w) => w.length > 16 * KiB), 'read-ahead chunks were not written as runs');
  });

  test(`filler${tag}: what the cache file already holds is not fetched again (a restarted daemon)`, async () => {
    const first = use({ amplifyBytes: 128 * KiB });
    for (let off = 0; off < blob.length; off += 32 * KiB) await first.filler.fill(off, 32 * KiB);
    const again = use({ cache: first.cache, amplifyBytes: 128 * KiB });
    for (let off = 0; off < blob.length; off += 32 * KiB) await again.filler.fill(off, 32 * KiB);
    assert.equal(again.dataReads().length, 0, 'fetched data the cache file holds');
    again.cache.assertMatches(blob, 0, blob.length);
  });

}
test('flat filler: a window fills whole aligned windows once, shared by concurrent READs', async () => {
  const size = 3 * MiB + 1234;
  const data = randomBytes(size, 99);
  const reads: [number, number][] = [];
  const cache = new MemoryCache(size);
  const flat = bind(new FlatBlobCache(size, async (o, n) => { reads.push([o, n]); return data.subarray(o, Math.min(o + n, size)); }, { window: MiB }), cache);
  await Promise.all([flat.fill(10, 100), flat.fill(MiB - 1, 2), flat.fill(2 * MiB + 5, 50)]);
  cache.assertMatches(data, 0, 3 * MiB);
  assert.ok(!cache.isCached(3 * MiB, 1), 'the last window was filled without a READ in it');
  const readBytes = reads.reduce((s, [, n]) => s + n, 0);
  assert.equal(readBytes, 3 * MiB, 'windows were read more than once');
  await flat.fill(3 * MiB, 1);
  cache.assertMatches(data, 3 * MiB, size);
  const before = reads.length;
  await flat.fill(5, 5);
  assert.equal(reads.length, before, 'a cached window was read again');
});

test('regression: lz4 chunks (a codec that cannot decompress into caller memory) fill the writer\'s run buffer, not stale bytes', async () => {
  // Before the fix, verify() decoded lz4 into new memory and left the run buffer's slot
  // stale, and writeWhole wrote the buffer: the cache file got 0xee instead of the chunk.
  const lz = await buildImage({ a: textBytes(200 * KiB, 5), b: textBytes(90 * KiB, 6) }, { chunkSize: 64 * KiB, compressor: 'lz4' });
  try {
    const entry = lz.bootstrap.blobs[0]!;
    const want = (await unpackAll(lz.bootstrap, [lz.blobDir], lz.root)).get(entry.blobId)!;
    for (const readerOpts of [{}, { pool, poolMinBytes: 1 }]) {
      const source = new LocalDirSource(lz.blobDir);
      const handle = new BlobHandle(entry.blobId, source, () => loadBlobChunkMap(source, entry, lz.bootstrap.chunks), readerOpts);
      const map = (await handle.chunkReader()).map;
      assert.ok(map.chunks.some((c) => c.compressed), 'no lz4-compressed chunk to test with');
      const cache = new MemoryCache(entry.uncompressedSize, true);
      const filler = bind(new ChunkedBlobCache(entry.uncompressedSize, handle, { amplifyBytes: 0 }), cache);
      await filler.fill(0, entry.uncompressedSize);
      assert.ok(cache.allocated > 0, 'the run buffer path was not taken');
      cache.assertMatches(want, 0, want.length);
      await source.close();
    }
  } finally {
    await lz.cleanup();
  }
});

test('filler (decode pool): chunks verified in reverse order are still written whole, in runs, with the right bytes', async () => {
  const reversing = new ReversingPool({ size: 2 });
  try {
    const source = new LocalDirSource(img.blobDir);
    const entry = img.bootstrap.blobs[0]!;
    const handle = new BlobHandle(blobId, source, () => loadBlobChunkMap(source, entry, img.bootstrap.chunks), { pool: reversing, poolMinBytes: 1 });
    const cache = new MemoryCache(entry.uncompressedSize, true);
    const filler = bind(new ChunkedBlobCache(entry.uncompressedSize, handle, { amplifyBytes: 256 * KiB }), cache);
    // Sequential READs: each carries read-ahead, so one source read holds many chunks.
    for (let off = 0; off < blob.length; off += 8 * KiB) await filler.fill(off, 8 * KiB);
    assert.ok(reversing.reversedBatches > 0, 'no read delivered more than one chunk out of order');
    cache.assertMatches(blob, 0, blob.length);
    assert.ok(cache.writes.some((w) => w.length > 16 * KiB), 'read-ahead chunks were not written as runs');
    // And a READ spanning many chunks at once, on a fresh cache.
    const cold = new MemoryCache(entry.uncompressedSize, true);
    const one = bind(new ChunkedBlobCache(entry.uncompressedSize, handle, { amplifyBytes: 0 }), cold);
    await one.fill(0, blob.length);
    cold.assertMatches(blob, 0, blob.length);
    await source.close();
  } finally {
    await reversing.close();
  }
});

test('a chunk whose fill was cancelled at its deadline is refused at once for failedChunkMs, then fetched again', async () => {
  const entry = img.bootstrap.blobs[0]!;
  const local = new LocalDirSource(img.blobDir);
  const map = await loadBlobChunkMap(local, entry, img.bootstrap.chunks);
  let hang = true;
  const reads: number[] = [];
  // A registry that never answers, but honours cancellation (as the registry client does).
  const source = {
    description: 'hanging',
    async read(id: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
      reads.push(offset);
      if (!hang) return local.read(id, offset, length);
      return new Promise<Buffer>((_, reject) => signal?.addEventListener('abort', () => reject(new DOMException('cancelled', 'AbortError'))));
    },
    size: (id: string) => local.size(id),
  };
  let now = 1_000;
  const handle = new BlobHandle(blobId, source, async () => map);
  const cache = new MemoryCache(entry.uncompressedSize);
  const filler = bind(new ChunkedBlobCache(entry.uncompressedSize, handle, { amplifyBytes: 0, failedChunkMs: 5_000, now: () => now }), cache);
  const c = mid(12);
  const ac = new AbortController();
  const first = filler.fill(c.uncompressedOffset, c.uncompressedSize, ac);
  // A second event for the same chunk waits on the same fetch, and ends with it.
  await new Promise((r) => setTimeout(r, 10));
  const second = filler.fill(c.uncompressedOffset + BLOCK, BLOCK);
  ac.abort();
  await assert.rejects(first);
  await assert.rejects(second);
  assert.equal(reads.length, 1, 'one fetch for both');
  // Events overlapping it meanwhile: refused at once, no fetch.
  now += 4_000;
  await assert.rejects(filler.fill(c.uncompressedOffset + 100, 10), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ONDINE_ERR_FETCH');
    assert.match(err.message, new RegExp(`chunk ${c.index} of blob ${blobId} failed 4 s ago .*refused for 1 s more`));
    return true;
  });
  assert.equal(reads.length, 1);
  // Another chunk is not affected; after the mark, the first event fetches again.
  hang = false;
  await filler.fill(mid(20).uncompressedOffset, 1);
  now += 1_001;
  await filler.fill(c.uncompressedOffset, c.uncompressedSize);
  cache.assertMatches(blob, c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize);
  assert.equal(reads.length, 3);
});

/** The chunk positions whose compressed bytes some source read of `reads` covered. */
function fetchedChunks(reads: readonly { offset: number; length: number }[]): Set<number> {
  const out = new Set<number>();
  for (const r of reads) {
    chunks.forEach((c, i) => {
      if (c.compressedOffset < r.offset + r.length && c.compressedOffset + c.compressedSize > r.offset) out.add(i);
    });
  }
  return out;
}

test('read-ahead: a stream\'s window opens at nothing, doubles with each sequential READ, and stops at the cap', async () => {
  const start = 16 * KiB;
  const cap = 128 * KiB;
  const { filler, dataReads } = setup({ amplifyBytes: cap, more: { readAheadStartBytes: start } });
  const maxChunk = Math.max(...chunks.map((c) => c.compressedSize));
  const aheads: number[] = [];
  for (let i = 0; i < 16; i++) {
    await filler.fill(mid(i).uncompressedOffset, BLOCK);
    const fetched = fetchedChunks(dataReads());
    let ahead = 0;
    for (let j = i + 1; fetched.has(j); j++) ahead += chunks[j]!.compressedSize;
    aheads.push(ahead);
  }
  assert.equal(aheads[0], 0, 'a first READ read ahead');
  assert.ok(aheads[1]! > 0 && aheads[1]! < start + maxChunk, `first window ${aheads[1]} for a start of ${start}`);
  for (let i = 2; i < aheads.length; i++) assert.ok(aheads[i]! < cap + maxChunk, `window ${aheads[i]} past the ${cap} cap at READ ${i}`);
  assert.ok(aheads.some((a) => a >= cap), `the window never reached the cap: ${aheads.join(' ')}`);
  // It grew step by step: the window before the cap was reached stays within a doubling.
  const firstFull = aheads.findIndex((a) => a >= cap);
  assert.ok(firstFull >= 3, `the window reached the cap after ${firstFull} READs: ${aheads.join(' ')}`);
});

test('read-ahead: however often a stream is heard of (read hints), its window never runs further ahead than the stream has read', async () => {
  const { cache, filler, dataReads } = setup({ amplifyBytes: 8 << 20, more: { readAheadStartBytes: 16 * KiB } });
  const maxChunk = Math.max(...chunks.map((c) => c.compressedSize));
  await filler.fill(mid(0).uncompressedOffset, BLOCK);
  for (let i = 1; i < 12; i++) {
    // Every chunk a hint (the reader inside read-ahead already landed), or a fill where it has not.
    if (cache.isCached(mid(i).uncompressedOffset, mid(i).uncompressedSize)) await filler.cache.advise!(mid(i).uncompressedOffset, BLOCK, cache);
    else await filler.fill(mid(i).uncompressedOffset, BLOCK);
    await new Promise((r) => setTimeout(r, 2));
    const fetched = fetchedChunks(dataReads());
    let ahead = 0;
    for (let j = i + 1; fetched.has(j); j++) ahead += chunks[j]!.compressedSize;
    const read = mid(i).compressedOffset + mid(i).compressedSize - mid(0).compressedOffset;
    assert.ok(ahead <= Math.max(read, 16 * KiB) + maxChunk, `after reading ${read} bytes the window ran ${ahead} bytes ahead (READ ${i})`);
  }
  assert.ok(fetchedChunks(dataReads()).has(12), 'read-ahead ran ahead of the reader at all');
});

test('read-ahead: a wide window goes out as several source reads of at most readAheadReadBytes, all in flight at once', async () => {
  const { source, filler, dataReads } = setup({ amplifyBytes: 256 * KiB, more: { readAheadStartBytes: 256 * KiB, readAheadReadBytes: 40 * KiB } });
  await filler.fill(mid(0).uncompressedOffset, BLOCK);
  // Hold the chunk just past the first read-ahead read, so reads issued later would show.
  const before = dataReads().length;
  source.hold(mid(30));
  const second = filler.fill(mid(1).uncompressedOffset, BLOCK);
  await second;
  const ahead = dataReads().slice(before).filter((r) => r.offset > mid(1).compressedOffset);
  assert.ok(ahead.length >= 3, `read-ahead went out as ${ahead.length} read(s)`);
  for (const r of ahead) assert.ok(r.length <= 40 * KiB || fetchedChunks([r]).size === 1, `a read-ahead read of ${r.length} bytes`);
  source.release();
});

test('advise(): a READ served without a fill moves its stream on and continues read-ahead through the writer; never throws', async () => {
  const { cache, filler, dataReads } = setup({ amplifyBytes: 64 * KiB, more: { readAheadStartBytes: 32 * KiB } });
  const c = filler.cache;
  await filler.fill(mid(0).uncompressedOffset, mid(2).uncompressedOffset - mid(0).uncompressedOffset);
  await filler.fill(mid(2).uncompressedOffset, BLOCK);
  const fetched = fetchedChunks(dataReads());
  let last = 2;
  while (fetched.has(last + 1)) last++;
  assert.ok(last > 2, 'the sequential fill read ahead');
  // The reader now reads what read-ahead filled: no fill, but hints.
  const n = dataReads().length;
  for (let i = 3; i <= last; i++) c.advise!(mid(i).uncompressedOffset, mid(i).uncompressedSize, cache);
  // advise returns at once; its read-ahead lands shortly after.
  for (let t = 0; t < 100 && !cache.isCached(mid(last + 1).uncompressedOffset, mid(last + 1).uncompressedSize); t++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(dataReads().length > n, 'advise() fetched nothing');
  cache.assertMatches(blob, mid(last + 1).uncompressedOffset, mid(last + 1).uncompressedOffset + mid(last + 1).uncompressedSize);
  // A hint far away starts a stream of its own: nothing fetched for it.
  const m = dataReads().length;
  c.advise!(mid(40).uncompressedOffset, BLOCK, cache);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(dataReads().length, m, 'a random hint read ahead');
  // Hostile hints: past the end, negative, NaN: no throw, nothing fetched.
  assert.doesNotThrow(() => c.advise!(blob.length + BLOCK, BLOCK, cache));
  assert.doesNotThrow(() => c.advise!(-5, -5, cache));
  assert.doesNotThrow(() => c.advise!(Number.NaN, BLOCK, cache));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(dataReads().length, m);
});

test('advise(): a failing source does not throw or reject anywhere', async () => {
  const { source, cache, filler } = setup({ amplifyBytes: 64 * KiB, more: { readAheadStartBytes: 64 * KiB } });
  await filler.fill(mid(0).uncompressedOffset, BLOCK);
  source.fail = () => new Error('source down');
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    filler.cache.advise!(mid(1).uncompressedOffset, BLOCK, cache);
    filler.cache.advise!(mid(2).uncompressedOffset, BLOCK, cache);
    await new Promise((r) => setTimeout(r, 30));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(unhandled, []);
  source.fail = undefined;
  // The failed read-ahead left holes, not bad bytes: a fill of them fetches and writes them.
  await filler.fill(mid(3).uncompressedOffset, mid(3).uncompressedSize);
  cache.assertMatches(blob, mid(3).uncompressedOffset, mid(3).uncompressedOffset + mid(3).uncompressedSize);
});

test('with a scheduler: what a reader waits for goes as demand, read-ahead as its own class, within the budget', async () => {
  const scheduler = new FillScheduler({ budget: 3, reserved: 1 });
  const { cache, filler } = setup({ scheduler, amplifyBytes: 256 * KiB, more: { readAheadStartBytes: 256 * KiB, readAheadReadBytes: 16 * KiB } });
  let maxInFlight = 0;
  const fills: Promise<void>[] = [];
  for (let i = 0; i < 24; i++) {
    fills.push(filler.fill(mid(i).uncompressedOffset, BLOCK));
    if (i % 4 === 3) {
      await new Promise((r) => setImmediate(r));
    }
    // The loader reads the chunk table outside the scheduler; data reads are counted here.
    maxInFlight = Math.max(maxInFlight, scheduler.inFlight((filler.cache as unknown as { blob: { source: object } }).blob.source));
  }
  await Promise.all(fills);
  // Read-ahead goes on after the fills that started it resolved: let it drain (bounded) before
  // checking that every read gave its slot back.
  const drainBy = Date.now() + 5_000;
  while (Object.values(scheduler.stats()).some((c) => c.inFlight > 0 || c.queued > 0) && Date.now() < drainBy) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const st = scheduler.stats();
  assert.ok(st.demand.requests > 0, 'no demand reads');
  assert.ok(st.readahead.requests > 0, 'no read-ahead reads');
  assert.ok(maxInFlight <= 3, `${maxInFlight} reads in flight for a budget of 3`);
  assert.equal(st.demand.inFlight + st.readahead.inFlight, 0);
  for (let i = 0; i < 24; i++) cache.assertMatches(blob, mid(i).uncompressedOffset, mid(i).uncompressedOffset + BLOCK);
});

test('regression: a sequential reader whose next READ starts where its read-ahead ended (the chunks between were filled, so the kernel asked nothing) keeps its window growing', async () => {
  const start = 16 * KiB;
  const cap = 96 * KiB;
  const { filler, dataReads } = setup({ amplifyBytes: cap, more: { readAheadStartBytes: start } });
  const windows: number[] = [];
  let pos = 0;
  for (let n = 0; n < 8 && pos < chunks.length; n++) {
    // The kernel only asks for what the cache file lacks: the first chunk not yet fetched.
    await filler.fill(mid(pos).uncompressedOffset, BLOCK);
    const fetched = fetchedChunks(dataReads());
    let ahead = 0;
    let j = pos + 1;
    for (; fetched.has(j); j++) ahead += chunks[j]!.compressedSize;
    windows.push(ahead);
    pos = j;
  }
  assert.equal(windows[0], 0, 'a first READ read ahead');
  for (let i = 1; i < windows.length; i++) {
    assert.ok(windows[i]! > 0, `READ ${i} (just past the read-ahead) was taken for a new stream: windows ${windows.join(' ')}`);
  }
  assert.ok(windows.slice(1).some((w) => w >= cap), `the window never reached the cap: ${windows.join(' ')}`);
});
