// Chunk-info entries inside a blob: v1 (16 bytes) and v2 (24 bytes) pack each chunk's
// compressed and uncompressed extents into u64 bit fields.
import { CorruptError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { need, view } from './bytes.js';

export const CHUNK_INFO_V1_SIZE = 16;
export const CHUNK_INFO_V2_SIZE = 24;
const S1 = 'chunk info v1';
const S2 = 'chunk info v2';

export interface ChunkInfo {
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
}

const MASK40 = (1n << 40n) - 1n;

export function encodeChunkInfoV1(buf: Uint8Array, at: number, c: ChunkInfo): void {
  if (c.uncompressedOffset % 4096) throw new InvalidArgumentError(`uncompressed offset ${c.uncompressedOffset} not 4096-aligned`);
  if (c.uncompressedSize < 1 || c.uncompressedSize > 1 << 24) throw new InvalidArgumentError(`uncompressed size ${c.uncompressedSize} out of range`);
  if (c.compressedSize < 1 || c.compressedSize > 1 << 24) throw new InvalidArgumentError(`compressed size ${c.compressedSize} out of range`);
  if (c.compressed === (c.compressedSize === c.uncompressedSize)) {
    // v1 has no flag: "compressed" is inferred from the sizes, so they must tell the truth.
    throw new InvalidArgumentError('chunk info v1 cannot express a compressed chunk of unchanged size');
  }
  const us = BigInt(c.uncompressedSize - 1);
  const cs = BigInt(c.compressedSize - 1);
  const uoff = BigInt(c.uncompressedOffset);
  const coff = BigInt(c.compressedOffset);
  if (uoff > 0xfff_ffff_f000n || coff > MASK40) throw new InvalidArgumentError('chunk offset out of range for chunk info v1');
  const uncomp = (uoff & 0xfff_ffff_f000n) | ((us & 0xfffffn) << 44n) | ((us >> 20n) << 8n);
  const comp = (coff & MASK40) | ((cs & 0xfffffn) << 44n) | ((cs >> 20n) << 40n);
  const dv = view(buf.subarray(at, at + CHUNK_INFO_V1_SIZE));
  dv.setBigUint64(0, uncomp, true);
  dv.setBigUint64(8, comp, true);
}

export function decodeChunkInfoV1(buf: Uint8Array, at: number, base = 0): ChunkInfo {
  need(buf, at, CHUNK_INFO_V1_SIZE, S1, base);
  return chunkInfoV1At(view(buf), at, base);
}

// The decoders below read each u64 as two u32 halves (lo, hi): a BigInt per field made a
// table of many thousand entries slow to decode. The bit layout is the encoders' above.

/** Entry of a v1 table at `at` of `dv` (bounds checked by the caller). */
export function chunkInfoV1At(dv: DataView, at: number, base = 0): ChunkInfo {
  const uLo = dv.getUint32(at, true);
  const uHi = dv.getUint32(at + 4, true);
  const cLo = dv.getUint32(at + 8, true);
  const cHi = dv.getUint32(at + 12, true);
  if (uLo & 0xff) throw new CorruptError(S1, base + at, 'reserved bits set');
  // Size - 1: low 20 bits at 44..63, high 4 bits at 8..11 (uncompressed) or 40..43 (compressed).
  const uncompressedSize = ((uHi >>> 12) | ((uLo & 0xf00) << 12)) + 1;
  const compressedSize = ((cHi >>> 12) | ((cHi & 0xf00) << 12)) + 1;
  return {
    uncompressedOffset: (uHi & 0xfff) * 0x1_0000_0000 + ((uLo & 0xffff_f000) >>> 0),
    uncompressedSize,
    compressedOffset: (cHi & 0xff) * 0x1_0000_0000 + cLo,
    compressedSize,
    compressed: compressedSize !== uncompressedSize,
  };
}

export const CI_V2_FLAG_COMPRESSED = 0x1;
export const CI_V2_FLAG_ZRAN = 0x2;
export const CI_V2_FLAG_BATCH = 0x4;
export const CI_V2_FLAG_ENCRYPTED = 0x8;

export function encodeChunkInfoV2(buf: Uint8Array, at: number, c: ChunkInfo): void {
  if (c.uncompressedOffset % 4096) throw new InvalidArgumentError(`uncompressed offset ${c.uncompressedOffset} not 4096-aligned`);
  if (c.uncompressedSize < 1 || c.uncompressedSize > 1 << 24) throw new InvalidArgumentError(`uncompressed size ${c.uncompressedSize} out of range`);
  if (c.compressedSize < 0 || c.compressedSize >= 2 ** 24) throw new InvalidArgumentError(`compressed size ${c.compressedSize} out of range`);
  // The fields below are masked: without these checks a large offset would wrap silently.
  if (c.uncompressedOffset < 0 || c.uncompressedOffset / 4096 > 0xffff_ffff || c.compressedOffset < 0 || c.compressedOffset > 2 ** 40 - 1) {
    throw new InvalidArgumentError('chunk offset out of range for chunk info v2');
  }
  const dv = view(buf.subarray(at, at + CHUNK_INFO_V2_SIZE));
  const flags = c.compressed ? BigInt(CI_V2_FLAG_COMPRESSED) : 0n;
  const uncomp = (BigInt(c.uncompressedOffset / 4096) & 0xffff_ffffn) | (BigInt(c.uncompressedSize - 1) << 32n) | (flags << 56n);
  const comp = (BigInt(c.compressedOffset) & MASK40) | (BigInt(c.compressedSize) << 40n);
  dv.setBigUint64(0, uncomp, true);
  dv.setBigUint64(8, comp, true);
  dv.setBigUint64(16, 0n, true);
}

export function decodeChunkInfoV2(buf: Uint8Array, at: number, base = 0): ChunkInfo {
  need(buf, at, CHUNK_INFO_V2_SIZE, S2, base);
  return chunkInfoV2At(view(buf), at, base);
}

/** Entry of a v2 table at `at` of `dv` (bounds checked by the caller). */
export function chunkInfoV2At(dv: DataView, at: number, base = 0): ChunkInfo {
  const uLo = dv.getUint32(at, true);
  const uHi = dv.getUint32(at + 4, true);
  const cLo = dv.getUint32(at + 8, true);
  const cHi = dv.getUint32(at + 12, true);
  const flags = uHi >>> 24;
  if (flags & ~(CI_V2_FLAG_COMPRESSED | CI_V2_FLAG_ZRAN | CI_V2_FLAG_BATCH | CI_V2_FLAG_ENCRYPTED)) {
    throw new CorruptError(S2, base + at, `unknown chunk flags 0x${flags.toString(16)}`);
  }
  // Well-formed Nydus chunks that need a zran/batch context or a cipher: never read them as plain data.
  if (flags & (CI_V2_FLAG_ZRAN | CI_V2_FLAG_BATCH | CI_V2_FLAG_ENCRYPTED)) {
    throw new UnsupportedError(`${S2} at offset ${base + at}: chunk flags 0x${flags.toString(16)} (zran, batch and encrypted chunks)`);
  }
  return {
    uncompressedOffset: uLo * 4096,
    uncompressedSize: (uHi & 0xff_ffff) + 1,
    compressedOffset: (cHi & 0xff) * 0x1_0000_0000 + cLo,
    compressedSize: cHi >>> 8,
    compressed: (flags & CI_V2_FLAG_COMPRESSED) !== 0,
  };
}
