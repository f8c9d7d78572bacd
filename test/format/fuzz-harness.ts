// The mutation fuzz's pieces: seeded mutators and the "exercise everything" drivers for a
// bootstrap and for a blob's meta/TOC tail. Used in a worker thread (fuzz-worker.ts) so a hang
// can be detected and stopped, and directly by the regression tests.
import { OndineError } from '../../src/errors.js';
import { parseBootstrap, type Bootstrap, type InodeInfo } from '../../src/format/bootstrap.js';
import { decodeBlobMetaHeader } from '../../src/format/blob-meta-header.js';
import { decodeChunkInfoV1, decodeChunkInfoV2, CHUNK_INFO_V1_SIZE, CHUNK_INFO_V2_SIZE } from '../../src/format/chunk-info.js';
import { decodeToc, tarHeaderName, tarHeaderSize, TAR_HEADER_SIZE } from '../../src/format/toc.js';
import { BLOB_FEATURE_CHUNK_INFO_V2, INODE_SLOT_SIZE, NULL_ADDR } from '../../src/format/constants.js';
import type { BlobTableEntry } from '../../src/format/blob-table.js';
import { mulberry32 } from './support.js';

export type Outcome = 'ok' | 'ondine';

/** Anything but success or a coded OndineError is a decoder bug: rethrow it. */
export function guard(fn: () => unknown): Outcome {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof OndineError && typeof err.code === 'string' && err.code.startsWith('ONDINE_ERR_')) return 'ondine';
    throw err;
  }
}

function exerciseInode(b: Bootstrap, ino: InodeInfo, path?: string): void {
  // Each reader is called whatever the inode's type: the type checks are part of what is tested.
  guard(() => b.readDir(ino));
  guard(() => b.readSymlink(ino));
  guard(() => b.rdev(ino));
  guard(() => b.readFlat(ino));
  guard(() => {
    for (const m of b.chunkMap(ino)) {
      if (m.chunk.blkaddr !== NULL_ADDR && m.chunk.deviceId > 0) b.blobIdOfDevice(m.chunk.deviceId);
    }
  });
  for (const [name, value] of ino.xattrs) {
    if (typeof name !== 'string' || !Buffer.isBuffer(value)) throw new TypeError('xattrs must map names to buffers');
  }
  if (path !== undefined) guard(() => b.lookup(path));
}

export interface BootstrapStats { parsed: boolean; walked: number; walkCompleted: boolean }

/** Parses, walks every inode and calls every reader on each; also decodes every inode slot. */
export function exerciseBootstrap(buf: Uint8Array, opts: { verifyChecksum?: boolean; slots?: boolean } = {}): BootstrapStats {
  const stats: BootstrapStats = { parsed: false, walked: 0, walkCompleted: false };
  let b: Bootstrap;
  try {
    b = parseBootstrap(buf, { verifyChecksum: opts.verifyChecksum ?? true });
  } catch (err) {
    guard(() => { throw err; });
    return stats;
  }
  stats.parsed = true;
  const seen = new Set<number>();
  guard(() => {
    for (const { path, ino } of b.walk()) {
      stats.walked++;
      // Hard links decode identically; lookup() re-reads every directory on the path.
      if (seen.has(ino.nid)) continue;
      seen.add(ino.nid);
      exerciseInode(b, ino, path);
    }
    stats.walkCompleted = true;
  });
  if (opts.slots !== false) {
    // Every 32-byte slot of the root's meta block decoded as an inode: arbitrary bytes as inodes.
    const slotsPerBlock = b.blockSize / INODE_SLOT_SIZE;
    const first = b.sb.rootNid - (b.sb.rootNid % slotsPerBlock);
    for (let nid = first; nid < first + slotsPerBlock; nid++) guard(() => exerciseInode(b, b.inode(nid)));
  }
  return stats;
}

/**
 * Decodes a blob's chunk-info header and table where the blob table says they are, then walks
 * its tar sections from the end and decodes the TOC, as a storage reader would.
 */
export function exerciseBlob(blob: Uint8Array, entry: BlobTableEntry): void {
  guard(() => {
    const h = decodeBlobMetaHeader(blob, entry.ciOffset + entry.ciCompressedSize);
    const v2 = (h.features & BLOB_FEATURE_CHUNK_INFO_V2) !== 0;
    const size = v2 ? CHUNK_INFO_V2_SIZE : CHUNK_INFO_V1_SIZE;
    const table = blob.subarray(h.ciOffset, h.ciOffset + h.ciUncompressedSize);
    for (let i = 0; i < h.ciEntries; i++) {
      if (v2) decodeChunkInfoV2(table, i * size, h.ciOffset);
      else decodeChunkInfoV1(table, i * size, h.ciOffset);
    }
  });
  guard(() => {
    let end = blob.length;
    while (end >= TAR_HEADER_SIZE) {
      const at = end - TAR_HEADER_SIZE;
      const header = blob.subarray(at, end);
      const name = tarHeaderName(header, at);
      const size = tarHeaderSize(header, at);
      if (size > at) break;
      if (name === 'rafs.blob.toc') {
        for (const t of decodeToc(blob.subarray(at - size, at), at - size)) {
          const after = t.compressedOffset + t.compressedSize;
          guard(() => tarHeaderName(blob.subarray(after, after + TAR_HEADER_SIZE), after));
        }
      }
      end = at - size;
    }
  });
}

// ---- mutators ----

export interface Region { start: number; end: number }
export interface Mutated { buf: Buffer; what: string }

const INTERESTING: bigint[] = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fff_ffffn, 0x8000_0000n, 0xffff_ffffn,
  0x1_0000_0000n, 0x1f_ffff_ffff_ffffn, 0x20_0000_0000_0000n, 0xffff_ffff_ffff_ffffn, 0x1000n, 4096n * 1024n];

/** One seeded mutation of `orig`, biased toward `hot` regions. Case i is reproducible from (seed, i). */
export function mutate(orig: Buffer, seed: number, i: number, hot: Region[]): Mutated {
  const rnd = mulberry32((seed ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0);
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = (): number => {
    if (hot.length && rnd() < 0.8) {
      const r = hot[int(hot.length)]!;
      return Math.min(orig.length - 1, r.start + int(Math.max(1, r.end - r.start)));
    }
    return int(orig.length);
  };
  const buf = Buffer.from(orig);
  const kind = orig.length < 8 ? 0 : int(8);
  switch (kind) {
    case 0: {
      const len = rnd() < 0.5 ? pick() : int(orig.length);
      return { buf: buf.subarray(0, len), what: `truncate to ${len}` };
    }
    case 1: {
      const at = pick(); const bit = int(8);
      buf[at]! ^= 1 << bit;
      return { buf, what: `flip bit ${bit} at ${at}` };
    }
    case 2: {
      const n = 2 + int(15);
      const where: string[] = [];
      for (let k = 0; k < n; k++) { const at = pick(); const bit = int(8); buf[at]! ^= 1 << bit; where.push(`${at}.${bit}`); }
      return { buf, what: `flip bits ${where.join(',')}` };
    }
    case 3: case 4: {
      const at = pick(); const len = 1 + int(kind === 3 ? 4 : 16);
      const mode = int(3);
      for (let k = at; k < Math.min(buf.length, at + len); k++) buf[k] = mode === 0 ? 0 : mode === 1 ? 0xff : int(256);
      return { buf, what: `overwrite ${len} bytes at ${at} with ${['0x00', '0xff', 'random'][mode]}` };
    }
    case 5: case 6: {
      // An interesting value into an aligned u16/u32/u64 field: sizes, offsets, nids, counts.
      const width = [2, 4, 8][int(3)]!;
      const at = Math.min(orig.length - width, pick() & ~(width - 1));
      const v = INTERESTING[int(INTERESTING.length)]!;
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      if (width === 2) dv.setUint16(at, Number(v & 0xffffn), true);
      else if (width === 4) dv.setUint32(at, Number(v & 0xffff_ffffn), true);
      else dv.setBigUint64(at, v, true);
      return { buf, what: `u${width * 8} 0x${v.toString(16)} at ${at}` };
    }
    default: {
      // Copy a chunk of the image over another spot (moves plausible structures around).
      const from = pick(); const to = pick(); const len = 1 + int(64);
      orig.copy(buf, to, from, Math.min(orig.length, from + len));
      return { buf, what: `copy ${len} bytes ${from} -> ${to}` };
    }
  }
}
