// Blob TOC entries (128 bytes: flags u32, reserved u32, name[16], sha256[32], compressed offset,
// compressed size, uncompressed size) and the 512-byte ustar headers that follow each section.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeTocEntry, decodeTocEntry, decodeToc, tarHeaderName, tarHeaderSize,
  TOC_ENTRY_SIZE, TAR_HEADER_SIZE, TOC_NAME_BLOB, TOC_NAME_META, TOC_NAME_DIGEST, TOC_NAME_TOC, TOC_NAME_BOOTSTRAP, type TocEntry,
} from '../../src/format/toc.js';
import { assertOndine, rd32, rd64, wr64, CORRUPT, INVALID } from './support.js';

const sample: TocEntry = {
  flags: 2,
  name: 'blob.meta.header',
  uncompressedDigest: '1a4559316dbcfca5ff8cd1f005172a429a9e9f6b885bfda6a43cf4098a4f8db1',
  compressedOffset: 2 ** 35 + 8346,
  compressedSize: 4096,
  uncompressedSize: 2 ** 40,
};

/** A ustar header written field by field, GNU style magic as Nydus's tar writer emits. */
function ustar(name: string, size: number | Buffer, gnu = true): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'latin1');
  h.write('0000644\0', 100);
  if (Buffer.isBuffer(size)) size.copy(h, 124);
  else h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write(gnu ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  return h;
}

test('sizes and section names', () => {
  assert.equal(TOC_ENTRY_SIZE, 128);
  assert.equal(TAR_HEADER_SIZE, 512);
  assert.deepEqual([TOC_NAME_BLOB, TOC_NAME_META, TOC_NAME_DIGEST, TOC_NAME_TOC, TOC_NAME_BOOTSTRAP],
    ['image.blob', 'blob.meta', 'blob.digest', 'rafs.blob.toc', 'image.boot']);
});

test('entry fields at flags @0, reserved @4, name @8, digest @24, offsets/sizes @56/@64/@72', () => {
  const buf = Buffer.alloc(384, 0x31);
  encodeTocEntry(buf, 128, sample);
  const e = buf.subarray(128, 256);
  assert.equal(rd32(e, 0), 2);
  assert.equal(rd32(e, 4), 0);
  assert.equal(e.subarray(8, 24).toString('latin1'), 'blob.meta.header', 'a 16-char name fills the field, no NUL');
  assert.equal(e.subarray(24, 56).toString('hex'), sample.uncompressedDigest);
  assert.equal(rd64(e, 56), BigInt(2 ** 35 + 8346));
  assert.equal(rd64(e, 64), 4096n);
  assert.equal(rd64(e, 72), BigInt(2 ** 40));
  assert.ok(e.subarray(80).every((x) => x === 0));
  assert.ok(buf.subarray(0, 128).every((x) => x === 0x31) && buf.subarray(256).every((x) => x === 0x31));
});

test('round trip; names over 16 bytes refused; truncation and huge u64s corrupt', () => {
  const buf = Buffer.alloc(128);
  encodeTocEntry(buf, 0, sample);
  assert.deepEqual(decodeTocEntry(buf, 0), sample);
  encodeTocEntry(buf, 0, { ...sample, name: 'image.blob' });
  assert.equal(decodeTocEntry(buf, 0).name, 'image.blob');
  assertOndine(() => encodeTocEntry(buf, 0, { ...sample, name: 'x'.repeat(17) }), INVALID);
  assertOndine(() => decodeTocEntry(buf.subarray(0, 127), 0, 500), CORRUPT, { structure: 'blob TOC entry', offset: 500 });
  wr64(buf, 64, 1n << 63n);
  assertOndine(() => decodeTocEntry(buf, 0, 500), CORRUPT, { offset: 564 });
});

test('decodeToc: list of entries, all-zero slots skipped, length must be a multiple of 128', () => {
  const buf = Buffer.alloc(512);
  const names = ['image.blob', 'blob.meta', 'blob.digest'];
  names.forEach((name, i) => encodeTocEntry(buf, i * 128, { ...sample, name, compressedOffset: i * 1000 }));
  const toc = decodeToc(buf, 10_000);
  assert.deepEqual(toc.map((e) => e.name), names);
  assert.deepEqual(toc.map((e) => e.compressedOffset), [0, 1000, 2000]);
  assertOndine(() => decodeToc(buf.subarray(0, 500), 10_000), CORRUPT, { offset: 10_000, message: /multiple of 128/ });
  assert.deepEqual(decodeToc(Buffer.alloc(0)), []);
});

test('tar header name and size: GNU and POSIX magic, octal and base-256 sizes', () => {
  assert.equal(tarHeaderName(ustar('image.blob', 7802)), 'image.blob');
  assert.equal(tarHeaderSize(ustar('image.blob', 7802)), 7802);
  assert.equal(tarHeaderName(ustar('rafs.blob.toc', 512, false)), 'rafs.blob.toc');
  assert.equal(tarHeaderName(ustar('n'.repeat(100), 0)), 'n'.repeat(100), 'a 100-byte name fills the field');
  assert.equal(tarHeaderSize(ustar('x', 0)), 0);
  assert.equal(tarHeaderSize(ustar('x', Buffer.from('0000017 '))), 15, 'space terminated');
  assert.equal(tarHeaderSize(ustar('x', Buffer.from('17\0'))), 15);
  const b256 = Buffer.alloc(12);
  b256[0] = 0x80;
  b256.writeUIntBE(2 ** 40 + 3, 6, 6);
  assert.equal(tarHeaderSize(ustar('big', b256)), 2 ** 40 + 3);
});

test('tar header errors: not ustar, bad size, short header', () => {
  const h = ustar('x', 1);
  h[257] = 0x55; // 'U'
  assertOndine(() => tarHeaderName(h, 7802), CORRUPT, { structure: 'TOC tar header', offset: 7802 + 257 });
  assertOndine(() => tarHeaderSize(ustar('x', Buffer.from('12a4')), 100), CORRUPT, { offset: 224, message: /bad size/ });
  assertOndine(() => tarHeaderSize(ustar('x', Buffer.alloc(12)), 100), CORRUPT, { offset: 224 });
  assertOndine(() => tarHeaderName(Buffer.alloc(511), 7802), CORRUPT, { offset: 7802 });
  assertOndine(() => tarHeaderSize(Buffer.alloc(511)), CORRUPT);
});
