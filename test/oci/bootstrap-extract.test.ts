// Taking the bootstrap out of a hostile bootstrap layer: pax and GNU long names are followed;
// duplicates, links and sparse entries named image/image.boot are refused; an entry whose
// header declares more than the cap is refused before its body is read (the source is an
// endless stream of zeros, and little of it is pulled); a file of zeros under the cap stops at
// its first block; a decompression bomb stops at the cap; a failed store leaves nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import type { LayerSource } from '../../src/builder/import/tar/source.js';
import { extractBootstrapBuffer } from '../../src/oci/bootstrap-extract.js';
import { BootstrapStore } from '../../src/oci/bootstrap-store.js';
import { CacheDir } from '../../src/storage/cache-dir.js';
import { header, tarball } from '../helpers/tar-craft.js';
import { FIXTURE_BOOT } from '../storage/support.js';

const MiB = 1 << 20;
const work = mkdtempSync('/var/tmp/ondine-boot-extract-');
after(() => rmSync(work, { recursive: true, force: true }));
const boot = readFileSync(FIXTURE_BOOT);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const memory = (bytes: Buffer, name = 'layer'): LayerSource => ({ name, open: async () => Readable.from([bytes]) });
const codeOf = (code: string) => (e: Error & { code?: string }) => {
  assert.equal(e.code, code, e.message);
  return true;
};

/** A tar header followed by zeros for ever, as a raw stream that counts what was pulled from it. */
function endless(head: Buffer): { source: LayerSource; pulled: () => number } {
  let pulled = 0;
  const zeros = Buffer.alloc(MiB);
  return {
    pulled: () => pulled,
    source: {
      name: 'endless',
      open: async () => Readable.from((async function* () {
        pulled += head.length;
        yield head;
        for (;;) {
          pulled += zeros.length;
          yield zeros;
        }
      })()),
    },
  };
}

test('the bootstrap under image/image.boot, ./image/image.boot, a pax path and a GNU long name', async () => {
  const long = `image/${'d'.repeat(120)}/../image.boot`; // a long name that is not the bootstrap's: skipped
  for (const entries of [
    [{ name: 'image/', type: '5' }, { name: 'image/image.boot', data: boot }],
    [{ name: './image/image.boot', data: boot }],
    [{ name: 'x', data: boot, pax: [['path', 'image/image.boot']] as Array<[string, string]> }],
    [{ name: '././@LongLink', type: 'L', data: 'image/image.boot\0' }, { name: 'cut', data: boot }],
    [{ name: 'other', data: 'x', pax: [['path', long]] as Array<[string, string]> }, { name: 'image/image.boot', data: boot }],
  ]) {
    const got = await extractBootstrapBuffer(memory(gzipSync(tarball(entries))));
    assert.ok(got.equals(boot), JSON.stringify(entries.map((e) => e.name)));
  }
});

test('refused: a duplicate, a hardlink, a symlink, a sparse entry named image/image.boot', async () => {
  await assert.rejects(extractBootstrapBuffer(memory(gzipSync(tarball([{ name: 'image/image.boot', data: boot }, { name: 'image/image.boot', data: boot }])))),
    (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_CORRUPT' && /second image\/image\.boot/.test(e.message));
  for (const type of ['1', '2']) {
    await assert.rejects(extractBootstrapBuffer(memory(gzipSync(tarball([{ name: 'real', data: boot }, { name: 'image/image.boot', type, linkname: 'real' }])))),
      (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_CORRUPT' && /link, not a regular file/.test(e.message));
  }
  const sparse = tarball([{ name: 'image/image.boot', data: boot, pax: [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.map', `0,${boot.length}`], ['GNU.sparse.realsize', String(boot.length)]] }]);
  // Refused by the tar reader (this sparse format) or by the extraction (any sparse entry).
  await assert.rejects(extractBootstrapBuffer(memory(gzipSync(sparse))), (e: Error & { code?: string }) => /^ONDINE_ERR_(TAR_)?UNSUPPORTED$/.test(String(e.code)));
});

test('an entry declaring more than the cap is refused before its body is read', async () => {
  for (const name of ['image/image.boot', 'image/other']) {
    const e = endless(header({ name, size: 3 * 1024 * MiB }));
    await assert.rejects(extractBootstrapBuffer(e.source, { maxBytes: 8 * MiB }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ONDINE_ERR_TOO_LARGE', err.message);
      assert.match(err.message, /declares 3221225472 bytes/);
      return true;
    });
    // Read-ahead of the stream stages only: nowhere near the cap, let alone the declared size.
    assert.ok(e.pulled() < 8 * MiB, `${name}: ${e.pulled()} bytes pulled`);
  }
});

test('a bootstrap of zeros under the cap stops at its first block', async () => {
  const e = endless(header({ name: 'image/image.boot', size: 512 * MiB }));
  await assert.rejects(extractBootstrapBuffer(e.source, { maxBytes: 1024 * MiB }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ONDINE_ERR_CORRUPT', err.message);
    assert.match(err.message, /bad magic/);
    return true;
  });
  assert.ok(e.pulled() < 16 * MiB, `${e.pulled()} bytes pulled`);
});

test('a decompression bomb of zeros (no tar entry at all) stops at the cap', async () => {
  // 256 MiB of zeros, gzip'd as it streams: the tar reader sees an end marker and reads on.
  const bomb = Readable.from((async function* () {
    for (let i = 0; i < 256; i++) yield Buffer.alloc(MiB);
  })()).pipe(createGzip({ level: 1 }));
  const chunks: Buffer[] = [];
  for await (const c of bomb) chunks.push(c as Buffer);
  const gz = Buffer.concat(chunks);
  assert.ok(gz.length < 2 * MiB);
  await assert.rejects(extractBootstrapBuffer(memory(gz), { maxBytes: 1 * MiB }), codeOf('ONDINE_ERR_TOO_LARGE'));
});

test('a layer without the bootstrap, and a truncated one', async () => {
  await assert.rejects(extractBootstrapBuffer(memory(gzipSync(tarball([{ name: 'image/other', data: boot }])))), codeOf('ONDINE_ERR_CORRUPT'));
  const whole = gzipSync(tarball([{ name: 'image/image.boot', data: boot }]));
  await assert.rejects(extractBootstrapBuffer(memory(whole.subarray(0, whole.length - 100))),
    (e: Error & { code?: string }) => /^ONDINE_ERR_(DECOMPRESS|TAR_TRUNCATED)$/.test(String(e.code)));
});

test('a bootstrap whose tables lie outside it is refused before the rest is read', async () => {
  const bad = Buffer.from(boot);
  // RAFS v6 extended superblock at 1152: chunk table offset (u64 at +24) far beyond the file.
  bad.writeBigUInt64LE(1n << 40n, 1152 + 24);
  await assert.rejects(extractBootstrapBuffer(memory(gzipSync(tarball([{ name: 'image/image.boot', data: bad }])))), codeOf('ONDINE_ERR_CORRUPT'));
});

test('BootstrapStore: a failed pull leaves no file and no link; a good one is placed and found', async () => {
  mkdirSync(join(work, 'cache')); // the daemon's cache directory exists; CacheDir makes what is below it
  const store = new BootstrapStore(new CacheDir(join(work, 'cache')));
  const good = gzipSync(tarball([{ name: 'image/image.boot', data: boot }]));
  const digest = `sha256:${sha(good)}`;
  const lying = Buffer.concat([good, Buffer.from([0])]);
  await assert.rejects(store.pull(digest, { ...memory(lying), digest, size: good.length }), codeOf('ONDINE_ERR_TOO_LARGE'));
  const badDigest = `sha256:${sha(lying)}`;
  await assert.rejects(store.pull(badDigest, { ...memory(lying), digest: badDigest, size: lying.length }), codeOf('ONDINE_ERR_DECOMPRESS'));
  // The by-layer directory is opened (made) before the layer is read; it stays empty.
  assert.deepEqual(readdirSync(store.dir), ['by-layer']);
  assert.deepEqual(readdirSync(join(store.dir, 'by-layer')), []);
  assert.equal(store.find(digest), undefined);
  const placed = await store.pull(digest, { ...memory(good), digest, size: good.length });
  assert.equal(placed.path, join(store.dir, sha(boot)));
  assert.ok(readFileSync(placed.path).equals(boot));
  assert.deepEqual(readdirSync(store.dir).sort(), [sha(boot), 'by-layer'].sort());
  assert.equal(store.find(digest)?.path, placed.path);
  assert.equal(existsSync(join(store.dir, 'by-layer', sha(good))), true);
});

test('BootstrapStore: a link planted as the bootstraps or by-layer directory fails the pull with ONDINE_ERR_UNSAFE_PATH before a byte is read; a linked record is refused by find and replaced, never followed', async () => {
  const root = join(work, 'links');
  const outside = join(root, 'outside');
  mkdirSync(outside, { recursive: true });
  const victim = join(outside, 'victim');
  writeFileSync(victim, 'not the cache\n');
  const good = gzipSync(tarball([{ name: 'image/image.boot', data: boot }]));
  const digest = `sha256:${sha(good)}`;
  const counted = (): { source: LayerSource; opened: () => number } => {
    let n = 0;
    return { opened: () => n, source: { name: 'layer', digest, size: good.length, open: async () => { n++; return Readable.from([good]); } } };
  };
  const unsafe = codeOf('ONDINE_ERR_UNSAFE_PATH');
  const untouched = (what: string) => {
    assert.deepEqual(readdirSync(outside), ['victim'], `${what}: nothing made outside the cache directory`);
    assert.equal(readFileSync(victim, 'utf8'), 'not the cache\n', `${what}: the file outside is untouched`);
  };

  const a = new CacheDir(join(root, 'a'));
  mkdirSync(a.root, { recursive: true });
  symlinkSync(outside, join(a.root, 'bootstraps'));
  let src = counted();
  await assert.rejects(new BootstrapStore(a).pull(digest, src.source), unsafe);
  assert.equal(src.opened(), 0, 'the layer is not fetched');
  assert.throws(() => new BootstrapStore(a).find(digest), unsafe);
  untouched('bootstraps a link');

  const b = new CacheDir(join(root, 'b'));
  mkdirSync(join(b.root, 'bootstraps'), { recursive: true });
  symlinkSync(outside, join(b.root, 'bootstraps', 'by-layer'));
  src = counted();
  await assert.rejects(new BootstrapStore(b).pull(digest, src.source), unsafe);
  assert.equal(src.opened(), 0, 'the layer is not fetched');
  assert.deepEqual(readdirSync(join(b.root, 'bootstraps')), ['by-layer'], 'no bootstrap and no temporary file left');
  untouched('by-layer a link');

  const c = new CacheDir(join(root, 'c'));
  mkdirSync(join(c.root, 'bootstraps', 'by-layer'), { recursive: true });
  const record = join(c.root, 'bootstraps', 'by-layer', sha(good));
  symlinkSync(victim, record);
  const store = new BootstrapStore(c);
  assert.throws(() => store.find(digest), unsafe);
  // A pull writes the record by rename: the planted link itself is replaced, its target untouched.
  const placed = await store.pull(digest, counted().source);
  assert.ok(placed.bytes.equals(boot));
  assert.equal(lstatSync(record).isFile(), true);
  assert.equal(readFileSync(record, 'utf8'), sha(boot));
  assert.equal(store.find(digest)?.path, placed.path);
  untouched('a record a link');

  // The stored bootstrap itself replaced by a link: refused, not followed.
  rmSync(placed.path);
  symlinkSync(victim, placed.path);
  assert.throws(() => store.find(digest), unsafe);
  untouched('the bootstrap a link');
});
