// Compact (32-byte) and extended (64-byte) EROFS inodes. One decoded shape for both, so
// callers never care which form an image used.
import { CorruptError, InvalidArgumentError } from '../errors.js';
import { need, view, u64, setU64, checkUint } from './bytes.js';
import { DataLayout } from './constants.js';

export const COMPACT_INODE_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;
export const XATTR_IBODY_HEADER_SIZE = 12;
const S = 'EROFS inode';

export interface Inode {
  extended: boolean;
  layout: DataLayout;
  /** Raw i_xattr_icount; xattrSize() converts it. */
  xattrIcount: number;
  mode: number;
  nlink: number;
  size: number;
  /** i_u: raw block address, rdev, or chunk format (in the low 16 bits), depending on mode/layout. */
  iu: number;
  ino: number;
  uid: number;
  gid: number;
  /** Seconds, signed (time64_t). Extended inodes only; compact inodes take the superblock's build time. */
  mtime: number;
  mtimeNsec: number;
}

export function xattrSize(icount: number): number {
  return icount === 0 ? 0 : XATTR_IBODY_HEADER_SIZE + (icount - 1) * 4;
}

export function xattrIcountFor(size: number): number {
  if (size === 0) return 0;
  if (size < XATTR_IBODY_HEADER_SIZE || (size - XATTR_IBODY_HEADER_SIZE) % 4) throw new InvalidArgumentError(`bad xattr area size ${size}`);
  return checkUint((size - XATTR_IBODY_HEADER_SIZE) / 4 + 1, 16, 'i_xattr_icount');
}

export function inodeSize(extended: boolean): number {
  return extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
}

/** `base` is the absolute offset of `buf[0]`, for error messages. */
export function decodeInode(buf: Uint8Array, at: number, base = 0): Inode {
  need(buf, at, 2, S, base);
  const format = buf[at]! | (buf[at + 1]! << 8);
  const extended = (format & 1) === 1;
  const layout = (format >> 1) & 0x7;
  if (format & ~0x1f) throw new CorruptError(S, base + at, `unknown i_format bits 0x${format.toString(16)}`);
  if (layout > DataLayout.ChunkBased) throw new CorruptError(S, base + at, `unknown data layout ${layout}`);
  need(buf, at, inodeSize(extended), S, base);
  const dv = view(buf.subarray(at, at + inodeSize(extended)));
  if (extended) {
    return {
      extended, layout,
      xattrIcount: dv.getUint16(2, true),
      mode: dv.getUint16(4, true),
      size: u64(dv, 8, S, base + at),
      iu: dv.getUint32(16, true),
      ino: dv.getUint32(20, true),
      uid: dv.getUint32(24, true),
      gid: dv.getUint32(28, true),
      mtime: Number(dv.getBigInt64(32, true)),
      mtimeNsec: dv.getUint32(40, true),
      nlink: dv.getUint32(44, true),
    };
  }
  return {
    extended, layout,
    xattrIcount: dv.getUint16(2, true),
    mode: dv.getUint16(4, true),
    nlink: dv.getUint16(6, true),
    size: dv.getUint32(8, true),
    iu: dv.getUint32(16, true),
    ino: dv.getUint32(20, true),
    uid: dv.getUint16(24, true),
    gid: dv.getUint16(26, true),
    mtime: 0,
    mtimeNsec: 0,
  };
}

/** True when the values fit a compact inode (given the image's build time). */
export function fitsCompact(i: Omit<Inode, 'extended'>, buildTime: number, buildTimeNsec: number): boolean {
  return i.uid < 0x10000 && i.gid < 0x10000 && i.nlink < 0x10000 && i.size < 2 ** 32 &&
    i.mtime === buildTime && i.mtimeNsec === buildTimeNsec;
}

export function encodeInode(buf: Uint8Array, at: number, i: Inode): void {
  const size = inodeSize(i.extended);
  if (at < 0 || at + size > buf.length) throw new RangeError('inode does not fit the buffer');
  const b = buf.subarray(at, at + size);
  b.fill(0);
  const dv = view(b);
  checkUint(i.layout, 3, 'data layout');
  dv.setUint16(0, (i.extended ? 1 : 0) | (i.layout << 1), true);
  dv.setUint16(2, checkUint(i.xattrIcount, 16, 'i_xattr_icount'), true);
  dv.setUint16(4, checkUint(i.mode, 16, 'i_mode'), true);
  dv.setUint32(16, checkUint(i.iu, 32, 'i_u'), true);
  dv.setUint32(20, checkUint(i.ino, 32, 'i_ino'), true);
  if (i.extended) {
    setU64(dv, 8, i.size);
    dv.setUint32(24, checkUint(i.uid, 32, 'i_uid'), true);
    dv.setUint32(28, checkUint(i.gid, 32, 'i_gid'), true);
    if (!Number.isSafeInteger(i.mtime)) throw new InvalidArgumentError(`mtime ${i.mtime} is not an integer`);
    dv.setBigInt64(32, BigInt(i.mtime), true);
    dv.setUint32(40, checkUint(i.mtimeNsec, 32, 'i_mtime_nsec'), true);
    dv.setUint32(44, checkUint(i.nlink, 32, 'i_nlink'), true);
  } else {
    dv.setUint16(6, checkUint(i.nlink, 16, 'i_nlink'), true);
    dv.setUint32(8, checkUint(i.size, 32, 'i_size'), true);
    dv.setUint16(24, checkUint(i.uid, 16, 'i_uid'), true);
    dv.setUint16(26, checkUint(i.gid, 16, 'i_gid'), true);
  }
}

/** Linux new_encode_dev, as the kernel stores i_rdev. */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeRdev(rdev: number): { major: number; minor: number } {
  return { major: (rdev & 0xfff00) >>> 8, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}
