import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, lchownSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import type { Segment } from '../../../src/builder/tree.js';
import { DecompressError, TarChecksumError, TarCorruptError, TarTruncatedError, TarUnsupportedError, UnsupportedCompressionError } from '../../../src/builder/import/errors.js';
import { readTar, type TarEntry, type TarWarning } from '../../../src/builder/import/tar/reader.js';
import { openLayer } from '../../../src/builder/import/tar/source.js';
import { base256Field, entryBytes, gnuTar, header, paxRecords, setChecksum, tarball } from '../../helpers/tar-craft.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ondine-tar-reader-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Read {
  entry: TarEntry;
  segments: Segment[];
}

async function readFile(path: string, opts: { onWarning?: (w: TarWarning) => void; segmentSize?: number } = {}): Promise<Read[]> {
  const layer = await openLayer(path);
  const out: Read[] = [];
  for await (const entry of readTar(layer.data, { source: path, ...opts })) {
    const segments: Segment[] = [];
    if (entry.type === 'file') for await (const s of entry.segments()) segments.push({ offset: s.offset, data: Buffer.from(s.data) });
    out.push({ entry, segments });
  }
  return out;
}

function write(name: string, bytes: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

function byPath(entries: Read[], path: string): Read {
  const e = entries.find((r) => r.entry.path.replace(/\/$/, '') === path);
  assert.ok(e, `no entry ${path} in ${entries.map((r) => r.entry.path).join(', ')}`);
  return e;
}

const sh = (cmd: string, cwd: string): void => void execFileSync('bash', ['-c', cmd], { cwd });

/** A small tree with every tar-representable kind and the awkward attributes. */
function makeTree(root: string): void {
  mkdirSync(join(root, 'd/sub'), { recursive: true });
  writeFileSync(join(root, 'd/file'), 'hello world\n');
  linkSync(join(root, 'd/file'), join(root, 'd/hard'));
  symlinkSync('../d/file', join(root, 'd/sym'));
  const long = `${'n'.repeat(120)}/${'m'.repeat(150)}`;
  mkdirSync(join(root, 'n'.repeat(120)));
  writeFileSync(join(root, long), 'long name');
  symlinkSync('t'.repeat(200), join(root, 'longlink'));
  sh('mknod chr c 1 7 && mknod blk b 8 3 && mkfifo fifo && chmod 4755 d/file && chmod 1777 d/sub', root);
  sh("setfattr -n user.comment -v 'a value' d/file && setcap cap_net_raw+ep d/file && setfattr -n trusted.t -v 0x00ff01 d/sub", root);
  chownSync(join(root, 'd/sub'), 1234, 5678);
  lchownSync(join(root, 'd/sym'), 42, 43);
  sh("touch -h -d '2001-02-03 04:05:06.123456789 UTC' d/file d/sym", root);
}

test('pax archive from GNU tar: every kind, xattrs, long names, nanosecond mtime', async () => {
  const src = join(dir, 'pax-src');
  mkdirSync(src);
  makeTree(src);
  gnuTar(src, ['--xattrs', "--xattrs-include=*", '--format=pax', '-cf', join(dir, 'pax.tar'), '.']);
  const entries = await readFile(join(dir, 'pax.tar'));
  const file = byPath(entries, './d/file');
  const hard = byPath(entries, './d/hard');
  // GNU tar stores whichever of the two links it meets first as the file.
  const [stored, link] = file.entry.type === 'file' ? [file, hard] : [hard, file];
  assert.equal(stored.entry.type, 'file');
  assert.equal(link.entry.type, 'hardlink');
  assert.equal(link.entry.linkPath, stored.entry.path);
  assert.equal(stored.entry.mode, 0o4755);
  assert.equal(Buffer.concat(stored.segments.map((s) => s.data)).toString(), 'hello world\n');
  assert.deepEqual(stored.entry.xattrs.get('user.comment'), Buffer.from('a value'));
  const cap = stored.entry.xattrs.get('security.capability');
  assert.ok(cap && cap.length === 20, 'security.capability is a binary vfs_cap_data');
  assert.equal(stored.entry.mtimeSec, 981173106);
  assert.equal(stored.entry.mtimeNsec, 123456789);
  const sub = byPath(entries, './d/sub').entry;
  assert.equal(sub.type, 'dir');
  assert.equal(sub.mode, 0o1777);
  assert.equal(sub.uid, 1234);
  assert.equal(sub.gid, 5678);
  assert.deepEqual(sub.xattrs.get('trusted.t'), Buffer.from([0x00, 0xff, 0x01]));
  const sym = byPath(entries, './d/sym').entry;
  assert.deepEqual([sym.type, sym.linkPath, sym.uid, sym.gid, sym.mtimeNsec], ['symlink', '../d/file', 42, 43, 123456789]);
  assert.equal(byPath(entries, './longlink').entry.linkPath, 't'.repeat(200));
  const long = byPath(entries, `./${'n'.repeat(120)}/${'m'.repeat(150)}`);
  assert.equal(Buffer.concat(long.segments.map((s) => s.data)).toString(), 'long name');
  const chr = byPath(entries, './chr').entry;
  assert.deepEqual([chr.type, chr.devMajor, chr.devMinor], ['chardev', 1, 7]);
  const blk = byPath(entries, './blk').entry;
  assert.deepEqual([blk.type, blk.devMajor, blk.devMinor], ['blockdev', 8, 3]);
  assert.equal(byPath(entries, './fifo').entry.type, 'fifo');
});

test('GNU and ustar formats: long-name entries, ustar prefix, base-256 ids and negative times', async () => {
  const src = join(dir, 'gnu-src');
  mkdirSync(src);
  makeTree(src);
  writeFileSync(join(src, 'bigid'), 'x');
  chownSync(join(src, 'bigid'), 3_000_000, 4_000_000); // beyond 7 octal digits
  sh("touch -d '1950-06-01 00:00:00 UTC' bigid", src);
  gnuTar(src, ['--format=gnu', '-cf', join(dir, 'gnu.tar'), '.']);
  const gnu = await readFile(join(dir, 'gnu.tar'));
  assert.equal(byPath(gnu, `./${'n'.repeat(120)}/${'m'.repeat(150)}`).entry.type, 'file');
  assert.equal(byPath(gnu, './longlink').entry.linkPath, 't'.repeat(200));
  const big = byPath(gnu, './bigid').entry;
  assert.deepEqual([big.uid, big.gid, big.mtimeSec], [3_000_000, 4_000_000, -618105600]);

  const ustarSrc = join(dir, 'ustar-src');
  const deep = `${'p'.repeat(90)}/${'q'.repeat(50)}`;
  mkdirSync(join(ustarSrc, deep), { recursive: true });
  writeFileSync(join(ustarSrc, deep, 'f'.repeat(90)), 'prefix');
  gnuTar(ustarSrc, ['--format=ustar', '-cf', join(dir, 'ustar.tar'), 'p'.repeat(90)]);
  const ustar = await readFile(join(dir, 'ustar.tar'));
  assert.equal(Buffer.concat(byPath(ustar, `${deep}/${'f'.repeat(90)}`).segments.map((s) => s.data)).toString(), 'prefix');
});

test('compression is detected by magic bytes, not by name: gzip and zstd give the same entries', async () => {
  const plain = tarball([
    { name: 'a', data: 'alpha' },
    { name: 'b', data: Buffer.alloc(3 << 20, 7) },
  ]);
  const expect = await readFile(write('plain.bin', plain));
  for (const [name, bytes] of [
    ['gz-named.tar', gzipSync(plain)],
    ['zst-named.tar.gz', Buffer.from(zstdCompress(plain))],
  ] as const) {
    const layer = await openLayer(write(name, bytes));
    assert.equal(layer.compression, name.startsWith('gz') ? 'gzip' : 'zstd');
    const got = await readFile(join(dir, name));
    assert.deepEqual(got.map((r) => [r.entry.path, Buffer.concat(r.segments.map((s) => s.data))]), expect.map((r) => [r.entry.path, Buffer.concat(r.segments.map((s) => s.data))]));
  }
  const src = join(dir, 'z-src');
  mkdirSync(src);
  writeFileSync(join(src, 'x'), 'zstd by tar');
  gnuTar(src, ['--zstd', '-cf', join(dir, 'tar-zstd.bin'), 'x']);
  gnuTar(src, ['-z', '-cf', join(dir, 'tar-gzip.bin'), 'x']);
  for (const f of ['tar-zstd.bin', 'tar-gzip.bin']) {
    const [x] = await readFile(join(dir, f));
    assert.equal(Buffer.concat(x!.segments.map((s) => s.data)).toString(), 'zstd by tar');
  }
});

test('unsupported and broken compression are typed errors naming the file', async () => {
  const xz = write('layer.xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2]));
  await assert.rejects(openLayer(xz), (e: unknown) => e instanceof UnsupportedCompressionError && e.code === 'ONDINE_ERR_UNSUPPORTED_COMPRESSION' && e.message.includes(xz));
  const gz = gzipSync(tarball([{ name: 'a', data: Buffer.alloc(100_000, 1) }]));
  const cut = write('cut.tgz', gz.subarray(0, gz.length - 20));
  await assert.rejects(readFile(cut), (e: unknown) => e instanceof DecompressError && e.code === 'ONDINE_ERR_DECOMPRESS' && e.message.includes(cut));
  const zs = Buffer.from(zstdCompress(tarball([{ name: 'a', data: Buffer.alloc(300_000, 1) }])));
  const zcut = write('cut.zst', zs.subarray(0, zs.length - 10));
  await assert.rejects(readFile(zcut), (e: unknown) => e instanceof DecompressError);
});

test('sparse files in every GNU encoding: holes are never materialised', async () => {
  const src = join(dir, 'sparse-src');
  mkdirSync(src);
  const at = 4.5 * 2 ** 30;
  sh(`truncate -s 5G big && printf 'tail data' | dd of=big bs=1 seek=${at} conv=notrunc status=none && printf 'head' | dd of=big bs=1 conv=notrunc status=none`, src);
  const variants: Array<[string, string[]]> = [
    ['gnu-S', ['--format=gnu', '--sparse']],
    ['pax-0.0', ['--format=pax', '--sparse', '--sparse-version=0.0']],
    ['pax-0.1', ['--format=pax', '--sparse', '--sparse-version=0.1']],
    ['pax-1.0', ['--format=pax', '--sparse', '--sparse-version=1.0']],
  ];
  for (const [name, flags] of variants) {
    gnuTar(src, [...flags, '-cf', join(dir, `${name}.tar`), 'big']);
    const [big] = await readFile(join(dir, `${name}.tar`));
    assert.ok(big, name);
    assert.equal(big.entry.path, 'big', name);
    assert.equal(big.entry.size, 5 * 2 ** 30, name);
    assert.ok(big.entry.sparse, name);
    const received = big.segments.reduce((n, s) => n + s.data.length, 0);
    assert.ok(received <= 64 * 1024, `${name}: ${received} bytes read for a 5 GiB file`);
    const first = big.segments[0]!;
    assert.equal(first.offset, 0, name);
    assert.equal(first.data.subarray(0, 4).toString(), 'head', name);
    const last = big.segments[big.segments.length - 1]!;
    assert.ok(last.offset <= at && last.offset + last.data.length >= at + 9, name);
    assert.equal(last.data.subarray(at - last.offset, at - last.offset + 9).toString(), 'tail data', name);
  }
});

test('entry data streams in bounded segments and may be left unread', async () => {
  const data = Buffer.alloc(5 * 1024 * 1024 + 77);
  for (let i = 0; i < data.length; i++) data[i] = i % 251;
  const path = write('segments.tar', tarball([{ name: 'big', data }, { name: 'skipped', data: 'not read' }, { name: 'after', data: 'tail' }]));
  const layer = await openLayer(path);
  const seen: string[] = [];
  let stale: AsyncIterable<Segment> | undefined;
  for await (const e of readTar(layer.data, { segmentSize: 1 << 20 })) {
    seen.push(e.path);
    if (e.path === 'big') {
      const parts: Buffer[] = [];
      for await (const s of e.segments()) {
        assert.ok(s.data.length <= 1 << 20);
        assert.equal(s.offset, parts.reduce((n, p) => n + p.length, 0));
        parts.push(Buffer.from(s.data));
      }
      assert.ok(Buffer.concat(parts).equals(data));
      assert.throws(() => e.segments(), TypeError);
    }
    if (e.path === 'skipped') stale = e.segments();
    if (e.path === 'after') {
      const got: Buffer[] = [];
      for await (const s of e.segments()) got.push(s.data);
      assert.equal(Buffer.concat(got).toString(), 'tail');
      // The previous entry's data was skipped; reading it now must fail, not return other bytes.
      await assert.rejects(async () => {
        for await (const s of stale!) void s;
      });
    }
  }
  assert.deepEqual(seen, ['big', 'skipped', 'after']);
});

test('bad checksum is a typed error with the header offset', async () => {
  const bytes = Buffer.concat([entryBytes({ name: 'ok', data: 'x' }), entryBytes({ name: 'evil', data: 'y', checksumDelta: 1 }), Buffer.alloc(1024)]);
  const path = write('badsum.tar', bytes);
  await assert.rejects(readFile(path), (e: unknown) => e instanceof TarChecksumError && e.code === 'ONDINE_ERR_TAR_CHECKSUM' && e.offset === 1024 && e instanceof TarCorruptError);
});

test('truncation anywhere is an error; EOF on a block boundary or after one zero block is the end', async () => {
  const full = tarball([{ name: 'a', data: Buffer.alloc(2000, 1) }, { name: 'b', data: 'bb' }]);
  for (const cut of [100, 512 + 1000, 512 + 2048 + 300, 512 + 2000]) {
    const p = write(`trunc-${cut}.tar`, full.subarray(0, cut));
    await assert.rejects(readFile(p), (e: unknown) => e instanceof TarTruncatedError && e.code === 'ONDINE_ERR_TAR_TRUNCATED', `cut at ${cut}`);
  }
  const warnings: TarWarning[] = [];
  const noEnd = await readFile(write('noend.tar', full.subarray(0, full.length - 1024)), { onWarning: (w) => warnings.push(w) });
  assert.deepEqual(noEnd.map((r) => r.entry.path), ['a', 'b']);
  assert.deepEqual(warnings.map((w) => [w.code, w.offset]), [['TAR_NO_END_MARKER', full.length - 1024]]);
  const oneZero = await readFile(write('onezero.tar', full.subarray(0, full.length - 512)));
  assert.deepEqual(oneZero.map((r) => r.entry.path), ['a', 'b']);
  // A pax header with nothing after it is a truncated entry, not an empty archive.
  const paxOnly = entryBytes({ name: 'x', pax: [['path', 'y']] }).subarray(0, 1024);
  await assert.rejects(readFile(write('paxonly.tar', paxOnly)), TarTruncatedError);
  const lone = Buffer.concat([Buffer.alloc(512), entryBytes({ name: 'a' }), Buffer.alloc(1024)]);
  await assert.rejects(readFile(write('lonezero.tar', lone)), TarCorruptError);
});

test('pax: records override the header, globals apply to later entries, malformed records fail', async () => {
  const global = paxRecords([['mtime', '-1.25'], ['uid', '77'], ['path', 'ignored']]);
  const bytes = Buffer.concat([
    header({ name: 'g', type: 'g', data: global }),
    global,
    Buffer.alloc(512 - global.length),
    entryBytes({
      name: 'short',
      data: 'payload',
      pax: [
        ['path', `${'é'.repeat(200)}/file`],
        ['gid', '9999999999'],
        ['LIBARCHIVE.xattr.user.la%3Dx', Buffer.from('bin\x00ary').toString('base64')],
        ['SCHILY.xattr.user.raw', Buffer.from([0, 1, 2, 0x0a, 0xff])],
      ],
    }),
    entryBytes({ name: 'plain', data: '' }),
    Buffer.alloc(1024),
  ]);
  const warnings: TarWarning[] = [];
  const [first, second] = await readFile(write('pax.tar', bytes), { onWarning: (w) => warnings.push(w) });
  assert.equal(first!.entry.path, `${'é'.repeat(200)}/file`);
  assert.equal(first!.entry.gid, 9999999999);
  assert.equal(first!.entry.uid, 77);
  assert.deepEqual([first!.entry.mtimeSec, first!.entry.mtimeNsec], [-2, 750000000]);
  assert.deepEqual(first!.entry.xattrs.get('user.la=x'), Buffer.from('bin\x00ary'));
  assert.deepEqual(first!.entry.xattrs.get('user.raw'), Buffer.from([0, 1, 2, 0x0a, 0xff]));
  assert.equal(Buffer.concat(first!.segments.map((s) => s.data)).toString(), 'payload');
  assert.equal(second!.entry.path, 'plain');
  assert.equal(second!.entry.uid, 77);
  assert.ok(warnings.some((w) => w.code === 'TAR_GLOBAL_KEYWORD_IGNORED'));

  for (const bad of [Buffer.from('5 a=b\n'), Buffer.from('x path=y\n'), Buffer.from('12 path=y\n'), Buffer.from('9 mtime=z\n')]) {
    const t = Buffer.concat([header({ name: 'p', type: 'x', data: bad }), bad, Buffer.alloc(512 - bad.length), entryBytes({ name: 'a' }), Buffer.alloc(1024)]);
    await assert.rejects(readFile(write('badpax.tar', t)), (e: unknown) => e instanceof TarCorruptError && e.code === 'ONDINE_ERR_TAR_CORRUPT' && e.offset === 0, bad.toString());
  }
});

test('base-256 numeric fields, v7 directories and unknown entry types', async () => {
  const h = header({ name: 'b256', data: 'z' });
  base256Field(5_000_000_000n, 8).copy(h, 108); // uid
  base256Field(-5n, 12).copy(h, 136); // mtime
  setChecksum(h);
  const v7dir = header({ name: 'olddir/', type: '\0', format: 'v7' });
  const bytes = Buffer.concat([h, Buffer.from('z'), Buffer.alloc(511), v7dir, Buffer.alloc(1024)]);
  const [b, d] = await readFile(write('b256.tar', bytes));
  assert.equal(b!.entry.uid, 5_000_000_000);
  assert.equal(b!.entry.mtimeSec, -5);
  assert.equal(d!.entry.type, 'dir');
  const unknown = tarball([{ name: 'weird', type: 'Q' }]);
  await assert.rejects(readFile(write('unknown.tar', unknown)), (e: unknown) => e instanceof TarUnsupportedError && e.entry === 'weird');
  const badOctal = header({ name: 'a' });
  badOctal.write('12x4', 124, 'latin1');
  setChecksum(badOctal);
  await assert.rejects(readFile(write('badoctal.tar', Buffer.concat([badOctal, Buffer.alloc(1024)]))), TarCorruptError);
});

test('a sparse map that lies about its data is rejected', async () => {
  const bytes = tarball([
    {
      name: 'GNUSparseFile.1/s',
      data: 'abcd',
      pax: [
        ['GNU.sparse.size', '100'],
        ['GNU.sparse.map', '90,4,10,4'],
        ['GNU.sparse.name', 's'],
      ],
    },
  ]);
  await assert.rejects(readFile(write('badmap.tar', bytes)), (e: unknown) => e instanceof TarCorruptError && /overlaps|beyond|describes/.test(e.message));
});

test('header-only types carry no data whatever their size field says (as Go archive/tar reads them)', async () => {
  const sym = header({ name: 'sym', type: '2', linkname: 'target', size: 700 });
  const bytes = Buffer.concat([sym, entryBytes({ name: 'next', data: 'still found' }), Buffer.alloc(1024)]);
  const [s, next] = await readFile(write('headeronly.tar', bytes));
  assert.deepEqual([s!.entry.type, s!.entry.linkPath, s!.entry.size], ['symlink', 'target', 0]);
  assert.equal(Buffer.concat(next!.segments.map((x) => x.data)).toString(), 'still found');
  const fakeSparse = tarball([{ name: 'sp', type: 'S', data: 'abc' }]);
  await assert.rejects(readFile(write('fakesparse.tar', fakeSparse)), TarUnsupportedError);
});

test('a gzip layer is decoded ahead of a reader that is busy (the decoder does not wait for each of its outputs to be taken)', async () => {
  // Incompressible bytes: the stored bytes read ahead then follow the decoded bytes made ahead.
  // A decoder that stopped after each 256 KiB output until the reader took it left ~2-3 MiB
  // of the stored layer read (the file stream's and the checks' own buffers); one that runs
  // ahead reads past 6 MiB while the reader holds its first chunk.
  const { randomBytes } = await import('node:crypto');
  const path = write('ahead.tar.gz', gzipSync(randomBytes(24 << 20), { level: 1 }));
  const layer = await openLayer(path);
  const it = layer.data[Symbol.asyncIterator]();
  assert.equal((await it.next()).done, false);
  // Wait, bounded, until it passes the mark or stops moving for a whole second (a liveness
  // bound, not a timing assertion: the answer is the bytes read, whenever they were read).
  let last = -1;
  let still = 0;
  for (let waited = 0; waited < 30_000 && layer.bytesRead < 6 << 20 && still < 1000; waited += 50) {
    await new Promise((r) => setTimeout(r, 50));
    still = layer.bytesRead === last ? still + 50 : 0;
    last = layer.bytesRead;
  }
  const ahead = layer.bytesRead;
  await it.return?.();
  assert.ok(ahead >= 6 << 20, `only ${ahead} bytes of the layer were read while the reader held its first chunk`);
});
