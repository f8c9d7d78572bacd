// Bounds-checked little-endian access shared by every decoder, so that a short or hostile
// buffer always ends in a CorruptError naming the structure and offset, never a RangeError.
import { CorruptError, InvalidArgumentError } from '../errors.js';

/** `base` is the absolute offset of `buf[0]`, so the error names where the structure really is. */
export function need(buf: Uint8Array, offset: number, length: number, structure: string, base = 0): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + length > buf.length) {
    throw new CorruptError(structure, base + offset, `needs ${length} bytes but only ${Math.max(0, buf.length - offset)} are available`);
  }
}

export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** u64 as a Number; values beyond 2^53 cannot be offsets or sizes of anything real. */
export function u64(dv: DataView, at: number, structure: string, base = 0): number {
  // Two 32-bit halves, not getBigUint64: a BigInt per field made decoding a large table slow.
  const hi = dv.getUint32(at + 4, true);
  if (hi > U64_SAFE_HI) {
    throw new CorruptError(structure, base + at, `64-bit field ${dv.getBigUint64(at, true)} is out of range`);
  }
  return hi * 0x1_0000_0000 + dv.getUint32(at, true);
}

/** The largest high half of a u64 that is still a safe integer (2^53 - 1 has 0x1fffff there). */
export const U64_SAFE_HI = 0x1f_ffff;

export function setU64(dv: DataView, at: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`u64 field value ${value} is not a non-negative integer`);
  dv.setBigUint64(at, BigInt(value), true);
}

export function checkUint(value: number, bits: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new InvalidArgumentError(`${field} = ${value} does not fit in ${bits} bits`);
  }
  return value;
}

/** Fixed-size, NUL-padded ASCII field (blob ids, volume names). */
export function readFixedString(buf: Uint8Array, at: number, length: number): string {
  let end = at;
  while (end < at + length && buf[end] !== 0) end++;
  return Buffer.from(buf.buffer, buf.byteOffset + at, end - at).toString('latin1');
}

export function writeFixedString(buf: Uint8Array, at: number, length: number, value: string, field: string): void {
  const bytes = Buffer.from(value, 'latin1');
  if (bytes.length > length) throw new InvalidArgumentError(`${field} "${value}" is longer than ${length} bytes`);
  buf.fill(0, at, at + length);
  buf.set(bytes, at);
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function isAllZero(buf: Uint8Array, start = 0, end = buf.length): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

export function alignUp(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}
