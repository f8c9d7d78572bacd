// Compact (32-byte) and extended (64-byte) EROFS inodes, xattr area sizing and rdev encoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeInode, encodeInode, fitsCompact, xattrSize, xattrIcountFor, inodeSize, encodeRdev, decodeRdev,
  COMPACT_INODE_SIZE, EXTENDED_INODE_SIZE, XATTR_IBODY_HEADER_SIZE, type Inode,
} from '../../src/format/inode.js';
import { DataLayout } from '../../src/format/constants.js';
import { assertOndine, rd16, rd32, dv, wr16, wr64, CORRUPT, INVALID } from './support.js';

function compact(over: Partial<Inode> = {}): Inode {
  return {
    extended: false, layout: DataLayout.FlatInline, xattrIcount: 0xffff, mode: 0o100755, nlink: 0xffff,
    size: 0xffffffff, iu: 0xfffffffe, ino: 0xffffffff, uid: 0xffff, gid: 0xfffe, mtime: 0, mtimeNsec: 0, ...over,
  };
}
function extended(over: Partial<Inode> = {}): Inode {
  return {
    extended: true, layout: DataLayout.ChunkBased, xattrIcount: 5, mode: 0o100644, nlink: 0xffffffff,
    size: 5 * 2 ** 32 + 17, iu: 0x28, ino: 0xfffffff0, uid: 0xffffffff, gid: 100000, mtime: -86400 * 365, mtimeNsec: 999_999_999, ...over,
  };
}

test('sizes: compact 32, extended 64, xattr ibody header 12', () => {
  assert.equal(COMPACT_INODE_SIZE, 32);
  assert.equal(EXTENDED_INODE_SIZE, 64);
  assert.equal(XATTR_IBODY_HEADER_SIZE, 12);
  assert.equal(inodeSize(false), 32);
  assert.equal(inodeSize(true), 64);
});

test('compact inode fields at their erofs_fs.h offsets (u32 / u16 maxima)', () => {
  const buf = Buffer.alloc(96, 0xab);
  encodeInode(buf, 32, compact());
  const b = buf.subarray(32, 64);
  assert.equal(rd16(b, 0), DataLayout.FlatInline << 1, 'i_format: version bit 0, layout in bits 1-3');
  assert.equal(rd16(b, 2), 0xffff);
  assert.equal(rd16(b, 4), 0o100755);
  assert.equal(rd16(b, 6), 0xffff);
  assert.equal(rd32(b, 8), 0xffffffff);
  assert.equal(rd32(b, 12), 0, 'i_reserved');
  assert.equal(rd32(b, 16), 0xfffffffe);
  assert.equal(rd32(b, 20), 0xffffffff);
  assert.equal(rd16(b, 24), 0xffff);
  assert.equal(rd16(b, 26), 0xfffe);
  assert.equal(rd32(b, 28), 0, 'i_reserved2');
  assert.ok(buf.subarray(0, 32).every((x) => x === 0xab) && buf.subarray(64).every((x) => x === 0xab), 'neighbours untouched');
});

test('extended inode fields at their offsets: 64-bit size > 4 GiB, signed 64-bit mtime', () => {
  const buf = Buffer.alloc(64);
  encodeInode(buf, 0, extended());
  assert.equal(rd16(buf, 0), 1 | (DataLayout.ChunkBased << 1));
  assert.equal(rd16(buf, 2), 5);
  assert.equal(rd16(buf, 4), 0o100644);
  assert.equal(rd16(buf, 6), 0, 'i_reserved');
  assert.equal(dv(buf).getBigUint64(8, true), BigInt(5 * 2 ** 32 + 17));
  assert.equal(rd32(buf, 16), 0x28);
  assert.equal(rd32(buf, 20), 0xfffffff0);
  assert.equal(rd32(buf, 24), 0xffffffff);
  assert.equal(rd32(buf, 28), 100000);
  assert.equal(dv(buf).getBigInt64(32, true), BigInt(-86400 * 365));
  assert.equal(dv(buf).getBigUint64(32, true), 2n ** 64n - BigInt(86400 * 365), 'two\'s complement on disk');
  assert.equal(rd32(buf, 40), 999_999_999);
  assert.equal(rd32(buf, 44), 0xffffffff);
  assert.ok(buf.subarray(48).every((x) => x === 0), 'i_reserved2[16]');
});

test('round trips for every layout, both forms', () => {
  const buf = Buffer.alloc(128);
  for (const layout of [DataLayout.FlatPlain, DataLayout.CompressedFull, DataLayout.FlatInline, DataLayout.CompressedCompact, DataLayout.ChunkBased]) {
    for (const i of [compact({ layout }), extended({ layout }), extended({ layout, mtime: 2 ** 40, size: Number.MAX_SAFE_INTEGER })]) {
      encodeInode(buf, 64, i);
      assert.deepEqual(decodeInode(buf, 64), i);
    }
  }
  // A compact inode decodes with mtime 0: the bootstrap substitutes the superblock's build time.
  encodeInode(buf, 0, compact({ mtime: 0 }));
  assert.equal(decodeInode(buf, 0).mtime, 0);
});

test('encode refuses values that do not fit the chosen form', () => {
  const buf = Buffer.alloc(64);
  assertOndine(() => encodeInode(buf, 0, compact({ size: 2 ** 32 })), INVALID, { message: /i_size/ });
  assertOndine(() => encodeInode(buf, 0, compact({ uid: 0x10000 })), INVALID, { message: /i_uid/ });
  assertOndine(() => encodeInode(buf, 0, compact({ gid: 0x10000 })), INVALID, { message: /i_gid/ });
  assertOndine(() => encodeInode(buf, 0, compact({ nlink: 0x10000 })), INVALID, { message: /i_nlink/ });
  assertOndine(() => encodeInode(buf, 0, compact({ mode: 0x10000 })), INVALID);
  assertOndine(() => encodeInode(buf, 0, extended({ size: 2 ** 53 })), INVALID);
  assertOndine(() => encodeInode(buf, 0, extended({ mtime: 1.5 })), INVALID);
  assertOndine(() => encodeInode(buf, 0, extended({ uid: 2 ** 32 })), INVALID);
  assertOndine(() => encodeInode(buf, 0, extended({ layout: 8 as DataLayout })), INVALID);
});

test('decode refuses unknown i_format bits, unknown layouts and truncation', () => {
  const buf = Buffer.alloc(64);
  encodeInode(buf, 0, extended());
  for (const [format, msg] of [[0x20, /i_format/], [0x8000, /i_format/], [5 << 1, /data layout 5/], [(7 << 1) | 1, /data layout 7/]] as const) {
    const b = Buffer.from(buf);
    wr16(b, 0, format);
    assertOndine(() => decodeInode(b, 0, 4096), CORRUPT, { structure: 'EROFS inode', offset: 4096, message: msg });
  }
  assertOndine(() => decodeInode(buf.subarray(0, 63), 0), CORRUPT, { offset: 0 });
  assertOndine(() => decodeInode(buf.subarray(0, 63), 0, 12288), CORRUPT, { offset: 12288 }); // base names the absolute offset
  assertOndine(() => decodeInode(buf.subarray(0, 1), 0), CORRUPT);
  const b = Buffer.from(buf);
  wr64(b, 8, 1n << 60n);
  assertOndine(() => decodeInode(b, 0, 8192), CORRUPT, { offset: 8192 + 8 });
  // A compact inode needs only 32 bytes.
  const c = Buffer.alloc(32);
  encodeInode(c, 0, compact());
  assert.equal(decodeInode(c, 0).size, 0xffffffff);
});

test('fitsCompact', () => {
  const base = { ...compact({ size: 10, nlink: 1, uid: 0, gid: 0, mtime: 1000, mtimeNsec: 5 }) };
  assert.equal(fitsCompact(base, 1000, 5), true);
  assert.equal(fitsCompact({ ...base, size: 2 ** 32 }, 1000, 5), false);
  assert.equal(fitsCompact({ ...base, uid: 0x10000 }, 1000, 5), false);
  assert.equal(fitsCompact({ ...base, gid: 0x10000 }, 1000, 5), false);
  assert.equal(fitsCompact({ ...base, nlink: 0x10000 }, 1000, 5), false);
  assert.equal(fitsCompact(base, 1001, 5), false);
  assert.equal(fitsCompact(base, 1000, 6), false);
});

test('xattr area size from i_xattr_icount and back', () => {
  assert.equal(xattrSize(0), 0);
  assert.equal(xattrSize(1), 12);
  assert.equal(xattrSize(2), 16);
  assert.equal(xattrSize(0xffff), 12 + 0xfffe * 4);
  for (const n of [0, 1, 2, 77, 0xffff]) assert.equal(xattrIcountFor(xattrSize(n)), n);
  assertOndine(() => xattrIcountFor(8), INVALID);
  assertOndine(() => xattrIcountFor(14), INVALID);
  assertOndine(() => xattrIcountFor(12 + 0xffff * 4), INVALID);
});

test('rdev matches Linux new_encode_dev / new_decode_dev', () => {
  const cases: Array<[number, number, number]> = [
    [8, 1, 0x801],
    [1, 3, 0x103],
    [259, 300, 0x11032c],
    [0, 0, 0],
    [0xfff, 0xff, 0xfffff],
    [0xfff, 0xfffff, 0xffffffff],
    [4, 0x12345, 0x12300445],
  ];
  for (const [major, minor, dev] of cases) {
    assert.equal(encodeRdev(major, minor), dev, `${major}:${minor}`);
    assert.deepEqual(decodeRdev(dev), { major, minor });
  }
});
