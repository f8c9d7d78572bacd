// Inline xattrs: 12-byte ibody header {name_filter u32, shared_count u8 @4, reserved}, shared ids,
// then 4-byte aligned entries {name_len u8, name_index u8, value_size u16, suffix, value}.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  splitXattrName, joinXattrName, inlineXattrSize, encodeInlineXattrs, decodeInlineXattrs, XATTR_ENTRY_HEADER_SIZE,
} from '../../src/format/xattr.js';
import { XATTR_IBODY_HEADER_SIZE, xattrIcountFor } from '../../src/format/inode.js';
import { assertOndine, rd16, wr16, wr32, CORRUPT, INVALID } from './support.js';

test('header sizes: ibody 12, entry 4', () => {
  assert.equal(XATTR_IBODY_HEADER_SIZE, 12);
  assert.equal(XATTR_ENTRY_HEADER_SIZE, 4);
});

test('name prefixes split into EROFS_XATTR_INDEX_* and suffix; POSIX ACLs are whole names', () => {
  const cases: Array<[string, number, string]> = [
    ['user.foo', 1, 'foo'],
    ['user.a.b.c', 1, 'a.b.c'],
    ['system.posix_acl_access', 2, ''],
    ['system.posix_acl_default', 3, ''],
    ['trusted.overlay.opaque', 4, 'overlay.opaque'],
    ['security.capability', 6, 'capability'],
    ['security.selinux', 6, 'selinux'],
    ['user.\u00fc', 1, '\u00fc'],
  ];
  for (const [name, index, suffix] of cases) {
    const s = splitXattrName(name);
    assert.equal(s.index, index, name);
    assert.equal(s.suffix.toString('utf8'), suffix, name);
    assert.equal(joinXattrName(index, s.suffix, 0), name);
  }
  assert.equal(splitXattrName('user.\u00fc').suffix.length, 2, 'suffix is UTF-8 bytes');
  for (const bad of ['user.', 'trusted.', 'security.', 'system.posix_acl_accessx', 'system.foo', 'lustre.x', 'foo', '']) {
    assertOndine(() => splitXattrName(bad), INVALID);
  }
  assertOndine(() => joinXattrName(5, Buffer.from('x'), 777), CORRUPT, { structure: 'EROFS inline xattrs', offset: 777, message: /index 5/ });
  assertOndine(() => joinXattrName(0, Buffer.alloc(0), 0), CORRUPT);
});

test('layout: entries 4-byte aligned, fields at their offsets, size matches inlineXattrSize', () => {
  const cap = Buffer.from(Array.from({ length: 20 }, (_, i) => i + 1));
  const x = new Map<string, Uint8Array>([['user.a', Buffer.from('x')], ['security.capability', cap]]);
  // 12 + align4(4+1+1) + align4(4+10+20) = 12 + 8 + 36
  assert.equal(inlineXattrSize(x), 56);
  const b = encodeInlineXattrs(x);
  assert.equal(b.length, 56);
  assert.equal(b.length % 4, 0);
  assert.deepEqual([...b.subarray(0, 12)], new Array(12).fill(0), 'header: no filter, no shared xattrs');
  // Sorted by full name: security.capability first.
  assert.equal(b[12], 10);
  assert.equal(b[13], 6);
  assert.equal(rd16(b, 14), 20);
  assert.equal(b.subarray(16, 26).toString(), 'capability');
  assert.deepEqual(b.subarray(26, 46), cap);
  assert.deepEqual([...b.subarray(46, 48)], [0, 0], 'alignment pad');
  assert.equal(b[48], 1);
  assert.equal(b[49], 1);
  assert.equal(rd16(b, 50), 1);
  assert.equal(b.subarray(52, 53).toString(), 'a');
  assert.equal(b.subarray(53, 54).toString(), 'x');
  assert.equal(xattrIcountFor(b.length), (56 - 12) / 4 + 1);
});

test('round trip with ACLs, empty values and values making every alignment residue', () => {
  const x = new Map<string, Uint8Array>([
    ['user.z', Buffer.alloc(0)],
    ['system.posix_acl_access', Buffer.from([2, 0, 0, 0, 1, 0, 7, 0])],
    ['system.posix_acl_default', Buffer.from([2, 0, 0, 0])],
    ['trusted.t', Buffer.from('1')],
    ['user.y', Buffer.from('12')],
    ['user.x', Buffer.from('123')],
    ['user.w', Buffer.from('1234')],
    ['user.big', Buffer.alloc(0xffff, 7)],
  ]);
  const b = encodeInlineXattrs(x);
  assert.equal(b.length, inlineXattrSize(x));
  assert.equal(b.length % 4, 0);
  const padded = Buffer.concat([Buffer.alloc(8, 0xff), b, Buffer.alloc(5, 0xff)]);
  const d = decodeInlineXattrs(padded, 8, b.length, 1000);
  assert.deepEqual(d.sharedIds, []);
  assert.deepEqual(d.entries, new Map([...x].map(([k, v]) => [k, Buffer.from(v)])));
  assert.equal(encodeInlineXattrs(new Map()).length, 0);
  assert.deepEqual(decodeInlineXattrs(Buffer.alloc(0), 0, 0).entries.size, 0);
});

test('encode refuses names over 255 bytes and values over 64 KiB', () => {
  assertOndine(() => inlineXattrSize(new Map([['user.' + 'n'.repeat(256), Buffer.alloc(1)]])), INVALID);
  assert.ok(inlineXattrSize(new Map([['user.' + 'n'.repeat(255), Buffer.alloc(1)]])) > 0);
  assertOndine(() => encodeInlineXattrs(new Map([['user.v', Buffer.alloc(0x10000)]])), INVALID);
});

test('shared xattr ids are read after the header', () => {
  const b = Buffer.alloc(12 + 8 + 8);
  b[4] = 2;
  wr32(b, 12, 0x11);
  wr32(b, 16, 0xffffffff);
  b.set([1, 1, 1, 0, 0x6b, 0x76], 20); // user.k = "v"
  const d = decodeInlineXattrs(b, 0, b.length);
  assert.deepEqual(d.sharedIds, [0x11, 0xffffffff]);
  assert.deepEqual([...d.entries], [['user.k', Buffer.from('v')]]);
});

test('corrupt areas: too many shared ids, truncated header, overflowing entry, unknown index, short buffer', () => {
  const good = encodeInlineXattrs(new Map([['user.k', Buffer.from('value')]])); // 12 + 4+1+5 -> 12 + 12
  const mut = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); f(b); return b; };
  assertOndine(() => decodeInlineXattrs(mut((b) => { b[4] = 4; }), 0, 24, 5000), CORRUPT, { structure: 'EROFS inline xattrs', offset: 5004 });
  assertOndine(() => decodeInlineXattrs(Buffer.concat([good, Buffer.alloc(2)]), 0, 26, 0), CORRUPT, { offset: 24, message: /truncated entry header/ });
  assertOndine(() => decodeInlineXattrs(mut((b) => wr16(b, 14, 9)), 0, 24, 0), CORRUPT, { offset: 12, message: /overflows/ });
  assertOndine(() => decodeInlineXattrs(mut((b) => { b[12] = 200; }), 0, 24, 0), CORRUPT, { offset: 12 });
  assertOndine(() => decodeInlineXattrs(mut((b) => { b[13] = 5; }), 0, 24, 0), CORRUPT, { offset: 12, message: /index 5/ });
  assertOndine(() => decodeInlineXattrs(good, 4, 24, 0), CORRUPT, { offset: 4 });
  assertOndine(() => decodeInlineXattrs(good, 4, 24, 12352), CORRUPT, { offset: 12356 });
});
