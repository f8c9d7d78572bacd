// The EROFS superblock (128 bytes at byte 1024) and its crc32c checksum over the rest of block 0.
import { CorruptError, UnsupportedError } from '../errors.js';
import { need, view, u64, setU64, hex } from './bytes.js';
import { crc32cUpdate } from './crc32c.js';
import { BLOCK_SIZE, COMPAT_SB_CHKSUM, EROFS_MAGIC, SUPERBLOCK_OFFSET } from './constants.js';

export const SUPERBLOCK_SIZE = 128;
const S = 'EROFS superblock';

export interface Superblock {
  checksum: number;
  featureCompat: number;
  blkszbits: number;
  sbExtslots: number;
  rootNid: number;
  inos: number;
  buildTime: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
  uuid: Uint8Array;
  volumeName: string;
  featureIncompat: number;
  availableComprAlgs: number;
  extraDevices: number;
  devtSlotoff: number;
}

/** RAFS v4/v5 (Nydus's older, FUSE-only format) start with this magic at byte 0. */
export const RAFS_V5_MAGIC = 0x52414653;

/**
 * Refuses a RAFS v4/v5 bootstrap by name: it has no EROFS superblock at all, so the generic
 * bad-magic message would only confuse someone holding a Nydus image of the older format.
 */
function refuseRafsV5(block0: Uint8Array): void {
  if (block0.length < 8) return;
  const dv = view(block0);
  if (dv.getUint32(0, true) !== RAFS_V5_MAGIC) return;
  const version = dv.getUint32(4, true);
  const name = version === 0x400 ? 'RAFS v4' : 'RAFS v5';
  throw new UnsupportedError(name, `${name} is not supported: this is a Nydus bootstrap of the older FUSE-only format (version 0x${version.toString(16)}); ` +
    'Ondine serves RAFS v6 (EROFS) images: rebuild it with `nydus-image create --fs-version 6`, or convert the original image with `ondine convert`');
}

export function decodeSuperblock(block0: Uint8Array): Superblock {
  refuseRafsV5(block0);
  need(block0, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, S);
  const sb = block0.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE);
  const dv = view(sb);
  const magic = dv.getUint32(0, true);
  if (magic !== EROFS_MAGIC) {
    throw new CorruptError(S, SUPERBLOCK_OFFSET, `bad magic 0x${magic.toString(16)} (want 0x${EROFS_MAGIC.toString(16)}); not an EROFS image`);
  }
  const blkszbits = dv.getUint8(12);
  if (blkszbits < 9 || blkszbits > 16) throw new CorruptError(S, SUPERBLOCK_OFFSET + 12, `block size bits ${blkszbits} out of range`);
  let end = 64;
  while (end < 80 && sb[end] !== 0) end++;
  return {
    checksum: dv.getUint32(4, true),
    featureCompat: dv.getUint32(8, true),
    blkszbits,
    sbExtslots: dv.getUint8(13),
    rootNid: dv.getUint16(14, true),
    inos: u64(dv, 16, S, SUPERBLOCK_OFFSET),
    buildTime: u64(dv, 24, S, SUPERBLOCK_OFFSET),
    buildTimeNsec: dv.getUint32(32, true),
    blocks: dv.getUint32(36, true),
    metaBlkaddr: dv.getUint32(40, true),
    xattrBlkaddr: dv.getUint32(44, true),
    uuid: Uint8Array.from(sb.subarray(48, 64)),
    volumeName: Buffer.from(sb.subarray(64, end)).toString('latin1'),
    featureIncompat: dv.getUint32(80, true),
    availableComprAlgs: dv.getUint16(84, true),
    extraDevices: dv.getUint16(86, true),
    devtSlotoff: dv.getUint16(88, true),
  };
}

/** Writes the superblock into block 0 (at 1024); call sealSuperblock after everything else in block 0. */
export function encodeSuperblock(block0: Uint8Array, sb: Superblock): void {
  if (block0.length < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) throw new RangeError('block 0 too small');
  const b = block0.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE);
  b.fill(0);
  const dv = view(b);
  dv.setUint32(0, EROFS_MAGIC, true);
  dv.setUint32(4, sb.checksum, true);
  dv.setUint32(8, sb.featureCompat, true);
  dv.setUint8(12, sb.blkszbits);
  dv.setUint8(13, sb.sbExtslots);
  dv.setUint16(14, sb.rootNid, true);
  setU64(dv, 16, sb.inos);
  setU64(dv, 24, sb.buildTime);
  dv.setUint32(32, sb.buildTimeNsec, true);
  dv.setUint32(36, sb.blocks, true);
  dv.setUint32(40, sb.metaBlkaddr, true);
  dv.setUint32(44, sb.xattrBlkaddr, true);
  b.set(sb.uuid.subarray(0, 16), 48);
  b.set(Buffer.from(sb.volumeName, 'latin1').subarray(0, 16), 64);
  dv.setUint32(80, sb.featureIncompat, true);
  dv.setUint16(84, sb.availableComprAlgs, true);
  dv.setUint16(86, sb.extraDevices, true);
  dv.setUint16(88, sb.devtSlotoff, true);
}

/** The kernel's checksum: crc32c seeded with ~0, no final xor, over block 0 from 1024 with the field zeroed. */
export function superblockChecksum(block0: Uint8Array, blockSize = BLOCK_SIZE): number {
  need(block0, 0, blockSize, S);
  const copy = Uint8Array.from(block0.subarray(SUPERBLOCK_OFFSET, blockSize));
  copy.fill(0, 4, 8);
  return crc32cUpdate(0xffffffff, copy);
}

/** Computes and stores the checksum (sets the compat bit); everything else in block 0 must be final. */
export function sealSuperblock(block0: Uint8Array): void {
  const dv = view(block0);
  const compat = dv.getUint32(SUPERBLOCK_OFFSET + 8, true) | COMPAT_SB_CHKSUM;
  dv.setUint32(SUPERBLOCK_OFFSET + 8, compat, true);
  dv.setUint32(SUPERBLOCK_OFFSET + 4, superblockChecksum(block0), true);
}

export function verifySuperblockChecksum(block0: Uint8Array, sb: Superblock): void {
  if (!(sb.featureCompat & COMPAT_SB_CHKSUM)) return;
  const blockSize = 1 << sb.blkszbits;
  const actual = superblockChecksum(block0, blockSize);
  if (actual !== sb.checksum) {
    throw new CorruptError(S, SUPERBLOCK_OFFSET + 4, `checksum mismatch (stored 0x${sb.checksum.toString(16)}, computed 0x${actual.toString(16)})`);
  }
}

export function requireBlockSize(sb: Superblock, want: number): void {
  if (1 << sb.blkszbits !== want) throw new UnsupportedError(`block size ${1 << sb.blkszbits} (only ${want} is supported)`);
}

export function uuidString(sb: Superblock): string {
  return hex(sb.uuid);
}
