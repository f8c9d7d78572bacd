import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, openSync, lchownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { importDirectory, deviceNumbers } from '../../../src/builder/import/directory.js';
import { SourceChangedError, SourceIoError } from '../../../src/builder/import/errors.js';
import { lookup, nameToBytes, walk, type ChunkSink, type Segment, type TreeNode } from '../../../src/builder/tree.js';
import { asMemory, MemorySink, readContent, type MemoryContent } from '../../helpers/memory-sink.js';

let base: string;
let root: string;
let server: Server;
let tree: TreeNode<MemoryContent>;
let sink: MemorySink;
const SPARSE_AT = 4.5 * 2 ** 30;
const ODD_NAME = Buffer.from([0x6f, 0x64, 0x64, 0xe9, 0xff]);

const sh = (cmd: string): string => execFileSync('bash', ['-c', cmd], { cwd: root }).toString();

before(async () => {
  base = mkdtempSync(join(tmpdir(), 'ondine-dir-import-'));
  root = join(base, 'root');
  mkdirSync(join(root, 'dir/sub'), { recursive: true });
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'small'), 'small file\n');
  writeFileSync(join(root, 'suid'), '#!/bin/sh\n');
  chmodSync(join(root, 'suid'), 0o4755);
  writeFileSync(join(root, 'sgid'), 'g');
  chmodSync(join(root, 'sgid'), 0o2711);
  mkdirSync(join(root, 'sticky'));
  chmodSync(join(root, 'sticky'), 0o1777);
  chownSync(join(root, 'small'), 1001, 2002);
  linkSync(join(root, 'small'), join(root, 'dir/hard1'));
  linkSync(join(root, 'small'), join(root, 'dir/sub/hard2'));
  symlinkSync('../small', join(root, 'dir/link'));
  lchownSync(join(root, 'dir/link'), 7, 8);
  writeFileSync(Buffer.concat([Buffer.from(`${root}/`), ODD_NAME]), 'odd name');
  sh('mknod chr c 1 3 && mknod blk b 300 70000 && mkfifo fifo');
  sh("setfattr -n user.foo -v bar small && setfattr -n user.bin -v 0x00010200ff small && setcap cap_net_admin+ep suid && setfattr -n trusted.dir -v t dir && setfattr -h -n trusted.sym -v s dir/link");
  sh("touch -d '2001-02-03 04:05:06.987654321 UTC' small && touch -d '1960-01-01 00:00:00.25 UTC' empty && touch -d '2100-01-01 00:00:00 UTC' sgid && touch -h -d '2011-11-11 11:11:11.5 UTC' dir/link");
  sh(`truncate -s 5G sparse && printf 'far away' | dd of=sparse bs=1 seek=${SPARSE_AT} conv=notrunc status=none`);
  const many = join(root, 'many');
  mkdirSync(many);
  // open+close: writeFileSync costs ten times more per empty file, which adds up at 10k.
  for (let i = 0; i < 10_000; i++) {
    if (i % 1000 === 0) writeFileSync(join(many, `f${i}`), `n${i}`);
    else closeSync(openSync(join(many, `f${i}`), 'w'));
  }
  server = createServer();
  await new Promise<void>((resolve) => server.listen(join(root, 'sock'), resolve));
  // One import shared by the read-only checks below: the 10k-entry directory makes it the slow part.
  sink = new MemorySink();
  tree = await importDirectory<MemoryContent>(root, sink);
});

after(async () => {
  await new Promise((r) => server.close(r));
  rmSync(base, { recursive: true, force: true });
});

type Tree = TreeNode<MemoryContent>;

function file(tree: Tree, path: string): { node: Tree; content: MemoryContent } {
  const node = lookup(tree, path);
  assert.ok(node?.kind === 'file', `${path} is a file`);
  return { node, content: asMemory(node.content) };
}

test('every kind and attribute round-trips into the tree', async () => {

  const small = file(tree, 'small');
  assert.equal(readContent(small.content).toString(), 'small file\n');
  assert.deepEqual([small.node.uid, small.node.gid, small.node.mode, small.node.size], [1001, 2002, 0o644, 11]);
  assert.deepEqual([small.node.mtimeSec, small.node.mtimeNsec], [981173106, 987654321]);
  assert.deepEqual(small.node.xattrs.get('user.foo'), Buffer.from('bar'));
  assert.deepEqual(small.node.xattrs.get('user.bin'), Buffer.from([0, 1, 2, 0, 0xff]));
  assert.equal(lookup(tree, 'dir/hard1'), small.node, 'hardlinks are one node');
  assert.equal(lookup(tree, 'dir/sub/hard2'), small.node);

  const empty = file(tree, 'empty');
  assert.deepEqual([empty.node.size, empty.content.segments.length], [0, 0]);
  assert.deepEqual([empty.node.mtimeSec, empty.node.mtimeNsec], [-315619200, 250000000]);
  assert.equal(file(tree, 'sgid').node.mtimeSec, 4102444800);
  assert.equal(file(tree, 'sgid').node.mode, 0o2711);
  const suid = file(tree, 'suid').node;
  assert.equal(suid.mode, 0o4755);
  const cap = execFileSync('getfattr', ['--only-values', '-n', 'security.capability', join(root, 'suid')]);
  assert.deepEqual(suid.xattrs.get('security.capability'), cap);
  assert.equal(lookup(tree, 'sticky')!.mode, 0o1777);
  assert.deepEqual(lookup(tree, 'dir')!.xattrs.get('trusted.dir'), Buffer.from('t'));

  const link = lookup(tree, 'dir/link')!;
  assert.deepEqual([link.kind, link.target, link.size, link.uid, link.gid, link.mtimeSec, link.mtimeNsec], ['symlink', '../small', 8, 7, 8, 1321009871, 500000000]);
  assert.deepEqual(link.xattrs.get('trusted.sym'), Buffer.from('s'));

  const chr = lookup(tree, 'chr')!;
  assert.deepEqual([chr.kind, chr.rdevMajor, chr.rdevMinor], ['chardev', 1, 3]);
  const blk = lookup(tree, 'blk')!;
  assert.deepEqual([blk.kind, blk.rdevMajor, blk.rdevMinor], ['blockdev', 300, 70000]);
  assert.equal(lookup(tree, 'fifo')!.kind, 'fifo');
  assert.equal(lookup(tree, 'sock')!.kind, 'socket');
  for (const p of ['chr', 'blk', 'fifo', 'sock', 'dir/link', 'dir']) assert.equal(lookup(tree, p)!.content, undefined, p);

  const odd = [...tree.children!.keys()].find((k) => nameToBytes(k).equals(ODD_NAME));
  assert.ok(odd, 'a name that is not UTF-8 keeps its bytes');
  assert.equal(readContent(file(tree, odd).content).toString(), 'odd name');

  // Every attribute against lstat, for every path.
  for (const [path, node] of walk(tree)) {
    if (path.startsWith('/many/') && !path.endsWith('00')) continue; // a sample of the 10k is enough
    const st = lstatSync(Buffer.concat([Buffer.from(root), nameToBytes(path === '/' ? '' : path)]), { bigint: true });
    assert.equal(node.mode, Number(st.mode & 0o7777n), path);
    assert.equal(node.uid, Number(st.uid), path);
    assert.equal(node.gid, Number(st.gid), path);
    assert.equal(BigInt(node.mtimeSec) * 1_000_000_000n + BigInt(node.mtimeNsec), st.mtimeNs, path);
    if (node.kind === 'file' || node.kind === 'symlink') assert.equal(node.size, Number(st.size), path);
  }
});

test('a 5 GiB sparse file: holes are never read, data lands at its offset', async () => {
  const sparse = file(tree, 'sparse');
  assert.equal(sparse.node.size, 5 * 2 ** 30);
  assert.ok(sparse.content.bytesReceived <= 1 << 20, `${sparse.content.bytesReceived} bytes read`);
  assert.equal(readContent(sparse.content, SPARSE_AT, 8).toString(), 'far away');
  assert.ok(readContent(sparse.content, 0, 4096).equals(Buffer.alloc(4096)));
  // Everything else in the tree is tiny: the whole import read well under a megabyte.
  assert.ok(sink.bytesReceived < 1 << 20);
});

test('10k-entry directory, sorted; files are stored once each, in walk order', async () => {
  const many = lookup(tree, 'many')!;
  assert.equal(many.children!.size, 10_000);
  assert.equal(readContent(file(tree, 'many/f5000').content).toString(), 'n5000');
  const order: number[] = [];
  const seen = new Set<Tree>();
  for (const [, node] of walk(tree)) {
    if (node.kind !== 'file' || seen.has(node)) continue;
    seen.add(node);
    order.push(asMemory(node.content).id);
  }
  assert.equal(order.length, sink.files.length, 'one storeFile per distinct file');
  assert.deepEqual(order, [...order].sort((a, b) => a - b));
});

test('deviceNumbers decodes the 64-bit Linux dev_t layout', () => {
  assert.deepEqual(deviceNumbers(0x0801n), { rdevMajor: 8, rdevMinor: 1 });
  // major 0x12345, minor 0xabcdef: minor low byte, major 12 bits, minor high bits, major high bits
  const dev = (0x12345n & 0xfffn) << 8n | (0xabcdefn & 0xffn) | ((0xabcdefn & ~0xffn) << 12n) | ((0x12345n & ~0xfffn) << 32n);
  assert.deepEqual(deviceNumbers(dev), { rdevMajor: 0x12345, rdevMinor: 0xabcdef });
});

test('errors name the path: missing root, root not a directory, file shrinking under the reader', async () => {
  const missing = join(base, 'does-not-exist');
  await assert.rejects(importDirectory(missing, new MemorySink()), (e: unknown) => e instanceof SourceIoError && e.code === 'ONDINE_ERR_SOURCE_IO' && e.message.includes(missing));
  await assert.rejects(importDirectory(join(root, 'small'), new MemorySink()), (e: unknown) => e instanceof SourceIoError && /not a directory/.test(e.message));

  const shrinking = join(base, 'shrink');
  mkdirSync(shrinking);
  const victim = join(shrinking, 'victim');
  writeFileSync(victim, Buffer.alloc(64 * 1024, 1));
  const truncatingSink: ChunkSink<number> = {
    async storeFile(_size: number, segments: AsyncIterable<Segment>): Promise<number> {
      let n = 0;
      for await (const s of segments) {
        if (n++ === 0) truncateSync(victim, 5000);
        void s;
      }
      return n;
    },
  };
  await assert.rejects(importDirectory(shrinking, truncatingSink, { readSize: 4096 }), (e: unknown) => e instanceof SourceChangedError && e.message.includes(victim));
});

test('the root argument may be a symlink; symlinks inside are never followed', async () => {
  const real = join(base, 'real');
  mkdirSync(join(real, 'd'), { recursive: true });
  symlinkSync(root, join(real, 'd/out'));
  writeFileSync(join(real, 'f'), 'f');
  const alias = join(base, 'alias');
  symlinkSync(real, alias);
  const t = await importDirectory<MemoryContent>(alias, new MemorySink());
  assert.deepEqual([...walk(t)].map(([p, n]) => `${p}:${n.kind}`), ['/:dir', '/d:dir', '/d/out:symlink', '/f:file']);
  assert.equal(lookup(t, 'd/out')!.target, root);
});
