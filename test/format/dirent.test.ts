// EROFS directory blocks: 12-byte dirents {nid u64, nameoff u16, file_type u8, reserved u8}
// at the front, names packed after them, the last block trimmed to its used length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packDirectory, directorySize, encodeDirBlock, decodeDirBlock, compareNames, DIRENT_SIZE, type DirEntry } from '../../src/format/dirent.js';
import { FileType } from '../../src/format/constants.js';
import { assertOndine, mulberry32, rd16, rd64, wr16, wr64, CORRUPT, INVALID } from './support.js';

const ent = (name: string, nid: number, fileType = FileType.Regular): DirEntry => ({ name: Buffer.from(name), nid, fileType });

function sortedEntries(n: number, seed: number): DirEntry[] {
  const rnd = mulberry32(seed);
  const names = new Set<string>(['.', '..']);
  while (names.size < n) {
    const len = 1 + Math.floor(rnd() * 60);
    names.add(Array.from({ length: len }, () => String.fromCharCode(0x21 + Math.floor(rnd() * 94)).replace('/', '_')).join(''));
  }
  return [...names].map((s) => Buffer.from(s)).sort(compareNames)
    .map((name, i) => ({ name, nid: i * 2 + 1 + (i % 3) * 2 ** 40, fileType: (i % 7) + 1 }));
}

test('dirent size is 12 and fields sit at nid @0, nameoff @8, file_type @10, reserved @11', () => {
  assert.equal(DIRENT_SIZE, 12);
  const b = encodeDirBlock([ent('a', 2 ** 45 + 3, FileType.Directory), ent('bcd', 7, FileType.Symlink)], 4096, 28);
  assert.equal(b.length, 28);
  assert.equal(rd64(b, 0), BigInt(2 ** 45 + 3));
  assert.equal(rd16(b, 8), 24);
  assert.equal(b[10], FileType.Directory);
  assert.equal(b[11], 0);
  assert.equal(rd64(b, 12), 7n);
  assert.equal(rd16(b, 20), 25);
  assert.equal(b[22], FileType.Symlink);
  assert.equal(b[23], 0);
  assert.equal(b.subarray(24).toString(), 'abcd');
});

test('entries split across blocks; directorySize equals packed lengths; round trip', () => {
  for (const [n, seed] of [[2, 1], [100, 2], [700, 3], [2000, 4]] as const) {
    const entries = sortedEntries(n, seed);
    const blocks = packDirectory(entries, 4096);
    const total = blocks.reduce((s, b) => s + b.length, 0);
    assert.equal(directorySize(entries.map((e) => e.name.length), 4096), total, `n=${n}`);
    blocks.slice(0, -1).forEach((b) => assert.equal(b.length, 4096, 'inner blocks are whole'));
    assert.ok(blocks.at(-1)!.length <= 4096);
    if (n >= 700) assert.ok(blocks.length > 1, 'large directories span blocks');
    const decoded = blocks.flatMap((b, i) => decodeDirBlock(b, b.length, i * 4096));
    assert.deepEqual(decoded, entries);
  }
});

test('block boundary: entries exactly filling a block, then one more', () => {
  // 12 + 4 bytes per entry: 256 entries fill 4096 exactly.
  const names = Array.from({ length: 257 }, (_, i) => `n${i.toString(16).padStart(3, '0')}`);
  const entries = names.map((s, i) => ent(s, i));
  const fit = packDirectory(entries.slice(0, 256), 4096);
  assert.equal(fit.length, 1);
  assert.equal(fit[0]!.length, 4096);
  assert.equal(directorySize(names.slice(0, 256).map((s) => s.length), 4096), 4096);
  const over = packDirectory(entries, 4096);
  assert.equal(over.length, 2);
  assert.equal(over[1]!.length, 16);
  assert.equal(directorySize(names.map((s) => s.length), 4096), 4096 + 16);
  assert.deepEqual(decodeDirBlock(over[1]!, 16, 4096), [entries[256]]);
});

test('decodeDirBlock of the last, trimmed block reads names up to the used length', () => {
  const entries = [ent('.', 1, FileType.Directory), ent('..', 1, FileType.Directory), ent('zz', 9)];
  const [block] = packDirectory(entries, 4096);
  assert.equal(block!.length, 3 * 12 + 1 + 2 + 2);
  assert.deepEqual(decodeDirBlock(block!, block!.length), entries);
});

test('a NUL-padded last name ends at the first NUL (inner blocks carry zero padding)', () => {
  const entries = [ent('alpha', 5), ent('omega', 6)];
  const full = encodeDirBlock(entries, 4096); // whole block: 4096 - 34 bytes of zeros after "omega"
  assert.equal(full.length, 4096);
  assert.deepEqual(decodeDirBlock(full, 4096), entries);
  // The pad need not be at the end of the block: a NUL right after the name ends it too.
  const padded = Buffer.concat([encodeDirBlock(entries, 4096, 34), Buffer.from([0, 0x41, 0x41])]);
  assert.deepEqual(decodeDirBlock(padded, padded.length).map((e) => e.name.toString()), ['alpha', 'omega']);
});

test('names that do not fit a block are refused by pack, size and encode', () => {
  const huge = ent('x'.repeat(4085), 1);
  assertOndine(() => packDirectory([huge], 4096), INVALID);
  assertOndine(() => directorySize([4085], 4096), INVALID);
  assert.equal(packDirectory([ent('x'.repeat(4084), 1)], 4096)[0]!.length, 4096);
  assertOndine(() => encodeDirBlock([ent('abcdef', 1)], 4096, 15), INVALID);
});

test('corrupt blocks: bad first nameoff, out-of-range and empty names, unknown type, huge nid', () => {
  const good = encodeDirBlock([ent('aa', 1), ent('bb', 2), ent('cc', 3)], 4096, 42);
  const mutate = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); f(b); return b; };
  assertOndine(() => decodeDirBlock(good, 11, 8192), CORRUPT, { structure: 'EROFS directory block', offset: 8192 });
  assertOndine(() => decodeDirBlock(good, 43), CORRUPT);
  for (const first of [0, 11, 13, 48]) {
    assertOndine(() => decodeDirBlock(mutate((b) => wr16(b, 8, first)), 42, 8192), CORRUPT, { offset: 8192 + 8, message: /first name offset/ });
  }
  assertOndine(() => decodeDirBlock(mutate((b) => wr16(b, 20, 41)), 42, 100), CORRUPT, { offset: 100 + 12 + 8, message: /out of range/ });
  assertOndine(() => decodeDirBlock(mutate((b) => wr16(b, 20, 10)), 42, 100), CORRUPT, { offset: 100 + 8, message: /out of range/ });
  assertOndine(() => decodeDirBlock(mutate((b) => wr16(b, 20, 36)), 42), CORRUPT, { message: /empty name/ });
  assertOndine(() => decodeDirBlock(mutate((b) => { b[40] = 0; b[41] = 0; }), 42), CORRUPT, { message: /empty name/ });
  assertOndine(() => decodeDirBlock(mutate((b) => { b[22] = 8; }), 42, 0), CORRUPT, { offset: 22, message: /file type 8/ });
  assertOndine(() => decodeDirBlock(mutate((b) => wr64(b, 12, 1n << 55n)), 42, 0), CORRUPT, { offset: 12 });
});

test('a last entry whose nameoff lies beyond the block is corrupt (the entry before it ends there)', () => {
  const good = encodeDirBlock([ent('aa', 1), ent('bb', 2)], 4096, 28);
  for (const nameoff of [29, 200, 0xffff]) {
    const b = Buffer.from(good);
    wr16(b, 20, nameoff);
    assertOndine(() => decodeDirBlock(b, 28, 4096), CORRUPT, { structure: 'EROFS directory block', offset: 4096 + 8 });
    // Also when the block is a view in the middle of a larger buffer.
    const big = Buffer.alloc(100);
    b.copy(big, 10);
    assertOndine(() => decodeDirBlock(big.subarray(10, 38), 28), CORRUPT);
  }
});
