// POSIX pax extended headers: record syntax, and the meaning of the keywords the importer uses
// (path, linkpath, size, uid, gid, mtime, xattrs in the SCHILY and LIBARCHIVE spellings, device
// numbers, GNU sparse maps). Pure: bytes in, values out. Values stay bytes until a keyword's
// meaning is known, because xattr values are binary.
import { nameFromBytes } from '../../tree.js';
import { isStorableXattrName } from '../../../format/xattr.js';
import { TarCorruptError, type EntryContext } from '../errors.js';

export type PaxRecord = readonly [key: string, value: Buffer];

/** Records in order of appearance ("<len> <key>=<value>\n"); repeated keys are kept. */
export function parsePaxRecords(data: Buffer, ctx: EntryContext): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    // Writers pad the last block with NULs; tolerate that trailing run only.
    if (data[pos] === 0) {
      for (let i = pos; i < data.length; i++) if (data[i] !== 0) throw new TarCorruptError(ctx, `pax header: NUL inside records at byte ${pos}`);
      break;
    }
    const space = data.indexOf(0x20, pos);
    if (space === -1 || space - pos > 20) throw new TarCorruptError(ctx, `pax header: record at byte ${pos} has no length`);
    const lenText = data.subarray(pos, space).toString('latin1');
    if (!/^[0-9]+$/.test(lenText)) throw new TarCorruptError(ctx, `pax header: record length ${JSON.stringify(lenText)} is not decimal`);
    const len = Number(lenText);
    const end = pos + len;
    if (len <= space - pos + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarCorruptError(ctx, `pax header: record at byte ${pos} with length ${len} is malformed`);
    }
    const eq = data.indexOf(0x3d, space + 1);
    if (eq === -1 || eq >= end - 1 || eq === space + 1) throw new TarCorruptError(ctx, `pax header: record at byte ${pos} has no key`);
    records.push([data.subarray(space + 1, eq).toString('utf8'), Buffer.from(data.subarray(eq + 1, end - 1))]);
    pos = end;
  }
  return records;
}

/**
 * Effective attributes: globals from 'g' headers, overridden by the entry's 'x' records. An
 * empty value in 'x' removes the keyword, as POSIX specifies.
 */
export function mergePax(global: ReadonlyMap<string, Buffer>, local: readonly PaxRecord[]): Map<string, Buffer> {
  const out = new Map(global);
  for (const [k, v] of local) {
    if (v.length === 0) out.delete(k);
    else out.set(k, v);
  }
  return out;
}

export function paxString(attrs: ReadonlyMap<string, Buffer>, key: string): string | undefined {
  const v = attrs.get(key);
  return v === undefined ? undefined : nameFromBytes(v);
}

export function paxInteger(attrs: ReadonlyMap<string, Buffer>, key: string, ctx: EntryContext): number | undefined {
  const v = attrs.get(key);
  if (v === undefined) return undefined;
  return decimal(v.toString('latin1'), key, ctx);
}

export function decimal(text: string, key: string, ctx: EntryContext): number {
  if (!/^[0-9]+$/.test(text)) throw new TarCorruptError(ctx, `pax ${key}=${JSON.stringify(text)} is not a non-negative integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new TarCorruptError(ctx, `pax ${key}=${text} is out of range`);
  return n;
}

/** "<sec>[.<frac>]", possibly negative; the fraction is kept to the nanosecond. */
export function paxTime(attrs: ReadonlyMap<string, Buffer>, key: string, ctx: EntryContext): { sec: number; nsec: number } | undefined {
  const v = attrs.get(key);
  if (v === undefined) return undefined;
  const text = v.toString('latin1');
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(text);
  if (!m) throw new TarCorruptError(ctx, `pax ${key}=${JSON.stringify(text)} is not a time`);
  const whole = Number(m[2]);
  if (!Number.isSafeInteger(whole)) throw new TarCorruptError(ctx, `pax ${key}=${text} is out of range`);
  const nsec = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (m[1] !== '-') return { sec: whole, nsec };
  // -1.25 s is 1.75 s before -1, so it is sec -2, nsec 750000000.
  return nsec === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1e9 - nsec };
}

const SCHILY = 'SCHILY.xattr.';
const LIBARCHIVE = 'LIBARCHIVE.xattr.';

/**
 * Extended attributes from every spelling writers use; later spellings do not override earlier.
 * A name outside the Linux namespaces (macOS's `com.apple.*`, written by libarchive on a Mac)
 * cannot exist on Linux: it is skipped and reported through `onSkip`, as GNU tar does when it
 * extracts such an archive, instead of failing the whole layer.
 */
export function paxXattrs(attrs: ReadonlyMap<string, Buffer>, ctx: EntryContext, onSkip?: (name: string, keyword: string) => void): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  const keep = (name: string, keyword: string): boolean => {
    if (isStorableXattrName(name)) return true;
    onSkip?.(name, keyword);
    return false;
  };
  for (const [k, v] of attrs) {
    if (k.startsWith(SCHILY) && k.length > SCHILY.length && keep(k.slice(SCHILY.length), k)) xattrs.set(k.slice(SCHILY.length), v);
  }
  for (const [k, v] of attrs) {
    if (!k.startsWith(LIBARCHIVE) || k.length === LIBARCHIVE.length) continue;
    let name: string;
    try {
      name = decodeURIComponent(k.slice(LIBARCHIVE.length));
    } catch {
      throw new TarCorruptError(ctx, `pax ${k}: xattr name is not valid percent-encoding`);
    }
    const text = v.toString('latin1');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new TarCorruptError(ctx, `pax ${k}: value is not base64`);
    if (!xattrs.has(name) && keep(name, k)) xattrs.set(name, Buffer.from(text, 'base64'));
  }
  // Red Hat's tar stored SELinux labels under its own keyword before SCHILY.xattr existed.
  const rht = attrs.get('RHT.security.selinux');
  if (rht !== undefined && !xattrs.has('security.selinux')) xattrs.set('security.selinux', rht);
  return xattrs;
}
