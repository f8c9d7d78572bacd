import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { compareNames, countNodes, lookup, nameFromBytes, nameToBytes, newDir, newNode, walk } from '../../../src/builder/tree.js';

test('names: UTF-8 decodes as text and re-encodes to the same bytes', () => {
  for (const s of ['plain', 'été', '日本語', 'emoji-😀', '']) {
    const b = Buffer.from(s, 'utf8');
    assert.equal(nameFromBytes(b), s);
    assert.deepEqual(nameToBytes(s), b);
  }
});

test('names: bytes that are not UTF-8 round-trip exactly', () => {
  const cases = [Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0xe9, 0x74, 0xe9]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xc3]), Buffer.from([0xf0, 0x9f, 0x98])];
  for (const b of cases) {
    const name = nameFromBytes(b);
    assert.deepEqual(nameToBytes(name), b, `round trip of ${b.toString('hex')}`);
  }
  assert.equal(nameFromBytes(Buffer.from([0x61, 0xff])), 'a\udcff');
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(1 + (i % 17));
    assert.deepEqual(nameToBytes(nameFromBytes(b)), b);
  }
});

test('names: distinct byte strings stay distinct, and order follows the bytes', () => {
  assert.notEqual(nameFromBytes(Buffer.from([0xff])), nameFromBytes(Buffer.from([0xfe])));
  assert.notEqual(nameFromBytes(Buffer.from([0xef, 0xbf, 0xbd])), nameFromBytes(Buffer.from([0xff]))); // U+FFFD is not a stand-in
  const names = ['b', 'a', '😀', '\uffff', 'Z', 'a\udcff'];
  const sorted = [...names].sort(compareNames);
  const bytes = sorted.map(nameToBytes);
  for (let i = 1; i < bytes.length; i++) assert.ok(Buffer.compare(bytes[i - 1]!, bytes[i]!) < 0);
  assert.throws(() => nameToBytes('\ud800'), TypeError);
});

test('walk: pre-order, sorted, root as /; lookup never passes through a symlink', () => {
  const root = newDir();
  const a = newDir();
  const f = newNode('file', { size: 3 });
  root.children!.set('b', f);
  root.children!.set('a', a);
  a.children!.set('x', f); // hardlink
  root.children!.set('l', newNode('symlink', { target: 'a' }));
  assert.deepEqual([...walk(root)].map(([p]) => p), ['/', '/a', '/a/x', '/b', '/l']);
  assert.equal(lookup(root, 'a/x'), f);
  assert.equal(lookup(root, '/a/./x'), f);
  assert.equal(lookup(root, 'l/x'), undefined);
  assert.equal(lookup(root, 'b/x'), undefined);
  assert.equal(lookup(root, ''), root);
  const counts = countNodes(root);
  assert.equal(counts.entries, 5);
  assert.equal(counts.nodes, 4);
  assert.equal(counts.byKind.file, 1);
  assert.equal(counts.fileBytes, 3);
  assert.equal(counts.hardlinked, 1);
  assert.equal(newNode('symlink', { target: 'été' }).size, 5);
});
