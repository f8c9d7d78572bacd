// Decoding of one 512-byte tar header block (v7, POSIX ustar, GNU). Pure: bytes in, fields
// out. Numeric fields may be octal text or GNU base-256; names stay raw bytes so that the
// caller decodes them once, consistently, whatever header kind they came from.
import { TarChecksumError, TarCorruptError, type EntryContext } from '../errors.js';

export const BLOCK = 512;

export type HeaderFormat = 'v7' | 'ustar' | 'gnu';

export interface SparseRegion {
  offset: number;
  length: number;
}

export interface TarHeader {
  /** name, with the ustar prefix joined in front when present. */
  path: Buffer;
  linkPath: Buffer;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header in the archive (before padding). */
  size: number;
  mtimeSec: number;
  /** The typeflag character; an old-style regular file's NUL is '\0'. */
  type: string;
  format: HeaderFormat;
  devMajor: number;
  devMinor: number;
  /** Old GNU sparse ('S') only: the map stored in the header, whether more follows, the real size. */
  gnuSparse?: { regions: SparseRegion[]; extended: boolean; realSize: number };
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

export function parseHeader(block: Buffer, ctx: EntryContext): TarHeader {
  if (block.length !== BLOCK) throw new TarCorruptError(ctx, `header block is ${block.length} bytes`);
  verifyChecksum(block, ctx);
  const magic = block.subarray(257, 263).toString('latin1');
  const version = block.subarray(263, 265).toString('latin1');
  const format: HeaderFormat = magic === 'ustar\0' ? 'ustar' : magic === 'ustar ' && version === ' \0' ? 'gnu' : 'v7';
  const name = cString(block, 0, 100);
  let path = name;
  if (format === 'ustar') {
    const prefix = cString(block, 345, 155);
    if (prefix.length > 0) path = Buffer.concat([prefix, Buffer.of(0x2f), name]);
  }
  const typeByte = block[156]!;
  const header: TarHeader = {
    path,
    linkPath: cString(block, 157, 100),
    mode: numeric(block, 100, 8, 'mode', ctx) & 0o7777,
    uid: numeric(block, 108, 8, 'uid', ctx),
    gid: numeric(block, 116, 8, 'gid', ctx),
    size: numeric(block, 124, 12, 'size', ctx),
    mtimeSec: numeric(block, 136, 12, 'mtime', ctx),
    type: typeByte === 0 ? '\0' : String.fromCharCode(typeByte),
    format,
    devMajor: format === 'v7' ? 0 : numeric(block, 329, 8, 'devmajor', ctx),
    devMinor: format === 'v7' ? 0 : numeric(block, 337, 8, 'devminor', ctx),
  };
  if (header.size < 0) throw new TarCorruptError(ctx, `negative size ${header.size}`);
  if (header.type === 'S' && format === 'gnu') {
    header.gnuSparse = {
      regions: sparseEntries(block, 386, 4, ctx),
      extended: block[482] !== 0,
      realSize: numeric(block, 483, 12, 'realsize', ctx),
    };
  }
  return header;
}

/** An old GNU sparse extension block: 21 more map entries and a continuation flag. */
export function parseGnuSparseExtension(block: Buffer, ctx: EntryContext): { regions: SparseRegion[]; extended: boolean } {
  return { regions: sparseEntries(block, 0, 21, ctx), extended: block[504] !== 0 };
}

function sparseEntries(block: Buffer, at: number, count: number, ctx: EntryContext): SparseRegion[] {
  const regions: SparseRegion[] = [];
  for (let i = 0; i < count; i++) {
    const base = at + i * 24;
    // An unused slot is all NUL; the map ends at the first one.
    if (block[base] === 0 && block[base + 12] === 0) break;
    regions.push({ offset: numeric(block, base, 12, 'sparse offset', ctx), length: numeric(block, base + 12, 12, 'sparse numbytes', ctx) });
  }
  return regions;
}

function verifyChecksum(block: Buffer, ctx: EntryContext): void {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  const stored = octal(block, 148, 8);
  if (stored === undefined) throw new TarCorruptError(ctx, 'header checksum field is not octal');
  // Historic writers summed signed chars; both sums are accepted, like every tar reader does.
  if (stored !== unsigned && stored !== signed) throw new TarChecksumError(ctx, stored, unsigned);
}

function cString(block: Buffer, at: number, length: number): Buffer {
  const end = block.indexOf(0, at);
  return Buffer.from(block.subarray(at, end === -1 || end > at + length ? at + length : end));
}

/** Octal text or, when the top bit of the first byte is set, GNU base-256 two's complement. */
export function numeric(block: Uint8Array, at: number, length: number, field: string, ctx: EntryContext): number {
  const first = block[at]!;
  if (first & 0x80) {
    let v = BigInt(first & 0x7f);
    for (let i = 1; i < length; i++) v = (v << 8n) | BigInt(block[at + i]!);
    if (first === 0xff) v -= 1n << BigInt(8 * length - 1); // negative: 0xff.. sign-extends
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new TarCorruptError(ctx, `${field} field ${v} is out of range`);
    }
    return Number(v);
  }
  const v = octal(block, at, length);
  if (v === undefined) {
    const text = Buffer.from(block.subarray(at, at + length)).toString('latin1');
    throw new TarCorruptError(ctx, `${field} field ${JSON.stringify(text)} is not a number`);
  }
  return v;
}

/** Leading spaces, octal digits, then NULs/spaces to the end; an empty field is 0. */
function octal(block: Uint8Array, at: number, length: number): number | undefined {
  let i = at;
  const end = at + length;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) {
    if (block[i] === 0) return 0;
    i++;
  }
  let v = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) return undefined;
    v = v * 8 + (c - 0x30);
  }
  for (; i < end; i++) if (block[i] !== 0 && block[i] !== 0x20) return undefined;
  return v;
}
