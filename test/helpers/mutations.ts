// Seeded mutations of on-disk images for robustness tests: truncations, bit flips, byte and
// field overwrites and block splices, aimed half the time at a named structure (superblock,
// RAFS tables, metadata) so that they reach past the first check. Mutation `index` of `seed`
// is always the same bytes, so a failure names a mutation anyone can replay.
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { Prng } from './image-fixtures.js';

export interface Region {
  name: string;
  start: number;
  end: number;
}

export interface Mutation {
  data: Buffer;
  desc: string;
  /** Parse with the superblock checksum verified (else skipped, to reach deeper structures). */
  verifyChecksum: boolean;
}

/** The structures of a well-formed bootstrap, as byte ranges. */
export function bootstrapRegions(buf: Buffer): Region[] {
  const b = parseBootstrap(buf);
  const regions: Region[] = [
    { name: 'superblock', start: 1024, end: 1152 },
    { name: 'superblock block', start: 0, end: 4096 },
  ];
  if (b.rafs) {
    regions.push({ name: 'RAFS extended superblock', start: 1152, end: 1408 });
    if (b.rafs.blobTableSize) regions.push({ name: 'blob table', start: b.rafs.blobTableOffset, end: b.rafs.blobTableOffset + b.rafs.blobTableSize });
    if (b.rafs.chunkTableSize) regions.push({ name: 'chunk table', start: b.rafs.chunkTableOffset, end: b.rafs.chunkTableOffset + b.rafs.chunkTableSize });
  }
  if (b.sb.extraDevices) regions.push({ name: 'device table', start: b.sb.devtSlotoff * 128, end: b.sb.devtSlotoff * 128 + b.sb.extraDevices * 128 });
  const meta = b.sb.metaBlkaddr * b.blockSize;
  regions.push({ name: 'metadata', start: meta, end: buf.length });
  // The first inodes (the root and its directory block) are where a walk starts.
  regions.push({ name: 'root inode area', start: b.inodeOffset(b.sb.rootNid), end: Math.min(buf.length, b.inodeOffset(b.sb.rootNid) + 4096) });
  return regions.filter((r) => r.end > r.start);
}

const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

export function mutate(orig: Buffer, regions: readonly Region[], seed: number, index: number): Mutation {
  const prng = new Prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const data = Buffer.from(orig);
  const region = prng.int(10) < 6 ? prng.pick(regions) : { name: 'anywhere', start: 0, end: orig.length };
  const at = () => region.start + prng.int(region.end - region.start);
  const verifyChecksum = prng.int(2) === 0;
  const kind = prng.int(10);
  let desc: string;
  if (kind <= 1) {
    const len = at();
    desc = `truncate to ${len} (in ${region.name})`;
    return { data: data.subarray(0, len), desc, verifyChecksum };
  } else if (kind <= 4) {
    const flips: string[] = [];
    for (let n = 1 + prng.int(4); n > 0; n--) {
      const o = at();
      const bit = prng.int(8);
      data[o]! ^= 1 << bit;
      flips.push(`${o}.${bit}`);
    }
    desc = `flip bits ${flips.join(',')} (in ${region.name})`;
  } else if (kind <= 7) {
    const o = at();
    const n = 1 + prng.int(8);
    const bytes = prng.int(2) ? prng.bytes(n) : Buffer.alloc(n, prng.pick([0x00, 0xff, 0x7f, 0x80]));
    bytes.copy(data, o, 0, Math.min(n, data.length - o));
    desc = `overwrite ${n} bytes at ${o} with ${bytes.toString('hex')} (in ${region.name})`;
  } else if (kind === 8) {
    const o = at() & ~1;
    const v = prng.pick([...INTERESTING_U32, orig.length, orig.length + 1, Math.floor(orig.length / 4096)]);
    if (prng.int(2) && o + 4 <= data.length) data.writeUInt32LE(v >>> 0, o);
    else if (o + 2 <= data.length) data.writeUInt16LE(v & 0xffff, o);
    desc = `write field value ${v} at ${o} (in ${region.name})`;
  } else {
    // Copy a slice over another: duplicated inode headers, dirents pointing back up, ...
    const len = 8 << prng.int(4);
    const from = prng.int(Math.max(1, orig.length - len));
    const to = at();
    orig.copy(data, to, from, Math.min(from + len, orig.length));
    desc = `copy ${len} bytes from ${from} to ${to} (in ${region.name})`;
  }
  return { data, desc, verifyChecksum };
}
