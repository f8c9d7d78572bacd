// RAFS v6 chunk table in the bootstrap (80 bytes per chunk): digest and location of every
// chunk the image references. The kernel ignores it; verification and chunk dicts use it.
import { need, view, u64, setU64, hex } from './bytes.js';

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
