// The optional blob TOC: 128-byte entries naming the sections of a Nydus blob, each section
// followed by a 512-byte tar header, so the blob is also a valid tar stream.
import { CorruptError } from '../errors.js';
import { need, view, u64, setU64, readFixedString, writeFixedString, hex } from './bytes.js';

export const TOC_ENTRY_SIZE = 128;
export const TAR_HEADER_SIZE = 512;
const S = 'blob TOC entry';

export const TOC_NAME_BLOB = 'image.blob';
export const TOC_NAME_META = 'blob.meta';
export const TOC_NAME_DIGEST = 'blob.digest';
export const TOC_NAME_TOC = 'rafs.blob.toc';
export const TOC_NAME_BOOTSTRAP = 'image.boot';

export interface TocEntry {
  flags: number;
  name: string;
  uncompressedDigest: string;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
}

export function encodeTocEntry(buf: Uint8Array, at: number, e: TocEntry): void {
  const b = buf.subarray(at, at + TOC_ENTRY_SIZE);
  b.fill(0);
  const dv = view(b);
  dv.setUint32(0, e.flags, true);
  writeFixedString(b, 8, 16, e.name, 'TOC entry name');
  b.set(Buffer.from(e.uncompressedDigest, 'hex').subarray(0, 32), 24);
  setU64(dv, 56, e.compressedOffset);
  setU64(dv, 64, e.compressedSize);
  setU64(dv, 72, e.uncompressedSize);
}

export function decodeTocEntry(buf: Uint8Array, at: number, base = 0): TocEntry {
  need(buf, at, TOC_ENTRY_SIZE, S, base);
  const b = buf.subarray(at, at + TOC_ENTRY_SIZE);
  const dv = view(b);
  return {
    flags: dv.getUint32(0, true),
    name: readFixedString(b, 8, 16),
    uncompressedDigest: hex(b.subarray(24, 56)),
    compressedOffset: u64(dv, 56, S, base + at),
    compressedSize: u64(dv, 64, S, base + at),
    uncompressedSize: u64(dv, 72, S, base + at),
  };
}

export function decodeToc(buf: Uint8Array, base = 0): TocEntry[] {
  if (buf.length % TOC_ENTRY_SIZE) throw new CorruptError(S, base, `TOC of ${buf.length} bytes is not a multiple of ${TOC_ENTRY_SIZE}`);
  const out: TocEntry[] = [];
  for (let at = 0; at < buf.length; at += TOC_ENTRY_SIZE) {
    const e = decodeTocEntry(buf, at, base);
    if (e.name === '' && e.compressedSize === 0) continue;
    out.push(e);
  }
  return out;
}

/** The section name recorded in a 512-byte tar header (ustar name field). */
export function tarHeaderName(header: Uint8Array, base = 0): string {
  need(header, 0, TAR_HEADER_SIZE, 'TOC tar header', base);
  const magic = Buffer.from(header.subarray(257, 262)).toString('latin1');
  if (magic !== 'ustar') throw new CorruptError('TOC tar header', base + 257, 'not a ustar header');
  return readFixedString(header, 0, 100);
}

/** The size recorded in a tar header (octal, or base-256 when the top bit is set). */
export function tarHeaderSize(header: Uint8Array, base = 0): number {
  need(header, 0, TAR_HEADER_SIZE, 'TOC tar header', base);
  const field = header.subarray(124, 136);
  if (field[0]! & 0x80) {
    let v = 0n;
    for (let i = 1; i < 12; i++) v = (v << 8n) | BigInt(field[i]!);
    return Number(v);
  }
  const s = Buffer.from(field).toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(s)) throw new CorruptError('TOC tar header', base + 124, `bad size field "${s}"`);
  return parseInt(s, 8);
}
