// Unit tests of the cachefiles front end's protocol logic with a recording KernelIo. The
// kernel itself is exercised in test/vm; here we pin down what must hold on every path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachefilesFrontend, type TargetResolver } from '../../../src/kernel/cachefiles/frontend.js';
import type { KernelIo } from '../../../src/kernel/cachefiles/kernel-io.js';
import {
  Opcode, encodeMessage, isMalformed, parseHeader, parseMessage, readMessage, type Message,
} from '../../../src/kernel/cachefiles/messages.js';
import { CorruptError } from '../../../src/errors.js';
import { ImageCatalog } from '../../../src/daemon/catalog.js';
import { CachefilesTargets } from '../../../src/daemon/cachefiles-targets.js';
import { DecodePool } from '../../../src/storage/decode-pool.js';
import { build } from '../../../src/builder/builder.js';
import { parseBootstrap } from '../../../src/format/bootstrap.js';

class RecordingIo implements KernelIo {
  commands: string[] = [];
  completes: Array<[number, number]> = [];
  closed: number[] = [];
  files = new Map<number, Buffer>();
  writeDelayMs = 0;
  writes = 0;
  /** [fd, offset, padded length] of every write. */
  written: Array<[number, number, number]> = [];
  command(cmd: string): void { this.commands.push(cmd); }
  readComplete(fd: number, msgId: number): void { this.completes.push([fd, msgId]); }
  async write(fd: number, offset: number, data: Uint8Array): Promise<void> {
    if (this.writeDelayMs) await new Promise((r) => setTimeout(r, this.writeDelayMs));
    assert.ok(!this.closed.includes(fd), `write to fd ${fd} after it was closed`);
    assert.equal(offset % 4096, 0, 'unaligned write offset');
    const f = this.files.get(fd) ?? Buffer.alloc(0);
    const end = offset + Math.ceil(data.length / 4096) * 4096;
    const out = f.length >= end ? f : Buffer.concat([f, Buffer.alloc(end - f.length)]);
    out.set(data, offset);
    this.files.set(fd, out);
    this.writes++;
    this.written.push([fd, offset, end - offset]);
  }
  isAllocated(): boolean { return false; }
  close(fd: number): void { this.closed.push(fd); }
}

async function makeImage(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), 'ondine-fe-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  await mkdir(src);
  const data = Buffer.alloc(3 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  await writeFile(join(src, 'big'), data);
  await writeFile(join(src, 'small'), 'hello\n');
  const out = join(dir, 'img');
  await build({ sources: [src], outDir: out, chunkSize: 1 << 20, workers: 1 });
  const b = parseBootstrap(await readFile(join(out, 'bootstrap')));
  return { dir, out, bootstrap: b, blobId: b.blobs[0]!.blobId, data };
}

const open = (msgId: number, objectId: number, fd: number, volume: string, cookie: string): Message =>
  parseMessage(encodeMessage({ opcode: Opcode.Open, msgId, objectId, fd, flags: 0, volumeKey: volume, cookieKey: cookie }));
const read = (msgId: number, objectId: number, offset: number, length: number): Message =>
  parseMessage(encodeMessage({ opcode: Opcode.Read, msgId, objectId, offset, length }));
const close = (msgId: number, objectId: number): Message =>
  parseMessage(encodeMessage({ opcode: Opcode.Close, msgId, objectId }));

test('messages: parse what the kernel sends, refuse short or inconsistent ones', () => {
  const m = open(7, 3, 42, 'erofs,img1', 'img1');
  assert.deepEqual(m, { opcode: Opcode.Open, msgId: 7, objectId: 3, fd: 42, flags: 0, volumeKey: 'erofs,img1', cookieKey: 'img1' });
  const r = read(8, 3, 2 ** 32, 8192);
  assert.equal(r.opcode, Opcode.Read);
  assert.equal((r as { offset: number }).offset, 2 ** 32);
  const bad = encodeMessage({ opcode: Opcode.Read, msgId: 1, objectId: 1, offset: 0, length: 1 });
  assert.throws(() => parseMessage(bad, 20), { code: 'ONDINE_ERR_CORRUPT' });
  const wrongLen = Buffer.from(bad); wrongLen.writeUInt32LE(64, 8);
  assert.throws(() => parseMessage(wrongLen), { code: 'ONDINE_ERR_CORRUPT' });
  const badOp = Buffer.from(bad); badOp.writeUInt32LE(9, 4);
  assert.throws(() => parseMessage(badOp), /unknown opcode 9/);
  const o = encodeMessage({ opcode: Opcode.Open, msgId: 1, objectId: 1, fd: 3, flags: 0, volumeKey: 'erofs,x', cookieKey: 'x' });
  o.writeUInt32LE(1000, 16);
  assert.throws(() => parseMessage(o), /overflow/);
});

test('OPEN of an unknown fsid is refused with ENOENT and its fd closed; known ones get their size', async (t) => {
  const img = await makeImage(t);
  const reg = new ImageCatalog();
  await reg.add({ fsid: 'img1', bootstrap: join(img.out, 'bootstrap') });
  const io = new RecordingIo();
  const fe = new CachefilesFrontend(io, new CachefilesTargets(reg));
  fe.handle(open(1, 10, 100, 'erofs,nope', 'nope'));
  assert.deepEqual(io.commands, ['copen 1,-2']);
  assert.deepEqual(io.closed, [100]);
  fe.handle(open(2, 11, 101, 'erofs,img1', 'img1'));
  fe.handle(open(3, 12, 102, 'erofs,img1', img.blobId));
  assert.equal(io.commands[1], `copen 2,${img.bootstrap.buf.length}`);
  assert.equal(io.commands[2], `copen 3,${img.bootstrap.blobs[0]!.uncompressedSize}`);
  // A blob of another image's volume is not served in this one.
  fe.handle(open(4, 13, 103, 'erofs,other', img.blobId));
  assert.equal(io.commands[3], 'copen 4,-2');
  assert.equal(fe.stats.openFailures, 2);
});

test('OPEN with a volume or cookie key outside the name grammar is refused with EINVAL before any lookup', async (t) => {
  const img = await makeImage(t);
  const reg = new ImageCatalog();
  await reg.add({ fsid: 'img1', bootstrap: join(img.out, 'bootstrap') });
  const io = new RecordingIo();
  const looked: string[] = [];
  const targets = new CachefilesTargets(reg);
  const fe = new CachefilesFrontend(io, { resolve: (v, c) => { looked.push(`${v} ${c}`); return targets.resolve(v, c); } });
  const hostile: Array<[string, string]> = [
    ['erofs,img1', '../../../victim'], ['erofs,img1', '/etc/passwd'], ['erofs,img1', 'a,b'], ['erofs,img1', 'x'.repeat(65)],
    ['erofs,img1', ''], ['erofs,img1', '..'], ['erofs,../x', 'img1'], ['erofs,a/b', 'img1'],
  ];
  hostile.forEach(([v, c], i) => fe.handle(open(i + 1, 10 + i, 100 + i, v, c)));
  assert.deepEqual(io.commands, hostile.map((_, i) => `copen ${i + 1},-22`));
  assert.deepEqual(io.closed, hostile.map((_, i) => 100 + i), 'every anonymous fd closed');
  assert.deepEqual(looked, [], 'no hostile key reached the resolver');
  fe.handle(open(50, 60, 150, 'erofs,img1', img.blobId));
  assert.equal(io.commands.at(-1), `copen 50,${img.bootstrap.blobs[0]!.uncompressedSize}`, 'a good key is still served');
  assert.equal(fe.stats.openFailures, hostile.length);
});

test('READ fills exactly the blob bytes, always completes, and concurrent READs of a chunk fetch once', async (t) => {
  const img = await makeImage(t);
  const reg = new ImageCatalog({ amplifyBytes: 0 });
  await reg.add({ fsid: 'img1', bootstrap: join(img.out, 'bootstrap') });
  const io = new RecordingIo();
  io.writeDelayMs = 20;
  const fe = new CachefilesFrontend(io, new CachefilesTargets(reg));
  fe.handle(open(1, 1, 50, 'erofs,img1', img.blobId));
  for (let i = 0; i < 5; i++) fe.handle(read(10 + i, 1, 4096, 4096));
  await fe.idle();
  assert.equal(io.completes.length, 5);
  assert.deepEqual(io.completes.map(([fd]) => fd), [50, 50, 50, 50, 50]);
  assert.equal(io.writes, 1, 'five readers of one chunk: one fetch, one write');
  const counters = reg.sourceCounters()[join(img.out, 'blobs')]![img.blobId]!;
  assert.ok(counters.requests >= 2, 'chunk-info table and one chunk read');
  // The cache file now holds the uncompressed bytes of the chunk covering offset 4096.
  const file = io.files.get(50)!;
  const b = img.bootstrap;
  const ino = b.lookup('/big');
  const first = b.chunkMap(ino)[0]!.chunk.blkaddr * 4096;
  assert.deepEqual(file.subarray(first, first + (1 << 20)), img.data.subarray(0, 1 << 20));
});

test('a READ that cannot be filled still completes (reader gets EIO), and a corrupt chunk is never written', async (t) => {
  const img = await makeImage(t);
  const blobPath = join(img.out, 'blobs', img.blobId);
  const blob = await readFile(blobPath);
  blob[100] ^= 0xff; // inside the first chunk's compressed bytes
  await writeFile(blobPath, blob);
  const reg = new ImageCatalog({ amplifyBytes: 0 });
  await reg.add({ fsid: 'img1', bootstrap: join(img.out, 'bootstrap') });
  const io = new RecordingIo();
  const fe = new CachefilesFrontend(io, new CachefilesTargets(reg));
  fe.handle(open(1, 1, 60, 'erofs,img1', img.blobId));
  fe.handle(read(2, 1, 0, 4096));
  await fe.idle();
  assert.deepEqual(io.completes, [[60, 2]]);
  assert.equal(io.writes, 0, 'nothing written for a chunk that failed verification');
  assert.equal(fe.stats.readFailures, 1);
});

test('with the registry\'s decode pool, read-ahead chunks are decoded on workers, READs on this thread; a corrupt chunk is never written', async (t) => {
  const img = await makeImage(t);
  let jobs = 0;
  const pool = new (class extends DecodePool {
    override decode(...args: Parameters<DecodePool['decode']>): Promise<Buffer> {
      jobs++;
      return super.decode(...args);
    }
  })({ size: 2 });
  t.after(() => pool.close());
  const entry = img.bootstrap.blobs[0]!;
  const size = entry.uncompressedSize;
  const MiB = 1 << 20;
  const chunks = Math.ceil(size / MiB);
  assert.ok(chunks >= 3);
  const run = async (fsid: string, fd: number) => {
    const reg = new ImageCatalog({ amplifyBytes: 64 * MiB, decodePool: pool });
    await reg.add({ fsid, bootstrap: join(img.out, 'bootstrap') });
    const io = new RecordingIo();
    const fe = new CachefilesFrontend(io, new CachefilesTargets(reg));
    fe.handle(open(1, 1, fd, `erofs,${fsid}`, img.blobId));
    // READ by READ, in order: from the second on the blob is read sequentially, so the
    // chunks past each READ are fetched ahead.
    for (let off = 0, id = 10; off < size; off += MiB, id++) {
      fe.handle(read(id, 1, off, Math.min(MiB, size - off)));
      await fe.idle();
    }
    return { io, fe };
  };
  const ok = await run('img1', 90);
  assert.equal(ok.fe.stats.readFailures, 0);
  assert.ok(jobs >= 1, 'no read-ahead chunk went to the pool');
  assert.ok(jobs <= chunks - 2, `${jobs} of ${chunks} chunks went to the pool: the first two READs' own chunks must be decoded on this thread`);
  const ino = img.bootstrap.lookup('/big');
  const file = ok.io.files.get(90)!;
  for (const m of img.bootstrap.chunkMap(ino)) {
    const at = m.chunk.blkaddr * 4096;
    assert.ok(file.subarray(at, at + m.length).equals(img.data.subarray(m.fileOffset, m.fileOffset + m.length)), `chunk at ${m.fileOffset}`);
  }
  // The same blob with a byte of its third chunk (a read-ahead one) flipped: the read-ahead
  // fails quietly on the pool, the READ that then needs it fails, and its range is never written.
  const bad = [...img.bootstrap.chunks].sort((a, b) => a.uncompressedOffset - b.uncompressedOffset)[2]!;
  const blobPath = join(img.out, 'blobs', img.blobId);
  const blob = await readFile(blobPath);
  blob[bad.compressedOffset + 10] ^= 0xff;
  await writeFile(blobPath, blob);
  const before = jobs;
  const broken = await run('img2', 91);
  assert.ok(jobs > before, 'the corrupt chunk was not decoded on the pool');
  assert.ok(broken.fe.stats.readFailures >= 1, 'no READ failed');
  for (const [, off, len] of broken.io.written) {
    assert.ok(off + len <= bad.uncompressedOffset || off >= bad.uncompressedOffset + bad.uncompressedSize, `a write [${off}, +${len}) covers the corrupt chunk`);
  }
});

test('a READ that outlives its timeout is completed unfilled; the fd closes only after the fill settles', async (t) => {
  const img = await makeImage(t);
  const reg = new ImageCatalog({ amplifyBytes: 0 });
  await reg.add({ fsid: 'img1', bootstrap: join(img.out, 'bootstrap') });
  const io = new RecordingIo();
  io.writeDelayMs = 300;
  const fe = new CachefilesFrontend(io, new CachefilesTargets(reg), { readTimeoutMs: 50 });
  fe.handle(open(1, 1, 70, 'erofs,img1', img.blobId));
  fe.handle(read(2, 1, 0, 4096));
  fe.handle(close(3, 1));
  await fe.idle();
  assert.deepEqual(io.completes, [[70, 2]]);
  assert.equal(fe.stats.readTimeouts, 1);
  assert.deepEqual(io.closed, [], 'fd must stay open while a write to it is in flight');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(io.closed, [70]);
});

test('a second OPEN of a live object replaces it; CLOSE of an unknown object is ignored', async (t) => {
  const img = await makeImage(t);
  const reg = new ImageCatalog();
  await reg.add({ fsid: 'img1', bootstrap: join(img.out, 'bootstrap') });
  const io = new RecordingIo();
  const fe = new CachefilesFrontend(io, new CachefilesTargets(reg));
  fe.handle(open(1, 5, 80, 'erofs,img1', 'img1'));
  fe.handle(open(2, 5, 81, 'erofs,img1', 'img1'));
  assert.deepEqual(io.closed, [80]);
  fe.handle(close(3, 99));
  fe.handle(read(4, 5, 0, 4096));
  await fe.idle();
  assert.deepEqual(io.completes, [[81, 4]]);
  assert.deepEqual(io.files.get(81)!.subarray(0, 4096), img.bootstrap.buf.subarray(0, 4096));
});

// A target whose filler writes zeros after `gate` opens: no image needed for protocol paths.
function stubResolver(gate: Promise<void> = Promise.resolve()): TargetResolver {
  return {
    resolve: () => ({
      size: 1 << 20,
      label: 'stub',
      cache: { size: 1 << 20, complete: false, fill: async (offset, length, w) => { await gate; await w.write(offset, Buffer.alloc(length)); } },
    }),
  };
}

test('messages: the header is read apart from the body; a bad body still yields msgId, opcode, object and the OPEN fd', () => {
  const o = encodeMessage({ opcode: Opcode.Open, msgId: 7, objectId: 3, fd: 42, flags: 0, volumeKey: 'erofs,x', cookieKey: 'x' });
  assert.deepEqual(parseHeader(o), { msgId: 7, opcode: Opcode.Open, len: o.length, objectId: 3 });
  o.writeUInt32LE(1000, 16); // key sizes overflow the message
  const m = readMessage(o);
  assert.ok(isMalformed(m));
  assert.deepEqual(m.header, { msgId: 7, opcode: Opcode.Open, len: o.length, objectId: 3 });
  assert.equal(m.fd, 42);
  assert.ok(m.error instanceof CorruptError);
  assert.equal(m.error.offset, 16);
  // An OPEN cut before its fd field: answerable, but there is no fd to close.
  const short = Buffer.from(o.subarray(0, 20)); short.writeUInt32LE(20, 8);
  const s = readMessage(short);
  assert.ok(isMalformed(s));
  assert.equal(s.fd, undefined);
  assert.equal(s.error.offset, 8);
  // Fewer bytes than a header: nothing to answer with.
  assert.throws(() => readMessage(o, 12), (e: unknown) => e instanceof CorruptError && e.offset === 0);
  assert.throws(() => parseMessage(o), /overflow/);
  const good = readMessage(encodeMessage({ opcode: Opcode.Close, msgId: 1, objectId: 2 }));
  assert.ok(!isMalformed(good));
});

test('a malformed OPEN is answered copen -EIO and its fd closed; a malformed READ is completed', async () => {
  const io = new RecordingIo();
  const fe = new CachefilesFrontend(io, stubResolver());
  const o = encodeMessage({ opcode: Opcode.Open, msgId: 5, objectId: 9, fd: 77, flags: 0, volumeKey: 'erofs,x', cookieKey: 'x' });
  o.writeUInt32LE(1000, 20);
  fe.handle(readMessage(o));
  assert.deepEqual(io.commands, ['copen 5,-5']);
  assert.deepEqual(io.closed, [77]);

  const short = Buffer.from(o.subarray(0, 20)); short.writeUInt32LE(20, 8); short.writeUInt32LE(6, 0);
  fe.handle(readMessage(short));
  assert.deepEqual(io.commands, ['copen 5,-5', 'copen 6,-5']);
  assert.deepEqual(io.closed, [77], 'no fd field was read: nothing closed');

  fe.handle(open(10, 1, 50, 'erofs,x', 'x'));
  const r = encodeMessage({ opcode: Opcode.Read, msgId: 11, objectId: 1, offset: 0, length: 4096 });
  r.writeBigUInt64LE(1n << 60n, 16); // offset out of range
  fe.handle(readMessage(r));
  assert.deepEqual(io.completes, [[50, 11]]);
  assert.equal(io.writes, 0);
  assert.equal(fe.stats.malformed, 3);
  assert.equal(fe.stats.readFailures, 1);

  // A READ with a bad body for an object this process has no fd of cannot be completed.
  const orphan = Buffer.from(r); orphan.writeUInt32LE(2, 12); orphan.writeUInt32LE(12, 0);
  fe.handle(readMessage(orphan));
  assert.deepEqual(io.completes, [[50, 11]]);
  assert.equal(fe.stats.orphanReads, 1);

  // A CLOSE with a wrong length still releases its object.
  const c = Buffer.alloc(20); encodeMessage({ opcode: Opcode.Close, msgId: 13, objectId: 1 }).copy(c); c.writeUInt32LE(20, 8);
  fe.handle(readMessage(c, 20));
  assert.deepEqual(io.closed, [77, 50]);
  assert.equal(fe.stats.liveObjects, 0);
  await fe.idle();
});

test('a READ that races its CLOSE is completed on the fd still held; once the fd is closed, READs are counted as orphans', async () => {
  let openGate!: () => void;
  const gate = new Promise<void>((r) => (openGate = r));
  const io = new RecordingIo();
  const fe = new CachefilesFrontend(io, stubResolver(gate));
  fe.handle(open(1, 4, 60, 'erofs,x', 'x'));
  fe.handle(read(2, 4, 0, 4096)); // in flight until the gate opens
  fe.handle(close(3, 4));
  assert.equal(fe.stats.liveObjects, 0);
  assert.deepEqual(io.closed, [], 'the fd stays while a READ is in flight');
  fe.handle(read(4, 4, 4096, 4096));
  assert.deepEqual(io.completes, [[60, 4]], 'completed at once, on the object\'s own fd, without a fill');
  assert.equal(fe.stats.lateReads, 1);
  openGate();
  await fe.idle();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(io.completes, [[60, 4], [60, 2]]);
  assert.deepEqual(io.closed, [60]);
  fe.handle(read(5, 4, 0, 4096));
  assert.equal(io.completes.length, 2, 'no fd of object 4 is left to complete on');
  assert.equal(fe.stats.orphanReads, 1);
  // closeAll after CLOSE closes nothing twice.
  fe.closeAll();
  assert.deepEqual(io.closed, [60]);
});
