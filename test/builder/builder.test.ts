// build() end to end on real directories and tar layers: the image it writes is read back
// through the storage layer (every chunk verified) and must hold the source bytes exactly;
// the same input always gives the same bytes; dedup, holes, raw chunks and the chunk dict
// show up where they should; bad options fail cleanly without leaving workers behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as cryptoModule from 'node:crypto';
import { mkdir, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build, type BuildResult } from '../../src/builder/builder.js';
import { StageClock } from '../../src/builder/stages.js';
import { parseBootstrap, type Bootstrap } from '../../src/format/bootstrap.js';
import { CHUNK_FLAG_COMPRESSED, NULL_ADDR } from '../../src/format/constants.js';
import { KiB, MiB, randomBytes, readFiles, rejectsWith, tempDir, textBytes, unpackAll, writeTree } from '../storage/support.js';

const CS = 64 * KiB;
let work: { dir: string; cleanup: () => Promise<void> };
let seq = 0;

before(async () => { work = await tempDir('builder'); });
after(() => work?.cleanup());

function fresh(name: string): string {
  return join(work.dir, `${name}-${seq++}`);
}

async function srcTree(files: Record<string, Buffer | string>): Promise<string> {
  const dir = fresh('src');
  await mkdir(dir);
  await writeTree(dir, files);
  return dir;
}

async function load(r: BuildResult): Promise<Bootstrap> {
  return parseBootstrap(await readFile(r.bootstrapPath));
}

/** Builds, then reads every file back through unpacked, verified blobs. */
async function roundTrip(r: BuildResult, blobDirs: string[]): Promise<{ boot: Bootstrap; files: Map<string, Buffer> }> {
  const boot = await load(r);
  const unpacked = fresh('unpacked');
  await mkdir(unpacked);
  return { boot, files: readFiles(boot, await unpackAll(boot, blobDirs, unpacked)) };
}

function assertFiles(files: Map<string, Buffer>, want: Record<string, Buffer | string>): void {
  for (const [p, d] of Object.entries(want)) {
    const got = files.get(`/${p}`);
    assert.ok(got, `${p} missing from the image`);
    assert.ok(got.equals(Buffer.from(d)), `${p}: content differs`);
  }
}

function tarOf(dir: string): string {
  const out = `${dir}.tar`;
  execFileSync('tar', ['-C', dir, '--sort=name', '-cf', out, '.']);
  return out;
}

const messagePorts = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;

test('determinism: the same tree gives identical blob ids and bootstrap bytes, whatever the worker count', async () => {
  const src = await srcTree({
    'a/one.txt': textBytes(5 * CS + 17, 1),
    'a/two.bin': randomBytes(3 * CS, 2),
    'b/c/three.txt': textBytes(1000, 3),
    'empty': '',
  });
  const runs: Array<{ ids: string[]; boot: Buffer }> = [];
  for (const workers of [2, 2, 1, 4]) {
    const out = fresh('out');
    const r = await build({ sources: [src], outDir: out, chunkSize: CS, workers });
    runs.push({ ids: r.blobs.map((b) => b.blobId), boot: await readFile(r.bootstrapPath) });
  }
  for (const r of runs.slice(1)) {
    assert.deepEqual(r.ids, runs[0]!.ids);
    assert.ok(r.boot.equals(runs[0]!.boot), 'bootstrap bytes differ');
  }
});

test('dedup within a file and across files: each distinct chunk is stored once', async () => {
  const block = randomBytes(CS, 4);
  const files = {
    'rep.bin': Buffer.concat([block, block, block, block, block]),
    'copy1.txt': textBytes(3 * CS, 5),
    'copy2.txt': textBytes(3 * CS, 5),
    'mix.bin': Buffer.concat([textBytes(CS, 6), block]),
  };
  const src = await srcTree(files);
  const out = fresh('out');
  const r = await build({ sources: [src], outDir: out, chunkSize: CS, workers: 2 });
  assert.equal(r.chunks, 5 + 3 + 3 + 2);
  assert.equal(r.uniqueChunks, 1 + 3 + 1);
  assert.equal(r.holeChunks, 0);
  assert.equal(r.chunkRefs, 13);
  assert.equal(r.dedupRatio, 13 / 5);
  assert.equal(r.blobs.length, 1);
  assert.equal(r.blobs[0]!.chunkCount, 5);
  const { boot, files: back } = await roundTrip(r, [join(out, 'blobs')]);
  assertFiles(back, files);
  assert.equal(boot.chunks.length, 5, 'the RAFS chunk table lists each chunk once');
  const rep = boot.chunkMap(boot.lookup('/rep.bin'));
  assert.equal(new Set(rep.map((m) => m.chunk.blkaddr)).size, 1, 'all five chunk indexes point at one chunk');
  assert.equal(boot.chunkMap(boot.lookup('/mix.bin'))[1]!.chunk.blkaddr, rep[0]!.chunk.blkaddr);
});

test('dedup across layers: the same file in two tar layers is stored once', async () => {
  const data = textBytes(4 * CS + 5, 7);
  const l1 = await srcTree({ 'app/data.bin': data, 'app/only1.txt': 'layer one' });
  const l2 = await srcTree({ 'copy/data.bin': data });
  const l3 = await srcTree({ 'again/data.bin': data, 'new.txt': textBytes(CS, 8) });
  const t1 = tarOf(l1);
  const t2 = tarOf(l2);
  const t3 = tarOf(l3);

  const out = fresh('out');
  const r = await build({ sources: [t1, t2], outDir: out, chunkSize: CS, workers: 2 });
  assert.equal(r.blobs.length, 1, 'the second layer adds no new chunk, so no blob');
  assert.equal(r.uniqueChunks, 5 + 1);
  assert.equal(r.chunks, 5 + 1 + 5);
  const { boot, files } = await roundTrip(r, [join(out, 'blobs')]);
  assertFiles(files, { 'app/data.bin': data, 'copy/data.bin': data, 'app/only1.txt': 'layer one' });
  const a = boot.chunkMap(boot.lookup('/app/data.bin')).map((m) => [m.chunk.deviceId, m.chunk.blkaddr]);
  const b = boot.chunkMap(boot.lookup('/copy/data.bin')).map((m) => [m.chunk.deviceId, m.chunk.blkaddr]);
  assert.deepEqual(b, a);

  const out3 = fresh('out');
  const r3 = await build({ sources: [t1, t2, t3], outDir: out3, chunkSize: CS, workers: 2 });
  assert.equal(r3.blobs.length, 2, 'layer 3 has one new chunk: its own blob');
  assert.equal(r3.blobs[1]!.chunkCount, 1);
  const { boot: boot3, files: files3 } = await roundTrip(r3, [join(out3, 'blobs')]);
  assertFiles(files3, { 'again/data.bin': data, 'new.txt': textBytes(CS, 8) });
  assert.ok(boot3.chunkMap(boot3.lookup('/again/data.bin')).every((m) => m.chunk.deviceId === 1), 'layer 3 reuses layer 1\'s blob');
  assert.equal(boot3.chunkMap(boot3.lookup('/new.txt'))[0]!.chunk.deviceId, 2);
});

test('zero chunks become holes (NULL_ADDR), sparse ranges too, and read back as zeros', async () => {
  const src = fresh('src');
  await mkdir(src);
  const text = textBytes(CS, 9);
  await writeFile(join(src, 'zeros-inside'), Buffer.concat([text, Buffer.alloc(2 * CS), text]));
  await writeFile(join(src, 'all-zero'), Buffer.alloc(3 * CS + 1));
  const fh = await open(join(src, 'sparse'), 'w');
  await fh.write(text, 0, text.length, 10 * CS); // 10 chunks of hole, then data
  await fh.close();
  const out = fresh('out');
  const r = await build({ sources: [src], outDir: out, chunkSize: CS, workers: 2 });
  const { boot, files } = await roundTrip(r, [join(out, 'blobs')]);
  const holes = (p: string) => boot.chunkMap(boot.lookup(p)).map((m) => m.chunk.blkaddr === NULL_ADDR);
  assert.deepEqual(holes('/zeros-inside'), [false, true, true, false]);
  assert.deepEqual(holes('/all-zero'), [true, true, true, true]);
  assert.deepEqual(holes('/sparse'), [...Array(10).fill(true), false]);
  assert.equal(r.holeChunks, 2 + 4 + 10);
  assert.equal(r.uniqueChunks, 1, 'the one text chunk, deduplicated three times');
  assert.ok(files.get('/zeros-inside')!.equals(Buffer.concat([text, Buffer.alloc(2 * CS), text])));
  assert.ok(files.get('/all-zero')!.equals(Buffer.alloc(3 * CS + 1)));
  assert.ok(files.get('/sparse')!.equals(Buffer.concat([Buffer.alloc(10 * CS), text])));
  assert.equal((await stat(join(out, 'blobs', r.blobs[0]!.blobId))).size, r.blobs[0]!.compressedSize);
});

test('incompressible chunks are stored raw: compressed flag false, sizes equal', async () => {
  const files = { 'noise.bin': randomBytes(2 * CS, 10), 'text.txt': textBytes(2 * CS, 11) };
  const src = await srcTree(files);
  const out = fresh('out');
  const r = await build({ sources: [src], outDir: out, chunkSize: CS, workers: 2 });
  const { boot, files: back } = await roundTrip(r, [join(out, 'blobs')]);
  assertFiles(back, files);
  const byCi = new Map(boot.chunks.map((c) => [c.index, c]));
  for (const m of boot.chunkMap(boot.lookup('/noise.bin'))) {
    const c = byCi.get(m.chunk.blobCiIndex)!;
    assert.equal(c.flags & CHUNK_FLAG_COMPRESSED, 0);
    assert.equal(c.compressedSize, c.uncompressedSize);
  }
  for (const m of boot.chunkMap(boot.lookup('/text.txt'))) {
    const c = byCi.get(m.chunk.blobCiIndex)!;
    assert.equal(c.flags & CHUNK_FLAG_COMPRESSED, CHUNK_FLAG_COMPRESSED);
    assert.ok(c.compressedSize < c.uncompressedSize);
  }
  assert.equal(r.storedBytes, boot.chunks.reduce((n, c) => n + c.compressedSize, 0));
});

test('every compressor and digest builds an image that reads back', async () => {
  const files = { 'a.txt': textBytes(3 * CS + 3, 12), 'b.bin': randomBytes(CS + 9, 13), 'c/d': 'x' };
  const src = await srcTree(files);
  for (const compressor of ['zstd', 'lz4', 'none', 'gzip'] as const) {
    for (const digest of ['blake3', 'sha256'] as const) {
      const out = fresh('out');
      const r = await build({ sources: [src], outDir: out, chunkSize: CS, compressor, digest, workers: 2 });
      const { boot, files: back } = await roundTrip(r, [join(out, 'blobs')]);
      assertFiles(back, files);
      assert.equal(boot.blobs[0]!.compressor, { zstd: 3, lz4: 1, none: 0, gzip: 2 }[compressor]);
      assert.equal(boot.blobs[0]!.digester, digest === 'blake3' ? 0 : 1);
    }
  }
});

test('the chunk dict: chunks an earlier image holds are referenced in its blob, not stored again', async () => {
  const shared = textBytes(3 * CS, 14);
  const base = await srcTree({ 'lib/shared.so': shared, 'base-only': textBytes(CS, 15) });
  const baseOut = fresh('dict');
  const baseR = await build({ sources: [base], outDir: baseOut, chunkSize: CS, workers: 2 });
  const dictBlob = baseR.blobs[0]!.blobId;

  const files = { 'app/shared-copy.so': shared, 'app/new.txt': textBytes(2 * CS, 16) };
  const src = await srcTree(files);
  const out = fresh('out');
  const warnings: string[] = [];
  const r = await build({ sources: [src], outDir: out, chunkSize: CS, chunkDict: baseR.bootstrapPath, workers: 2, onWarning: (w) => warnings.push(w) });
  assert.deepEqual(warnings, []);
  assert.deepEqual(r.blobs.map((b) => b.fromDict), [false, true]);
  assert.equal(r.blobs[1]!.blobId, dictBlob);
  assert.equal(r.blobs[0]!.chunkCount, 2, 'only the new file\'s chunks are written');
  assert.equal(r.uniqueChunks, 2);
  assert.deepEqual(await readdir(join(out, 'blobs')), [r.blobs[0]!.blobId], 'the dict blob is referenced, not copied');
  const { boot, files: back } = await roundTrip(r, [join(out, 'blobs'), join(baseOut, 'blobs')]);
  assertFiles(back, files);
  assert.deepEqual(boot.devices.map((d) => d.tag), [r.blobs[0]!.blobId, dictBlob]);
  const m = boot.chunkMap(boot.lookup('/app/shared-copy.so'));
  assert.ok(m.every((x) => x.chunk.deviceId === 2), 'shared chunks point at the dict blob (device 2)');
  const baseBoot = await load(baseR);
  assert.deepEqual(m.map((x) => x.chunk.blobCiIndex), baseBoot.chunkMap(baseBoot.lookup('/lib/shared.so')).map((x) => x.chunk.blobCiIndex));

  // A dict made with another digest offers nothing: everything is stored, with a warning.
  const shaOut = fresh('out');
  const w2: string[] = [];
  const r2 = await build({ sources: [src], outDir: shaOut, chunkSize: CS, digest: 'sha256', chunkDict: baseR.bootstrapPath, workers: 2, onWarning: (w) => w2.push(w) });
  assert.equal(r2.blobs.length, 1);
  assert.equal(r2.uniqueChunks, 5);
  assert.equal(w2.length, 1);
  assert.match(w2[0]!, /offers no chunks/);
});

test('invalid chunk sizes (3000, 2 KiB, 32 MiB) are InvalidArgumentError and leave no worker threads', async () => {
  const src = await srcTree({ f: 'data' });
  const before = messagePorts();
  for (const chunkSize of [3000, 2 * KiB, 32 * MiB]) {
    await rejectsWith(() => build({ sources: [src], outDir: fresh('out'), chunkSize, workers: 2 }), 'ONDINE_ERR_INVALID', /chunk size/);
  }
  assert.equal(messagePorts(), before, 'worker threads left running would keep the process alive');
});

test('other bad input fails cleanly: missing source, a directory among layers', async () => {
  const src = await srcTree({ f: 'data' });
  await rejectsWith(() => build({ sources: [join(work.dir, 'nope')], outDir: fresh('out') }), 'ONDINE_ERR_INVALID', /does not exist/);
  await rejectsWith(() => build({ sources: [src, tarOf(src)], outDir: fresh('out') }), 'ONDINE_ERR_INVALID', /only source/);
  await rejectsWith(() => build({ sources: [], outDir: fresh('out') }), 'ONDINE_ERR_INVALID');
});

test('the worker pool survives many small files', async () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 2500; i++) files[`d${i % 25}/f${i}`] = `small file ${i} ${'z'.repeat(i % 300)}`;
  const src = await srcTree(files);
  const out = fresh('out');
  const r = await build({ sources: [src], outDir: out, chunkSize: 4096, workers: 2 });
  assert.equal(r.chunks, 2500);
  assert.equal(r.uniqueChunks, 2500);
  assert.equal(r.inodes, 1 + 25 + 2500);
  const { files: back } = await roundTrip(r, [join(out, 'blobs')]);
  assertFiles(back, files);
});

test('onBlob hands out each layer\'s finished blob while later layers still build; the image is the same as without it', async () => {
  const l1 = await srcTree({ 'a/one.bin': textBytes(3 * CS + 11, 21), 'a/same.bin': textBytes(2 * CS, 22) });
  const l2 = await srcTree({ 'b/same.bin': textBytes(2 * CS, 22) }); // no new chunk: no blob
  const l3 = await srcTree({ 'c/three.bin': textBytes(5 * CS, 23), 'c/small.txt': 'three' });
  const sources = [tarOf(l1), tarOf(l2), tarOf(l3)];
  const plain = await build({ sources, outDir: fresh('out'), chunkSize: CS, workers: 2 });

  const stages = new StageClock();
  let building = true;
  const seen: Array<{ layer: number; blobId: string; building: boolean; sha: string; size: number }> = [];
  const checks: Array<Promise<void>> = [];
  const out = fresh('out');
  const r = await build({
    sources, outDir: out, chunkSize: CS, workers: 2, durable: false, stages,
    onBlob: (layer, b) => {
      const at = building;
      checks.push(readFile(b.path).then((bytes) => {
        seen.push({ layer, blobId: b.blobId, building: at, sha: cryptoModule.createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
      }));
    },
  });
  building = false;
  await Promise.all(checks);
  assert.deepEqual(r.blobs.map((b) => b.blobId), plain.blobs.map((b) => b.blobId), 'same blobs as a build without onBlob');
  assert.ok((await readFile(r.bootstrapPath)).equals(await readFile(plain.bootstrapPath)), 'same bootstrap bytes');
  assert.deepEqual(seen.map((s) => s.layer).sort(), [0, 2], 'one call per layer that stored chunks');
  for (const s of seen) {
    const b = r.blobs.find((x) => x.blobId === s.blobId);
    assert.ok(b, `blob ${s.blobId} is in the result`);
    assert.equal(s.sha, s.blobId, 'the file handed out is complete: its sha256 is its name');
    assert.equal(s.size, b.compressedSize);
  }
  assert.ok(seen.find((s) => s.layer === 0)!.building, 'layer 0\'s blob came before the build ended');

  // The stage clock saw every chunk byte and every blob byte.
  const st = Object.fromEntries(stages.summary().map((s) => [s.stage, s]));
  assert.equal(st.digest!.bytes, r.bytesIn, 'every chunk was digested');
  const blobBytes = r.blobs.reduce((a, b) => a + b.compressedSize, 0);
  assert.equal(st.hash!.bytes, blobBytes, 'every blob byte was hashed');
  assert.equal(st.write!.bytes, blobBytes, 'and written');
  assert.ok(st.compress!.bytesOut >= r.storedBytes, 'compressed bytes cover what was stored (deduplicated chunks are compressed too)');
});
