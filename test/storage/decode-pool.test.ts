// Decoding on worker threads gives exactly what decoding on the calling thread gives: the same
// bytes over real built images (every codec and digest the builder writes), the same error
// class, code and message for a bad chunk (which is never delivered), the same requireDigest
// rule. A worker that dies fails only the chunks it held and is replaced; a closed pool sends
// readers back to their own thread; an idle pool never keeps the process alive.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChunkReader } from '../../src/storage/chunk-reader.js';
import { DecodePool, defaultDecodeThreads } from '../../src/storage/decode-pool.js';
import { fromWire, toWire } from '../../src/storage/worker-wire.js';
import { loadBlobChunkMap, type BlobChunk } from '../../src/storage/blob-chunk-map.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { unpackBlob } from '../../src/storage/unpack.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { CorruptError, DecodeWorkerError, DigestMismatchError, OndineError, UnsupportedError } from '../../src/errors.js';
import { DigestAlgo } from '../../src/format/constants.js';
import {
  buildImage, FIXTURE_BOOT, FIXTURE_DIR, KiB, randomBytes, ReversingPool, ScriptedSource, tempDir, textBytes, unpackAll, type BuiltImage,
} from './support.js';

const CS = 256 * KiB;
const FILES = {
  'text.txt': textBytes(6 * CS + 4321, 7),
  'random.bin': randomBytes(2 * CS + 999, 8), // does not compress: stored raw
  'small.txt': textBytes(3000, 9),
};

/** A pool that counts the jobs it is given. */
class CountingPool extends DecodePool {
  jobs = 0;
  override decode(...args: Parameters<DecodePool['decode']>): Promise<Buffer> {
    this.jobs++;
    return super.decode(...args);
  }
}

const images: Record<string, BuiltImage> = {};
let pool: CountingPool;

before(async () => {
  images.zstd = await buildImage(FILES, { chunkSize: CS });
  images.lz4sha = await buildImage(FILES, { chunkSize: CS, compressor: 'lz4', digest: 'sha256' });
  images.gzip = await buildImage(FILES, { chunkSize: CS, compressor: 'gzip' });
  images.none = await buildImage(FILES, { chunkSize: CS, compressor: 'none' });
  pool = new CountingPool({ size: 2 });
});
after(async () => {
  await pool?.close();
  for (const img of Object.values(images)) await img.cleanup();
});

async function open(img: BuiltImage) {
  const src = new LocalDirSource(img.blobDir);
  const scripted = new ScriptedSource(src);
  const map = await loadBlobChunkMap(src, img.bootstrap.blobs[0]!, img.bootstrap.chunks);
  return { src, scripted, map };
}

async function fetchAll(reader: ChunkReader, chunks: readonly BlobChunk[]) {
  const got = new Map<number, Buffer>();
  const errors = new Map<number, Error>();
  const order: number[] = [];
  await reader.fetch(chunks, ({ chunk, data }) => {
    assert.ok(!got.has(chunk.index), `chunk ${chunk.index} delivered twice`);
    order.push(chunk.index);
    got.set(chunk.index, Buffer.from(data));
  }, { onError: (c, e) => errors.set(c.index, e) });
  return { got, errors, order };
}

test('pool: every codec and digest decodes to the same bytes as the calling thread', async () => {
  for (const [name, img] of Object.entries(images)) {
    const { src, map } = await open(img);
    try {
      const before = pool.jobs;
      const sync = await fetchAll(new ChunkReader(src, map), map.chunks);
      const off = await fetchAll(new ChunkReader(src, map, { pool }), map.chunks);
      assert.equal(sync.errors.size, 0, name);
      assert.equal(off.errors.size, 0, name);
      assert.equal(off.got.size, map.chunks.length, name);
      for (const [i, d] of sync.got) assert.ok(off.got.get(i)!.equals(d), `${name}: chunk ${i} differs`);
      const big = map.chunks.filter((c) => c.uncompressedSize >= 128 * KiB).length;
      assert.ok(big >= 6, `${name}: only ${big} chunks reach the pool's threshold`);
      assert.equal(pool.jobs - before, big, `${name}: chunks of 128 KiB and more go to the pool, smaller ones do not`);
    } finally {
      await src.close();
    }
  }
});

test('pool: a whole blob unpacked through the pool is byte-identical to unpacking without', async () => {
  const img = images.zstd!;
  const entry = img.bootstrap.blobs[0]!;
  const want = (await unpackAll(img.bootstrap, [img.blobDir], img.root)).get(entry.blobId)!;
  const src = new LocalDirSource(img.blobDir);
  const work = await tempDir('pool-unpack');
  try {
    const before = pool.jobs;
    const out = join(work.dir, 'blob');
    const r = await unpackBlob(img.bootstrap, entry, src, out, { pool, batchBytes: 3 * CS });
    assert.deepEqual(r.failures, []);
    assert.ok(pool.jobs > before, 'unpack did not use the pool');
    assert.ok((await readFile(out)).equals(want));
  } finally {
    await src.close();
    await work.cleanup();
  }
});

test('pool: into() gets the verified bytes copied into its slot', async () => {
  const { src, map } = await open(images.zstd!);
  try {
    const slots = new Map<number, Buffer>();
    const sync = await fetchAll(new ChunkReader(src, map), map.chunks);
    await new ChunkReader(src, map, { pool, poolMinBytes: 1 }).fetch(map.chunks, ({ chunk, data }) => {
      const slot = slots.get(chunk.index)!;
      assert.equal(data.buffer, slot.buffer, 'delivered bytes are not the slot');
      assert.ok(slot.equals(sync.got.get(chunk.index)!));
    }, { into: (c) => { const s = Buffer.alloc(c.uncompressedSize, 0xee); slots.set(c.index, s); return s; } });
    assert.equal(slots.size, map.chunks.length);
  } finally {
    await src.close();
  }
});

test('pool: chunks of one read may arrive in any order, one onChunk at a time, each awaited before fetch resolves', async () => {
  const { src, map } = await open(images.zstd!);
  const reversing = new ReversingPool({ size: 2 });
  try {
    const byCompressed = [...map.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
    const big = byCompressed.filter((c) => c.uncompressedSize >= 128 * KiB);
    const order: number[] = [];
    let active = 0;
    let finished = 0;
    await new ChunkReader(src, map, { pool: reversing }).fetch(map.chunks, async ({ chunk }) => {
      assert.equal(active++, 0, 'onChunk calls of one read overlapped');
      order.push(chunk.index);
      await new Promise((r) => setImmediate(r));
      active--;
      finished++;
    });
    assert.equal(finished, map.chunks.length, 'fetch resolved before every onChunk had finished');
    // Small chunks decode on this thread while the large ones are out; the large ones then
    // arrive as the (reversing) pool hands them back.
    const bigOrder = order.filter((i) => big.some((c) => c.index === i));
    assert.deepEqual(bigOrder, big.map((c) => c.index).reverse());
    assert.equal(reversing.reversedBatches, 1);
  } finally {
    await reversing.close();
    await src.close();
  }
});

/** The same corruption through both paths: the same error class, code and message. */
async function corruptBoth(img: BuiltImage, damage: (bytes: Buffer, at: number, c: BlobChunk) => void) {
  const { src, scripted, map } = await open(img);
  try {
    const victim = map.chunks.find((c) => c.uncompressedSize === CS && c.compressed === (img !== images.none))!;
    assert.ok(victim, 'no full-size chunk to corrupt');
    scripted.corrupt = (r, bytes) => {
      const at = victim.compressedOffset - r.offset;
      if (at >= 0 && at < r.length) damage(bytes, at, victim);
    };
    const sync = await fetchAll(new ChunkReader(scripted, map), map.chunks);
    const off = await fetchAll(new ChunkReader(scripted, map, { pool, poolMinBytes: 1 }), map.chunks);
    for (const r of [sync, off]) {
      assert.deepEqual([...r.errors.keys()], [victim.index]);
      assert.ok(!r.got.has(victim.index), 'the corrupt chunk was delivered');
      assert.equal(r.got.size, map.chunks.length - 1, 'its neighbours were not all delivered');
    }
    const [a, b] = [sync.errors.get(victim.index)!, off.errors.get(victim.index)!];
    assert.equal(b.constructor, a.constructor);
    assert.equal((b as OndineError).code, (a as OndineError).code);
    assert.equal(b.message, a.message);
    return b;
  } finally {
    await src.close();
  }
}

test('pool: a flipped byte of a raw chunk is a DigestMismatchError, as on the calling thread', async () => {
  const err = await corruptBoth(images.none!, (bytes, at) => { bytes[at + 100]! ^= 0x01; });
  assert.ok(err instanceof DigestMismatchError);
  assert.equal(err.code, 'ONDINE_ERR_DIGEST_MISMATCH');
});

test('pool: a zstd chunk that does not decode is a CorruptError, as on the calling thread', async () => {
  const err = await corruptBoth(images.zstd!, (bytes, at) => { bytes[at]! ^= 0xff; }); // the frame magic
  assert.ok(err instanceof CorruptError);
  assert.match(err.message, /bad frame magic/);
});

test('pool: chunks without a digest are refused unless requireDigest is false', async () => {
  const boot = parseBootstrap(await readFile(FIXTURE_BOOT));
  const src = new LocalDirSource(FIXTURE_DIR);
  try {
    const bare = await loadBlobChunkMap(src, boot.blobs[0]!, []);
    const sync = await fetchAll(new ChunkReader(src, bare), bare.chunks);
    const off = await fetchAll(new ChunkReader(src, bare, { pool, poolMinBytes: 1 }), bare.chunks);
    assert.equal(off.got.size, 0);
    assert.equal(off.errors.size, 2);
    for (const [i, e] of off.errors) {
      assert.ok(e instanceof UnsupportedError);
      assert.equal(e.message, sync.errors.get(i)!.message);
    }
    const lax = await fetchAll(new ChunkReader(src, bare, { pool, poolMinBytes: 1, requireDigest: false }), bare.chunks);
    assert.deepEqual([...lax.got.values()].map((d) => d.length).sort(), [13400, 16931]);
  } finally {
    await src.close();
  }
});

test('wire errors: each typed error comes back as the same class, code, errno and message', () => {
  const errs: Error[] = [
    new CorruptError('zstd chunk', 12, 'truncated frame'),
    new UnsupportedError('compressor id 9'),
    new DigestMismatchError('b1', 3, 'aa', 'bb'),
    new DecodeWorkerError('x'),
    new RangeError('Array buffer allocation failed'),
  ];
  for (const e of errs) {
    const back = fromWire(structuredClone(toWire(e)));
    assert.equal(back.message, e.message);
    assert.equal(back.name, e.name);
    if (e instanceof OndineError) {
      assert.ok(back instanceof OndineError);
      assert.equal(back.code, e.code);
      assert.equal(back.errno, e.errno);
    }
  }
  // The classes a decode can throw come back as themselves (callers test instanceof).
  for (const e of errs.slice(0, 3)) assert.equal(fromWire(toWire(e)).constructor, e.constructor);
});

test('pool: a killed worker fails only the chunks it held; the pool replaces it and keeps working', async () => {
  const { src, map } = await open(images.zstd!);
  const big = map.chunks.filter((c) => c.uncompressedSize === CS);
  assert.ok(big.length >= 6);
  const deaths: Error[] = [];
  // A fresh pool: its workers are still starting when one is killed, so neither has finished
  // a job; jobs alternate between the two workers (least busy first, ties to the lower index).
  class KillingPool extends DecodePool {
    sent = 0;
    override decode(...args: Parameters<DecodePool['decode']>): Promise<Buffer> {
      const p = super.decode(...args);
      if (++this.sent === 4) void this.killWorkerForTest(0);
      return p;
    }
  }
  const p = new KillingPool({ size: 2, perWorker: 2, onWorkerExit: (e) => deaths.push(e) });
  try {
    const sync = await fetchAll(new ChunkReader(src, map), big);
    const r = await fetchAll(new ChunkReader(src, map, { pool: p }), big);
    assert.equal(r.errors.size, 2, `failed: ${[...r.errors.values()].map((e) => e.message).join('; ')}`);
    for (const [i, e] of r.errors) {
      assert.ok(e instanceof DecodeWorkerError, String(e));
      assert.equal(e.code, 'ONDINE_ERR_DECODE_WORKER');
      assert.match(e.message, new RegExp(`^chunk ${i} of blob .*: decode worker 0 died`));
      assert.ok(!r.got.has(i));
    }
    assert.equal(r.got.size, big.length - 2);
    for (const [i, d] of r.got) assert.ok(d.equals(sync.got.get(i)!), `chunk ${i} differs`);
    assert.equal(deaths.length, 1);
    assert.ok(p.usable, 'one death must not retire the pool');
    const again = await fetchAll(new ChunkReader(src, map, { pool: p }), big);
    assert.equal(again.errors.size, 0);
    for (const [i, d] of again.got) assert.ok(d.equals(sync.got.get(i)!));
  } finally {
    await p.close();
    await src.close();
  }
});

test('pool: after close, decode() refuses and readers decode on their own thread', async () => {
  const { src, map } = await open(images.zstd!);
  const p = new CountingPool({ size: 1 });
  try {
    const first = await fetchAll(new ChunkReader(src, map, { pool: p }), map.chunks);
    assert.ok(p.jobs > 0);
    await p.close();
    assert.equal(p.usable, false);
    const spec = new ChunkReader(src, map).spec(map.chunks[0]!);
    await assert.rejects(p.decode(spec, Buffer.alloc(1)), (e: Error) => e instanceof DecodeWorkerError);
    const jobs = p.jobs;
    const after = await fetchAll(new ChunkReader(src, map, { pool: p }), map.chunks);
    assert.equal(p.jobs, jobs, 'a closed pool was given work');
    assert.equal(after.got.size, map.chunks.length);
    for (const [i, d] of first.got) assert.ok(after.got.get(i)!.equals(d));
  } finally {
    await src.close();
  }
});

test('pool: workers that keep dying (a broken build) retire the pool; what was queued is decoded on this thread', async () => {
  const { src, map } = await open(images.zstd!);
  const big = map.chunks.filter((c) => c.uncompressedSize === CS).slice(0, 5);
  const reader = new ChunkReader(src, map);
  const bytes = await src.read(map.blobId, 0, Math.max(...big.map((c) => c.compressedOffset + c.compressedSize)));
  const slice = (c: BlobChunk) => bytes.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize);
  const deaths: Error[] = [];
  // Every worker dies loading its module, before it finishes anything.
  const p = new DecodePool({ size: 1, perWorker: 1, workerUrl: new URL('./no-such-decode-worker.js', import.meta.url), onWorkerExit: (e) => deaths.push(e) });
  try {
    const settled = await Promise.allSettled(big.map((c) => p.decode(reader.spec(c), slice(c))));
    assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
    for (const s of settled.slice(0, 3)) {
      const e = (s as PromiseRejectedResult).reason as Error;
      assert.ok(e instanceof DecodeWorkerError);
      assert.match(e.message, /no-such-decode-worker/, 'the cause of death is in the message');
    }
    assert.equal(p.usable, false);
    assert.equal(deaths.length, 4, 'three deaths, then the pool retiring, reported');
    for (const [i, s] of settled.entries()) {
      if (s.status === 'fulfilled') assert.ok(s.value.equals(reader.verify(big[i]!, slice(big[i]!))));
    }
    // From now on ChunkReader keeps to its own thread, and decode() itself still works.
    const c = big[0]!;
    assert.ok((await p.decode(reader.spec(c), slice(c))).equals(reader.verify(c, slice(c))));
  } finally {
    await p.close();
    await src.close();
  }
});

test('pool: an idle pool never keeps the process alive; a busy one does until its job is done', async () => {
  // A child that decodes one chunk and neither closes the pool nor does anything else: it
  // must get its result (a busy worker is ref'd), then exit by itself (an idle one is not).
  const poolUrl = new URL('../../src/storage/decode-pool.js', import.meta.url).href;
  const script = `
    import { createHash } from 'node:crypto';
    import { DecodePool } from ${JSON.stringify(poolUrl)};
    const data = Buffer.alloc(512 * 1024, 0x5a);
    const digest = createHash('sha256').update(data).digest('hex');
    const pool = new DecodePool({ size: 2 });
    const out = await pool.decode({ blobId: 'b', chunkIndex: 0, codec: 0, digester: ${DigestAlgo.Sha256}, uncompressedSize: data.length,
      digest, requireDigest: true }, data);
    console.log('decoded', out.length, out.equals(data));
  `;
  const dir = await tempDir('pool-alive');
  const file = join(dir.dir, 'child.mjs');
  await writeFile(file, script);
  const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    // The timeout is a hang guard only (a child that never exits fails the test instead of
    // hanging the suite), not a measure of speed.
    const child = execFile(process.execPath, [file], { timeout: 120_000 },
      (_err, stdout, stderr) => resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr }));
  }).finally(() => dir.cleanup());
  assert.equal(signal, null, `the child did not exit on its own: ${stderr}`);
  assert.equal(code, 0, stderr);
  assert.equal(stdout.trim(), `decoded ${512 * KiB} true`);
});

test('pool: default size is min(4, cores), at least 1', () => {
  const p = new DecodePool();
  assert.ok(p.size >= 1 && p.size <= 4);
  assert.equal(new DecodePool({ size: 0 }).size, 1, 'a pool has at least one worker (0 threads means no pool)');
  void p.close();
});

test('default decode threads: none on two cores or fewer (the pool loses there), else min(4, cores)', () => {
  assert.equal(defaultDecodeThreads(1), 0);
  assert.equal(defaultDecodeThreads(2), 0);
  assert.equal(defaultDecodeThreads(3), 3);
  assert.equal(defaultDecodeThreads(8), 4);
});
