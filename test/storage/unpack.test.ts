// unpackBlob writes the uncompressed blob a kernel cache file must hold: every chunk at its
// uncompressed offset, verified; a chunk that fails verification is reported and its range
// stays zeros; the bootstrap's chunk indexes then read every file back byte for byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { unpackBlob, type UnpackProgress } from '../../src/storage/unpack.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { DigestMismatchError } from '../../src/errors.js';
import {
  buildImage, FIXTURE_BOOT, FIXTURE_DIR, KiB, randomBytes, readFiles, rejectsWith, ScriptedSource, tempDir, textBytes, type BuiltImage,
} from './support.js';

const CS = 64 * KiB;
let img: BuiltImage;
let work: { dir: string; cleanup: () => Promise<void> };
const FILES: Record<string, Buffer | string> = {
  'etc/config.txt': textBytes(3 * CS + 77, 1),
  'bin/tool': randomBytes(2 * CS + 4095, 2),
  'lib/dup1': textBytes(CS, 3),
  'lib/dup2': textBytes(CS, 3), // same content: deduplicated
  'empty': '',
  'tiny': 't',
};

before(async () => {
  img = await buildImage(FILES, { chunkSize: CS });
  work = await tempDir('unpack');
});
after(async () => {
  await img?.cleanup();
  await work?.cleanup();
});

test('a built blob unpacks to its uncompressed size, and every file reads back exactly', async () => {
  const entry = img.bootstrap.blobs[0]!;
  const src = new LocalDirSource(img.blobDir);
  const progress: UnpackProgress[] = [];
  try {
    const out = join(work.dir, 'built.blob');
    const r = await unpackBlob(img.bootstrap, entry, src, out, { onProgress: (p) => progress.push({ ...p }) });
    assert.deepEqual(r.failures, []);
    assert.equal(r.chunks, entry.chunkCount);
    assert.equal((await stat(out)).size, entry.uncompressedSize);
    const fileBytes = Object.entries(FILES).filter(([p]) => p !== 'lib/dup2').reduce((n, [, d]) => n + Buffer.byteLength(d), 0);
    assert.equal(r.bytesWritten, fileBytes, 'each stored chunk written once (the duplicate is not stored twice)');
    const files = readFiles(img.bootstrap, new Map([[entry.blobId, await readFile(out)]]));
    for (const [path, data] of Object.entries(FILES)) assert.ok(files.get(`/${path}`)!.equals(Buffer.from(data)), path);
    assert.ok(progress.length >= 1);
    assert.equal(progress.at(-1)!.chunksDone, entry.chunkCount);
    assert.equal(progress.at(-1)!.bytesWritten, r.bytesWritten);
  } finally {
    await src.close();
  }
});

test('small batches make more source reads; the result is the same bytes', async () => {
  const entry = img.bootstrap.blobs[0]!;
  const src = new LocalDirSource(img.blobDir);
  try {
    const a = join(work.dir, 'one-batch.blob');
    const b = join(work.dir, 'small-batches.blob');
    await unpackBlob(img.bootstrap, entry, src, a, { batchBytes: 1 << 30 });
    const readsOneBatch = src.counters.requests.get(entry.blobId)!;
    assert.equal(readsOneBatch, 2, 'the chunk-info table, then all chunks in one read');
    src.counters.requests.clear();
    await unpackBlob(img.bootstrap, entry, src, b, { batchBytes: 1, concurrency: 3 });
    assert.equal(src.counters.requests.get(entry.blobId), 1 + entry.chunkCount, 'one read per chunk, plus the table');
    assert.ok((await readFile(a)).equals(await readFile(b)));
  } finally {
    await src.close();
  }
});

test('a corrupt chunk is reported, never written: its range stays zeros, the rest is intact', async () => {
  const raw = await buildImage(FILES, { chunkSize: CS, compressor: 'none' });
  try {
    const e = raw.bootstrap.blobs[0]!;
    const inner = new LocalDirSource(raw.blobDir);
    const src = new ScriptedSource(inner);
    // Chunk 1 of etc/config.txt: flip a byte wherever a read carries it (not in the table read).
    const cfg = raw.bootstrap.chunkMap(raw.bootstrap.lookup('/etc/config.txt'))[1]!.chunk;
    const table = raw.bootstrap.chunks.find((c) => c.index === cfg.blobCiIndex)!;
    src.corrupt = (r, bytes) => {
      const at = table.compressedOffset - r.offset;
      if (r.offset !== e.ciOffset && at >= 0 && at < bytes.length) bytes[at + 10]! ^= 0xff;
    };
    const out = join(work.dir, 'corrupt.blob');
    const r = await unpackBlob(raw.bootstrap, e, src, out, { batchBytes: 2 * CS });
    assert.equal(r.failures.length, 1);
    assert.ok(r.failures[0] instanceof DigestMismatchError);
    assert.equal((r.failures[0] as DigestMismatchError).chunkIndex, cfg.blobCiIndex);
    const blob = await readFile(out);
    const hole = blob.subarray(table.uncompressedOffset, table.uncompressedOffset + table.uncompressedSize);
    assert.ok(hole.equals(Buffer.alloc(hole.length)), 'the bad chunk\'s range is still zeros');
    const files = readFiles(raw.bootstrap, new Map([[e.blobId, blob]]));
    for (const [path, data] of Object.entries(FILES)) {
      if (path === 'etc/config.txt') continue;
      assert.ok(files.get(`/${path}`)!.equals(Buffer.from(data)), path);
    }
    const cfgBack = files.get('/etc/config.txt')!;
    const want = Buffer.from(FILES['etc/config.txt']!);
    assert.ok(cfgBack.subarray(0, CS).equals(want.subarray(0, CS)));
    assert.ok(cfgBack.subarray(2 * CS).equals(want.subarray(2 * CS)));
    assert.ok(!cfgBack.equals(want));
    await inner.close();
  } finally {
    await raw.cleanup();
  }
});

test('a chunk-info table disagreeing with the bootstrap aborts before anything is written', async () => {
  const entry = img.bootstrap.blobs[0]!;
  const src = new LocalDirSource(img.blobDir);
  try {
    // The first chunk table entry's compressed size (at +40), changed in the bootstrap's bytes.
    const bytes = await readFile(img.result.bootstrapPath);
    const at = parseBootstrap(bytes).chunkTable.at(0) + 40;
    bytes.writeUInt32LE(bytes.readUInt32LE(at) + 1, at);
    const bad = parseBootstrap(bytes);
    const out = join(work.dir, 'never.blob');
    await rejectsWith(() => unpackBlob(bad, entry, src, out), 'ONDINE_ERR_CORRUPT', /disagrees/);
    await assert.rejects(stat(out), { code: 'ENOENT' });
  } finally {
    await src.close();
  }
});

test('Nydus fixture: the blob unpacks to 36864 bytes and both files read back verified', async () => {
  const boot = parseBootstrap(await readFile(FIXTURE_BOOT));
  const entry = boot.blobs[0]!;
  const src = new LocalDirSource(FIXTURE_DIR);
  try {
    const out = join(work.dir, 'nydus.blob');
    const r = await unpackBlob(boot, entry, src, out);
    assert.deepEqual(r.failures, []);
    assert.equal(r.bytesWritten, 16931 + 13400);
    const blob = await readFile(out);
    assert.equal(blob.length, 36864);
    const files = readFiles(boot, new Map([[entry.blobId, blob]]));
    assert.deepEqual([...files.keys()].sort(), ['/lib.rs', '/sync_io.rs']);
    assert.equal(files.get('/lib.rs')!.length, 16931);
    assert.equal(files.get('/sync_io.rs')!.length, 13400);
    for (const f of files.values()) assert.ok(!f.includes(0), 'source text has no NUL: no chunk was left a hole');
    // Between the chunks: untouched zeros.
    assert.ok(blob.subarray(16931, 20480).equals(Buffer.alloc(20480 - 16931)));
  } finally {
    await src.close();
  }
});
