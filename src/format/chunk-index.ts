// 8-byte chunk indexes of chunk-based inodes. The kernel reads {advise, device_id, blkaddr} and
// masks device_id; RAFS v6 hides a 24-bit index into the blob's chunk-info table in the bits the
// kernel ignores (low 16 in the first u16, bits 16-23 in the high byte of device_id).
import { InvalidArgumentError } from '../errors.js';
import { need, view, checkUint } from './bytes.js';
import { NULL_ADDR } from './constants.js';

export const CHUNK_INDEX_SIZE = 8;

export interface ChunkIndex {
  /** 0 = the bootstrap itself; i >= 1 = extra device i = data blob i-1. */
  deviceId: number;
  /** Block address in the device (uncompressed blob offset / block size); NULL_ADDR for a hole. */
  blkaddr: number;
  /** RAFS: index into that blob's chunk-info table. */
  blobCiIndex: number;
}

export function encodeChunkIndex(buf: Uint8Array, at: number, c: ChunkIndex): void {
  const dv = view(buf.subarray(at, at + CHUNK_INDEX_SIZE));
  checkUint(c.deviceId, 8, 'chunk index device id');
  checkUint(c.blobCiIndex, 24, 'chunk index blob ci index');
  dv.setUint16(0, c.blobCiIndex & 0xffff, true);
  dv.setUint16(2, ((c.blobCiIndex >>> 8) & 0xff00) | c.deviceId, true);
  dv.setUint32(4, checkUint(c.blkaddr, 32, 'chunk blkaddr'), true);
}

export function decodeChunkIndex(buf: Uint8Array, at: number): ChunkIndex {
  need(buf, at, CHUNK_INDEX_SIZE, 'EROFS chunk index');
  const dv = view(buf.subarray(at, at + CHUNK_INDEX_SIZE));
  const lo = dv.getUint16(0, true);
  const hi = dv.getUint16(2, true);
  return { deviceId: hi & 0xff, blobCiIndex: ((hi & 0xff00) << 8) | lo, blkaddr: dv.getUint32(4, true) };
}

export const HOLE: ChunkIndex = Object.freeze({ deviceId: 0, blkaddr: NULL_ADDR, blobCiIndex: 0 });

export function isHole(c: ChunkIndex): boolean {
  return c.blkaddr === NULL_ADDR;
}

/** chunkbits as stored in i_u.c.format: log2(chunk size) - block bits. */
export function chunkBitsFor(chunkSize: number, blockBits: number): number {
  const bits = Math.log2(chunkSize);
  if (!Number.isInteger(bits) || bits < blockBits || bits - blockBits > 31) {
    throw new InvalidArgumentError(`chunk size ${chunkSize} is not a power of two >= the block size`);
  }
  return bits - blockBits;
}
