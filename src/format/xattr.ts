// Inline xattrs: a 12-byte ibody header, shared-xattr ids, then 4-byte aligned entries whose
// names are stored as a prefix index plus suffix.
import { CorruptError, InvalidArgumentError } from '../errors.js';
import { need, view, alignUp } from './bytes.js';
import { XATTR_IBODY_HEADER_SIZE } from './inode.js';

const S = 'EROFS inline xattrs';
export const XATTR_ENTRY_HEADER_SIZE = 4;

/** Name prefixes by index (EROFS_XATTR_INDEX_*); index 2/3 are whole names (the POSIX ACLs). */
const PREFIXES: ReadonlyArray<readonly [number, string]> = [
  [2, 'system.posix_acl_access'],
  [3, 'system.posix_acl_default'],
  [1, 'user.'],
  [4, 'trusted.'],
  [6, 'security.'],
];

/** Whether a name is one Linux (and so EROFS) can hold: user., trusted., security., POSIX ACLs. */
export function isStorableXattrName(name: string): boolean {
  return PREFIXES.some(([index, prefix]) => (index === 2 || index === 3 ? name === prefix : name.startsWith(prefix) && name.length > prefix.length));
}

export function splitXattrName(name: string): { index: number; suffix: Buffer } {
  for (const [index, prefix] of PREFIXES) {
    if (index === 2 || index === 3) {
      if (name === prefix) return { index, suffix: Buffer.alloc(0) };
    } else if (name.startsWith(prefix) && name.length > prefix.length) {
      return { index, suffix: Buffer.from(name.slice(prefix.length), 'utf8') };
    }
  }
  throw new InvalidArgumentError(`xattr name "${name}" has no EROFS prefix (user., trusted., security., system.posix_acl_*)`);
}

export function joinXattrName(index: number, suffix: Uint8Array, at: number): string {
  const p = PREFIXES.find(([i]) => i === index);
  if (!p) throw new CorruptError(S, at, `unknown xattr name index ${index}`);
  return (index === 2 || index === 3) ? p[1] : p[1] + Buffer.from(suffix).toString('utf8');
}

/** Bytes the inline area needs (0 when there are no xattrs); always a multiple of 4. */
export function inlineXattrSize(xattrs: ReadonlyMap<string, Uint8Array>): number {
  if (xattrs.size === 0) return 0;
  let size = XATTR_IBODY_HEADER_SIZE;
  for (const [name, value] of xattrs) {
    const { suffix } = splitXattrName(name);
    if (suffix.length > 255) throw new InvalidArgumentError(`xattr name "${name}" too long`);
    if (value.length > 0xffff) throw new InvalidArgumentError(`xattr "${name}" value too large`);
    size += alignUp(XATTR_ENTRY_HEADER_SIZE + suffix.length + value.length, 4);
  }
  return size;
}

export function encodeInlineXattrs(xattrs: ReadonlyMap<string, Uint8Array>): Buffer {
  const out = Buffer.alloc(inlineXattrSize(xattrs));
  if (out.length === 0) return out;
  // h_name_filter stays 0 ("may be present"): correct whether or not a kernel uses the filter.
  let at = XATTR_IBODY_HEADER_SIZE;
  const names = [...xattrs.keys()].sort();
  for (const name of names) {
    const value = xattrs.get(name)!;
    const { index, suffix } = splitXattrName(name);
    out[at] = suffix.length;
    out[at + 1] = index;
    out.writeUInt16LE(value.length, at + 2);
    suffix.copy(out, at + 4);
    out.set(value, at + 4 + suffix.length);
    at += alignUp(XATTR_ENTRY_HEADER_SIZE + suffix.length + value.length, 4);
  }
  return out;
}

export interface DecodedXattrs {
  sharedIds: number[];
  entries: Map<string, Buffer>;
}

/** Decodes an inline xattr area of `size` bytes at `at`; `base` makes offsets absolute. */
export function decodeInlineXattrs(buf: Uint8Array, at: number, size: number, base = 0): DecodedXattrs {
  const result: DecodedXattrs = { sharedIds: [], entries: new Map() };
  if (size === 0) return result;
  need(buf, at, size, S, base);
  const dv = view(buf.subarray(at, at + size));
  const sharedCount = dv.getUint8(4);
  let p = XATTR_IBODY_HEADER_SIZE;
  if (p + sharedCount * 4 > size) throw new CorruptError(S, base + at + 4, `${sharedCount} shared xattrs overflow the area`);
  for (let i = 0; i < sharedCount; i++, p += 4) result.sharedIds.push(dv.getUint32(p, true));
  while (p < size) {
    if (p + XATTR_ENTRY_HEADER_SIZE > size) throw new CorruptError(S, base + at + p, 'truncated entry header');
    const nameLen = dv.getUint8(p);
    const index = dv.getUint8(p + 1);
    const valueSize = dv.getUint16(p + 2, true);
    const end = p + XATTR_ENTRY_HEADER_SIZE + nameLen + valueSize;
    if (end > size) throw new CorruptError(S, base + at + p, `entry of ${end - p} bytes overflows the area`);
    const suffix = buf.subarray(at + p + 4, at + p + 4 + nameLen);
    const name = joinXattrName(index, suffix, base + at + p);
    result.entries.set(name, Buffer.from(buf.subarray(at + p + 4 + nameLen, at + end)));
    p = alignUp(end, 4);
  }
  return result;
}
