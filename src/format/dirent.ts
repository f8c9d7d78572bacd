// EROFS directory blocks: 12-byte dirents at the front of each block, names packed after them,
// sorted by byte order across the whole directory so the kernel can binary-search blocks.
import { CorruptError, InvalidArgumentError } from '../errors.js';
import { view, u64 } from './bytes.js';
import { FileType } from './constants.js';

export const DIRENT_SIZE = 12;
const S = 'EROFS directory block';

export interface DirEntry {
  name: Buffer;
  nid: number;
  fileType: FileType;
}

export function compareNames(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/**
 * Splits sorted entries into directory blocks. Returns the block contents; the last block is
 * trimmed to its used length (the directory's i_size counts only used bytes of the last block).
 */
export function packDirectory(entries: DirEntry[], blockSize: number): Buffer[] {
  const blocks: Buffer[] = [];
  let start = 0;
  while (start < entries.length) {
    let used = 0;
    let end = start;
    while (end < entries.length) {
      const need = DIRENT_SIZE + entries[end]!.name.length;
      if (used + need > blockSize) break;
      used += need;
      end++;
    }
    if (end === start) throw new InvalidArgumentError(`directory entry name of ${entries[start]!.name.length} bytes does not fit a block`);
    blocks.push(encodeDirBlock(entries.slice(start, end), blockSize, end === entries.length ? used : blockSize));
    start = end;
  }
  return blocks;
}

/** Size in bytes of the packed directory without building it (layout needs it before nids exist). */
export function directorySize(nameLengths: number[], blockSize: number): number {
  let total = 0;
  let used = 0;
  for (const len of nameLengths) {
    const need = DIRENT_SIZE + len;
    if (need > blockSize) throw new InvalidArgumentError(`directory entry name of ${len} bytes does not fit a block`);
    if (used + need > blockSize) { total += blockSize; used = 0; }
    used += need;
  }
  return total + used;
}

export function encodeDirBlock(entries: DirEntry[], blockSize: number, length = blockSize): Buffer {
  const out = Buffer.alloc(length);
  const dv = view(out);
  let nameoff = entries.length * DIRENT_SIZE;
  entries.forEach((e, i) => {
    const at = i * DIRENT_SIZE;
    dv.setBigUint64(at, BigInt(e.nid), true);
    dv.setUint16(at + 8, nameoff, true);
    dv.setUint8(at + 10, e.fileType);
    e.name.copy(out, nameoff);
    nameoff += e.name.length;
  });
  if (nameoff > length) throw new InvalidArgumentError('directory block overflow');
  return out;
}

/** Decodes one directory block of `length` used bytes; `base` is its absolute offset. */
export function decodeDirBlock(block: Uint8Array, length: number, base = 0): DirEntry[] {
  if (length < DIRENT_SIZE || length > block.length) throw new CorruptError(S, base, `block length ${length} invalid`);
  const dv = view(block);
  const first = dv.getUint16(8, true);
  if (first < DIRENT_SIZE || first % DIRENT_SIZE || first > length) {
    throw new CorruptError(S, base + 8, `first name offset ${first} invalid`);
  }
  const count = first / DIRENT_SIZE;
  const out: DirEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * DIRENT_SIZE;
    const nameoff = dv.getUint16(at + 8, true);
    let nameEnd = i + 1 < count ? dv.getUint16(at + DIRENT_SIZE + 8, true) : length;
    if (i + 1 === count) {
      // The last name ends at the block's used length or at a NUL pad, as the kernel reads it.
      const nul = Buffer.from(block.buffer, block.byteOffset + nameoff, Math.max(0, nameEnd - nameoff)).indexOf(0);
      if (nul >= 0) nameEnd = nameoff + nul;
    }
    if (nameoff < first || nameEnd < nameoff || nameEnd > length) {
      throw new CorruptError(S, base + at + 8, `name offsets ${nameoff}..${nameEnd} out of range`);
    }
    if (nameEnd === nameoff) throw new CorruptError(S, base + at + 8, 'empty name');
    const fileType = dv.getUint8(at + 10);
    if (fileType > FileType.Symlink) throw new CorruptError(S, base + at + 10, `unknown file type ${fileType}`);
    out.push({
      nid: u64(dv, at, S, base),
      name: Buffer.from(block.subarray(nameoff, nameEnd)),
      fileType,
    });
  }
  return out;
}
