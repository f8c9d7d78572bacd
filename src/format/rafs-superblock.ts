// Nydus RAFS v6 extended superblock (256 bytes at 1152): where the blob and chunk tables are.
import { need, view, u64, setU64 } from './bytes.js';
import { RAFS_EXT_SUPERBLOCK_OFFSET } from './constants.js';

export const RAFS_EXT_SUPERBLOCK_SIZE = 256;
const S = 'RAFS v6 extended superblock';

export interface RafsSuperblock {
  flags: number;
  blobTableOffset: number;
  blobTableSize: number;
  chunkSize: number;
  chunkTableOffset: number;
  chunkTableSize: number;
  prefetchTableOffset: number;
  prefetchTableSize: number;
}

export function decodeRafsSuperblock(block0: Uint8Array): RafsSuperblock {
  const at = RAFS_EXT_SUPERBLOCK_OFFSET;
  need(block0, at, RAFS_EXT_SUPERBLOCK_SIZE, S);
  const dv = view(block0.subarray(at, at + RAFS_EXT_SUPERBLOCK_SIZE));
  return {
    flags: u64(dv, 0, S, at),
    blobTableOffset: u64(dv, 8, S, at),
    blobTableSize: dv.getUint32(16, true),
    chunkSize: dv.getUint32(20, true),
    chunkTableOffset: u64(dv, 24, S, at),
    chunkTableSize: u64(dv, 32, S, at),
    prefetchTableOffset: u64(dv, 40, S, at),
    prefetchTableSize: dv.getUint32(48, true),
  };
}

export function encodeRafsSuperblock(block0: Uint8Array, r: RafsSuperblock): void {
  const at = RAFS_EXT_SUPERBLOCK_OFFSET;
  const b = block0.subarray(at, at + RAFS_EXT_SUPERBLOCK_SIZE);
  b.fill(0);
  const dv = view(b);
  setU64(dv, 0, r.flags);
  setU64(dv, 8, r.blobTableOffset);
  dv.setUint32(16, r.blobTableSize, true);
  dv.setUint32(20, r.chunkSize, true);
  setU64(dv, 24, r.chunkTableOffset);
  setU64(dv, 32, r.chunkTableSize);
  setU64(dv, 40, r.prefetchTableOffset);
  dv.setUint32(48, r.prefetchTableSize, true);
}
