// RAFS v6 chunk table in the bootstrap (80 bytes per chunk): digest and location of every
// chunk the image references. The kernel ignores it; verification and chunk dicts use it.
import { need, view, u64, setU64, hex, U64_SAFE_HI } from './bytes.js';

export const CHUNK_TABLE_ENTRY_SIZE = 80;
const S = 'RAFS chunk table entry';

export interface ChunkTableEntry {
  digest: string;
  blobIndex: number;
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  compressedOffset: number;
  uncompressedOffset: number;
  fileOffset: number;
  /** Index into the blob's chunk-info table. */
  index: number;
  crc32: number;
}

export function encodeChunkTableEntry(buf: Uint8Array, at: number, c: ChunkTableEntry): void {
  const b = buf.subarray(at, at + CHUNK_TABLE_ENTRY_SIZE);
  b.fill(0);
  const dv = view(b);
  b.set(Buffer.from(c.digest, 'hex').subarray(0, 32), 0);
  dv.setUint32(32, c.blobIndex, true);
  dv.setUint32(36, c.flags, true);
  dv.setUint32(40, c.compressedSize, true);
  dv.setUint32(44, c.uncompressedSize, true);
  setU64(dv, 48, c.compressedOffset);
  setU64(dv, 56, c.uncompressedOffset);
  setU64(dv, 64, c.fileOffset);
  dv.setUint32(72, c.index, true);
  dv.setUint32(76, c.crc32, true);
}

export function decodeChunkTableEntry(buf: Uint8Array, at: number): ChunkTableEntry {
  need(buf, at, CHUNK_TABLE_ENTRY_SIZE, S);
  const b = buf.subarray(at, at + CHUNK_TABLE_ENTRY_SIZE);
  const dv = view(b);
  return {
    digest: hex(b.subarray(0, 32)),
    blobIndex: dv.getUint32(32, true),
    flags: dv.getUint32(36, true),
    compressedSize: dv.getUint32(40, true),
    uncompressedSize: dv.getUint32(44, true),
    compressedOffset: u64(dv, 48, S, at),
    uncompressedOffset: u64(dv, 56, S, at),
    fileOffset: u64(dv, 64, S, at),
    index: dv.getUint32(72, true),
    crc32: dv.getUint32(76, true),
  };
}

/**
 * A chunk table as it lies in the bootstrap: fields are read from the bytes when asked, so a
 * bootstrap of many chunks costs no object per chunk (a mount reads the entries of a blob only
 * when that blob's chunk map is built). `check()` refuses what decodeChunkTableEntry would.
 */
export class ChunkTable {
  static readonly EMPTY = new ChunkTable(new Uint8Array(0), 0, 0);

  private readonly dv: DataView;

  /** `count` entries from `offset` of `buf` (checked to fit). */
  constructor(readonly buf: Uint8Array, readonly offset: number, readonly count: number) {
    need(buf, offset, count * CHUNK_TABLE_ENTRY_SIZE, 'RAFS chunk table');
    this.dv = view(buf);
  }

  /** A table of these entries (encoded as a bootstrap holds them). */
  static fromEntries(entries: readonly ChunkTableEntry[]): ChunkTable {
    const buf = new Uint8Array(entries.length * CHUNK_TABLE_ENTRY_SIZE);
    entries.forEach((e, i) => encodeChunkTableEntry(buf, i * CHUNK_TABLE_ENTRY_SIZE, e));
    return new ChunkTable(buf, 0, entries.length);
  }

  /** Where entry i starts in `buf`. */
  at(i: number): number {
    return this.offset + i * CHUNK_TABLE_ENTRY_SIZE;
  }

  /** Throws the CorruptError decodeChunkTableEntry would for the first entry it would refuse. */
  check(): void {
    for (let i = 0; i < this.count; i++) {
      const at = this.at(i);
      if (this.dv.getUint32(at + 52, true) > U64_SAFE_HI || this.dv.getUint32(at + 60, true) > U64_SAFE_HI || this.dv.getUint32(at + 68, true) > U64_SAFE_HI) {
        decodeChunkTableEntry(this.buf, at);
      }
    }
  }

  entry(i: number): ChunkTableEntry {
    return decodeChunkTableEntry(this.buf, this.at(i));
  }

  entries(): ChunkTableEntry[] {
    const out: ChunkTableEntry[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.entry(i));
    return out;
  }

  /** Positions of the entries of blob `blobIndex`, in table order (one pass over the bytes). */
  positionsOf(blobIndex: number): number[] {
    const out: number[] = [];
    const { dv, count } = this;
    for (let i = 0, at = this.offset + 32; i < count; i++, at += CHUNK_TABLE_ENTRY_SIZE) {
      if (dv.getUint32(at, true) === blobIndex) out.push(i);
    }
    return out;
  }

  blobIndex(i: number): number {
    return this.dv.getUint32(this.at(i) + 32, true);
  }

  flags(i: number): number {
    return this.dv.getUint32(this.at(i) + 36, true);
  }

  compressedSize(i: number): number {
    return this.dv.getUint32(this.at(i) + 40, true);
  }

  uncompressedSize(i: number): number {
    return this.dv.getUint32(this.at(i) + 44, true);
  }

  /** The u64 fields: checked by check(), and again here (a table not checked still never lies). */
  compressedOffset(i: number): number {
    return u64(this.dv, this.at(i) + 48, S);
  }

  uncompressedOffset(i: number): number {
    return u64(this.dv, this.at(i) + 56, S);
  }

  /** Index into the blob's chunk-info table. */
  ciIndex(i: number): number {
    return this.dv.getUint32(this.at(i) + 72, true);
  }

  /** The digest's 32 bytes, a view into the table (no copy). */
  digestBytes(i: number): Uint8Array {
    const at = this.at(i);
    return this.buf.subarray(at, at + 32);
  }
}
