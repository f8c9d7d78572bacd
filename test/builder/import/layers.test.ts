import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HardlinkTargetError, LayerEntryError, SymlinkParentError, TarChecksumError, TarTruncatedError, UnsafePathError } from '../../../src/builder/import/errors.js';
import { applyLayer, applyLayers, type LayerProgress } from '../../../src/builder/import/tar/layers.js';
import type { TarWarning } from '../../../src/builder/import/tar/reader.js';
import { lookup, newDir, walk, type TreeNode } from '../../../src/builder/tree.js';
import { asMemory, MemorySink, readContent, type MemoryContent } from '../../helpers/memory-sink.js';
import { entryBytes, gnuTar, tarball, type CraftEntry } from '../../helpers/tar-craft.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ondine-layers-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function layer(entries: CraftEntry[]): string {
  const p = join(dir, `layer-${n++}.tar`);
  writeFileSync(p, tarball(entries));
  return p;
}

type Tree = TreeNode<MemoryContent>;

async function apply(layers: string[], opts: { onWarning?: (w: TarWarning) => void; onProgress?: (p: LayerProgress) => void } = {}): Promise<{ root: Tree; sinks: MemorySink[] }> {
  const sinks: MemorySink[] = [];
  const root = await applyLayers<MemoryContent>(layers, (i) => (sinks[i] = new MemorySink()), opts);
  return { root, sinks };
}

function paths(root: Tree): string[] {
  return [...walk(root)].map(([p, node]) => (node.kind === 'dir' ? `${p}/` : p)).filter((p) => p !== '//');
}

function text(root: Tree, path: string): string {
  const node = lookup(root, path);
  assert.ok(node?.kind === 'file', `${path} is not a file`);
  return readContent(asMemory(node.content)).toString();
}

const d = (name: string, extra: Partial<CraftEntry> = {}): CraftEntry => ({ name: `${name}/`, type: '5', mode: 0o755, ...extra });
const f = (name: string, data: string, extra: Partial<CraftEntry> = {}): CraftEntry => ({ name, data, ...extra });
const wh = (name: string): CraftEntry => ({ name, data: '' });

test('layers built by GNU tar: a real upper layer deletes, replaces and adds over the lower one', async () => {
  const lower = join(dir, 'real-lower');
  const upper = join(dir, 'real-upper');
  mkdirSync(join(lower, 'etc/conf.d'), { recursive: true });
  mkdirSync(join(lower, 'var/cache'), { recursive: true });
  writeFileSync(join(lower, 'etc/passwd'), 'root:x:0:0\n');
  writeFileSync(join(lower, 'etc/conf.d/a'), 'a');
  writeFileSync(join(lower, 'var/cache/old'), 'old');
  mkdirSync(join(upper, 'etc'), { recursive: true });
  mkdirSync(join(upper, 'var/cache'), { recursive: true });
  writeFileSync(join(upper, 'etc/.wh.passwd'), '');
  writeFileSync(join(upper, 'var/cache/.wh..wh..opq'), '');
  writeFileSync(join(upper, 'var/cache/new'), 'new');
  writeFileSync(join(upper, 'etc/conf.d'), 'now a file');
  gnuTar(lower, ['--format=pax', '-czf', join(dir, 'real-lower.tgz'), '.']);
  gnuTar(upper, ['--format=pax', '--zstd', '-cf', join(dir, 'real-upper.tar.zst'), '.']);
  const { root, sinks } = await apply([join(dir, 'real-lower.tgz'), join(dir, 'real-upper.tar.zst')]);
  assert.deepEqual(paths(root), ['/etc/', '/etc/conf.d', '/var/', '/var/cache/', '/var/cache/new']);
  assert.equal(text(root, 'etc/conf.d'), 'now a file');
  assert.equal(text(root, 'var/cache/new'), 'new');
  assert.equal(sinks[0]!.files.length, 3);
  assert.equal(sinks[1]!.files.length, 2, 'whiteout files are not stored');
});

test('opaque marker hides lower entries only, wherever it sits in the tar', async () => {
  const lower = layer([d('dir'), f('dir/lower1', 'L1'), d('dir/sub'), f('dir/sub/deep', 'D'), f('other', 'O')]);
  const orders: CraftEntry[][] = [
    [d('dir'), wh('dir/.wh..wh..opq'), f('dir/mine', 'M'), f('dir/sub/x', 'X')],
    [d('dir'), f('dir/mine', 'M'), f('dir/sub/x', 'X'), wh('dir/.wh..wh..opq')],
    [f('dir/sub/x', 'X'), wh('dir/.wh..wh..opq'), f('dir/mine', 'M')],
  ];
  for (const order of orders) {
    const { root } = await apply([lower, layer(order)]);
    assert.deepEqual(paths(root), ['/dir/', '/dir/mine', '/dir/sub/', '/dir/sub/x', '/other'], JSON.stringify(order.map((e) => e.name)));
    assert.equal(text(root, 'dir/mine'), 'M');
  }
});

test('whiteouts delete lower entries but never same-layer ones, in any order', async () => {
  const lower = layer([f('a', 'lower a'), d('tree'), f('tree/old', 'o'), f('keep', 'k')]);
  for (const order of [
    [wh('.wh.a'), f('a', 'upper a'), wh('.wh.tree'), f('tree/new', 'n')],
    [f('a', 'upper a'), wh('.wh.a'), f('tree/new', 'n'), wh('.wh.tree')],
  ]) {
    const { root } = await apply([lower, layer(order)]);
    assert.deepEqual(paths(root), ['/a', '/keep', '/tree/', '/tree/new']);
    assert.equal(text(root, 'a'), 'upper a');
    // The whited-out directory is recreated implicitly, so its lower metadata must not survive.
    assert.deepEqual([lookup(root, 'tree')!.mode, lookup(root, 'tree')!.mtimeSec], [0o755, 0]);
  }
  const { root } = await apply([lower, layer([wh('.wh.keep'), wh('.wh.missing'), wh('tree/.wh.old')])]);
  assert.deepEqual(paths(root), ['/a', '/tree/']);
});

test('replacement rules: file over dir, dir over file, dir over dir keeps children and takes metadata', async () => {
  const lower = layer([d('x'), f('x/child', 'c'), f('y', 'file y'), d('z', { mode: 0o700, uid: 5 }), f('z/kept', 'k')]);
  const upper = layer([f('x', 'now file'), d('y'), f('y/inside', 'i'), d('z', { mode: 0o1777, uid: 9, mtime: 12345 })]);
  const { root } = await apply([lower, upper]);
  assert.deepEqual(paths(root), ['/x', '/y/', '/y/inside', '/z/', '/z/kept']);
  const z = lookup(root, 'z')!;
  assert.deepEqual([z.mode, z.uid, z.mtimeSec], [0o1777, 9, 12345]);
});

test('implicit parents are 0755 root:root mtime 0 until their own entry arrives', async () => {
  const { root } = await apply([layer([f('a/b/c', 'deep'), d('a', { mode: 0o750, uid: 3, gid: 4, mtime: 99 })])]);
  const a = lookup(root, 'a')!;
  const b = lookup(root, 'a/b')!;
  assert.deepEqual([a.mode, a.uid, a.gid, a.mtimeSec], [0o750, 3, 4, 99]);
  assert.deepEqual([b.kind, b.mode, b.uid, b.gid, b.mtimeSec, b.mtimeNsec, b.xattrs.size], ['dir', 0o755, 0, 0, 0, 0, 0]);
  assert.equal(text(root, 'a/b/c'), 'deep');
});

test('hardlinks share one node, across layers too; bad targets are typed errors', async () => {
  const lower = layer([f('bin/tool', 'TOOL', { mode: 0o755 }), d('etc')]);
  const upper = layer([{ name: 'usr/bin/tool', type: '1', linkname: 'bin/tool' }, { name: 'etc/again', type: '1', linkname: './bin/tool' }]);
  const { root } = await apply([lower, upper]);
  const node = lookup(root, 'bin/tool');
  assert.ok(node);
  assert.equal(lookup(root, 'usr/bin/tool'), node);
  assert.equal(lookup(root, 'etc/again'), node);
  const missing = layer([{ name: 'l', type: '1', linkname: 'nope' }]);
  await assert.rejects(apply([missing]), (e: unknown) => e instanceof HardlinkTargetError && e.code === 'ONDINE_ERR_HARDLINK_TARGET' && e.entry === 'l');
  const toDir = layer([d('dd'), { name: 'l', type: '1', linkname: 'dd' }]);
  await assert.rejects(apply([toDir]), HardlinkTargetError);
});

test('symlinks are data: stored as-is, never followed when placing later entries', async () => {
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  const lower = layer([{ name: 'a', type: '2', linkname: outside }, { name: 'rel', type: '2', linkname: '../../..' }]);
  const { root } = await apply([lower]);
  assert.equal(lookup(root, 'a')!.target, outside);
  for (const upper of [[f('a/passwd', 'pwned')], [{ name: 'x', type: '1', linkname: 'a/passwd' }], [f('rel/etc/passwd', 'pwned')], [wh('a/.wh.y')]]) {
    await assert.rejects(apply([lower, layer(upper)]), (e: unknown) => e instanceof SymlinkParentError && e.code === 'ONDINE_ERR_SYMLINK_PARENT');
  }
  // The same trick inside one layer.
  await assert.rejects(apply([layer([{ name: 'l', type: '2', linkname: '/etc' }, f('l/shadow', 's')])]), SymlinkParentError);
  assert.deepEqual(readdirSync(outside), []);
  await assert.rejects(apply([layer([f('file', 'x'), f('file/under', 'y')])]), LayerEntryError);
});

test('malicious names: escapes are rejected, absolute names made relative with a warning', async () => {
  const sentinel = join(dir, 'sentinel');
  mkdirSync(sentinel);
  const before = statSync(sentinel).mtimeMs;
  for (const name of ['../evil', 'a/../../evil', `../${sentinel.slice(1)}/pwned`, './../x']) {
    await assert.rejects(apply([layer([f(name, 'evil')])]), (e: unknown) => e instanceof UnsafePathError && e.code === 'ONDINE_ERR_UNSAFE_PATH' && e.entry === name, name);
  }
  await assert.rejects(apply([layer([f('etc/x', 'x'), { name: 'link', type: '1', linkname: '../../etc/passwd' }])]), UnsafePathError);
  const nul = layer([f('placeholder', 'x', { pax: [['path', 'a\0b']] })]);
  await assert.rejects(apply([nul]), UnsafePathError);

  const warnings: TarWarning[] = [];
  const { root } = await apply([layer([f('/abs/path', 'abs'), f('./dot//slash/', 'dot'), f('a/../b', 'lexical')])], { onWarning: (w) => warnings.push(w) });
  assert.equal(text(root, 'abs/path'), 'abs');
  assert.equal(text(root, 'dot/slash'), 'dot');
  assert.equal(text(root, 'b'), 'lexical');
  assert.deepEqual(warnings.map((w) => [w.code, w.entry]), [['TAR_ABSOLUTE_PATH', '/abs/path']]);
  assert.deepEqual(readdirSync(sentinel), []);
  assert.equal(statSync(sentinel).mtimeMs, before);
});

test('root entry sets root metadata; a non-directory cannot replace the root', async () => {
  const { root } = await apply([layer([d('.', { mode: 0o700, uid: 1 }), f('x', 'x')])]);
  assert.deepEqual([root.mode, root.uid], [0o700, 1]);
  await assert.rejects(apply([layer([f('./', 'x', { type: '0' })])]), LayerEntryError);
  await assert.rejects(apply([layer([wh('.wh.')])]), LayerEntryError);
});

test('corrupt layers fail with the layer file, entry and offset named', async () => {
  const good = layer([f('a', 'a')]);
  const bad = join(dir, 'bad.tar');
  writeFileSync(bad, Buffer.concat([entryBytes({ name: 'b', data: 'b', checksumDelta: 3 }), Buffer.alloc(1024)]));
  await assert.rejects(apply([good, bad]), (e: unknown) => e instanceof TarChecksumError && e.source === bad && e.offset === 0);
  const truncated = join(dir, 'trunc.tar');
  writeFileSync(truncated, tarball([f('big', 'x'.repeat(5000))]).subarray(0, 2048));
  await assert.rejects(apply([good, truncated]), (e: unknown) => e instanceof TarTruncatedError && e.entry === 'big');
});

test('progress reports entries and bytes per layer; sink failures abort and release the file', async () => {
  const big = layer([f('one', 'x'.repeat(3 << 20)), f('two', 'y'), wh('.wh.zzz')]);
  const events: LayerProgress[] = [];
  await apply([layer([f('zzz', 'z')]), big], { onProgress: (p) => events.push(p) });
  const last = events[events.length - 1]!;
  assert.deepEqual([last.layerIndex, last.layerCount, last.entries, last.dataBytes, last.done], [1, 2, 3, (3 << 20) + 1, true]);
  assert.equal(last.compressedBytesRead, last.compressedSize);
  assert.ok(events.filter((e) => e.layerIndex === 1 && !e.done).length >= 4, 'progress during the large file');

  const fds = (await readdir('/proc/self/fd')).length;
  await assert.rejects(applyLayers([big], () => new MemorySink({ failOnFile: 0 })), /refusing file #0/);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await readdir('/proc/self/fd')).length, fds, 'layer file closed after a failure');
});

test('a slow sink sees whole, ordered data (backpressure, no read-ahead loss)', async () => {
  const data = Buffer.alloc(4 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const p = join(dir, 'slow.tar.gz');
  writeFileSync(p, execFileSync('gzip', ['-c'], { input: tarball([{ name: 'blob', data }]), maxBuffer: 64 << 20 }));
  const sink = new MemorySink({ delayMs: 5 });
  const root = await applyLayers<MemoryContent>([p], () => sink);
  assert.ok(readContent(asMemory(lookup(root, 'blob')!.content)).equals(data));
  assert.ok(sink.files[0]!.segments.every((s) => s.data.length <= 1 << 20));
});

test('symlink targets and odd bytes in names survive unchanged', async () => {
  const raw = Buffer.from([0x6e, 0xff, 0x6d]); // not UTF-8
  const src = join(dir, 'names-src');
  mkdirSync(src);
  symlinkSync('../../../../etc/passwd', join(src, 'up'));
  writeFileSync(Buffer.concat([Buffer.from(`${src}/`), raw]), 'odd');
  gnuTar(src, ['--format=gnu', '-cf', join(dir, 'names.tar'), '.']);
  const { root } = await apply([join(dir, 'names.tar')]);
  assert.equal(lookup(root, 'up')!.target, '../../../../etc/passwd');
  const names = [...lookup(root, '')!.children!.keys()];
  assert.ok(names.includes('n\udcffm'), names.join(','));
});

test('applyLayer reports what one layer held', async () => {
  const root = newDir<MemoryContent>();
  const gz = join(dir, 'stats.tgz');
  writeFileSync(gz, execFileSync('gzip', ['-c'], { input: tarball([d('x'), f('x/a', 'aa'), wh('x/.wh.b'), { name: 'x/l', type: '2', linkname: 'a' }]) }));
  const stats = await applyLayer(root, gz, new MemorySink());
  assert.deepEqual(stats, { source: gz, compression: 'gzip', entries: 4, files: 1, dataBytes: 2, whiteouts: 1 });
});

test('a Mac-made layer: xattrs outside the Linux namespaces are skipped with a warning, symlinks get 0777', async () => {
  const quarantine = Buffer.from('0081;5f000000;Safari;').toString('base64');
  const warnings: TarWarning[] = [];
  const { root } = await apply([layer([
    { name: 'app/', type: '5', mode: 0o755 },
    {
      name: 'app/readme.txt', data: 'hello', mode: 0o644,
      pax: [
        ['LIBARCHIVE.xattr.com.apple.quarantine', quarantine],
        ['SCHILY.xattr.com.apple.FinderInfo', Buffer.alloc(32)],
        ['LIBARCHIVE.xattr.user.kept', Buffer.from('yes').toString('base64')],
      ],
    },
    { name: 'app/link', type: '2', linkname: 'readme.txt', mode: 0o755 },
  ])], { onWarning: (w) => warnings.push(w) });
  assert.equal(text(root, 'app/readme.txt'), 'hello');
  const file = lookup(root, 'app/readme.txt')!;
  assert.deepEqual([...file.xattrs.keys()], ['user.kept']);
  const skipped = warnings.filter((w) => w.code === 'TAR_XATTR_SKIPPED');
  assert.equal(skipped.length, 2, JSON.stringify(warnings));
  assert.ok(skipped.some((w) => /com\.apple\.quarantine.*LIBARCHIVE\.xattr/.test(w.message)), skipped[0]?.message);
  assert.ok(skipped.every((w) => w.entry === 'app/readme.txt'));
  const link = lookup(root, 'app/link')!;
  assert.equal(link.kind, 'symlink');
  assert.equal(link.mode, 0o777);
});
