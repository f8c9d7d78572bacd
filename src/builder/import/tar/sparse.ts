// GNU sparse files in tar: the four ways a sparse map is stored (old GNU 'S' headers, pax
// formats 0.0, 0.1 and 1.0) reduced to one list of data regions, and the checks that make a
// hostile map harmless (ordered, non-overlapping, inside the file, adding up to the stored
// data). Pure. Holes between regions are never materialised: they become gaps in the
// segments handed to the chunk sink.
import { TarCorruptError, TarUnsupportedError, type EntryContext } from '../errors.js';
import { decimal, type PaxRecord } from './pax.js';
import type { SparseRegion } from './header.js';

export type PaxSparse =
  | { version: '0.0' | '0.1'; regions: SparseRegion[]; realSize: number; name: Buffer | undefined }
  | { version: '1.0'; realSize: number; name: Buffer | undefined };

/** The sparse description carried by pax records, or undefined for an ordinary entry. */
export function paxSparse(attrs: ReadonlyMap<string, Buffer>, local: readonly PaxRecord[], ctx: EntryContext): PaxSparse | undefined {
  const text = (k: string): string | undefined => attrs.get(k)?.toString('latin1');
  const major = text('GNU.sparse.major');
  const minor = text('GNU.sparse.minor');
  const name = attrs.get('GNU.sparse.name');
  if (major !== undefined || minor !== undefined) {
    if (major !== '1' || minor !== '0') throw new TarUnsupportedError(ctx, `GNU sparse format ${major}.${minor}`);
    const real = text('GNU.sparse.realsize') ?? text('GNU.sparse.size');
    if (real === undefined) throw new TarCorruptError(ctx, 'GNU sparse 1.0 entry without GNU.sparse.realsize');
    return { version: '1.0', realSize: decimal(real, 'GNU.sparse.realsize', ctx), name };
  }
  const size = text('GNU.sparse.size') ?? text('GNU.sparse.realsize');
  const map = text('GNU.sparse.map');
  if (map !== undefined) {
    if (size === undefined) throw new TarCorruptError(ctx, 'GNU sparse 0.1 entry without GNU.sparse.size');
    const nums = map === '' ? [] : map.split(',').map((n) => decimal(n, 'GNU.sparse.map', ctx));
    if (nums.length % 2 !== 0) throw new TarCorruptError(ctx, 'GNU.sparse.map has an odd number of values');
    const regions: SparseRegion[] = [];
    for (let i = 0; i < nums.length; i += 2) regions.push({ offset: nums[i]!, length: nums[i + 1]! });
    return { version: '0.1', regions, realSize: decimal(size, 'GNU.sparse.size', ctx), name };
  }
  // 0.0 repeats GNU.sparse.offset / GNU.sparse.numbytes pairs, so it needs the ordered records.
  const offsets = local.filter(([k]) => k === 'GNU.sparse.offset' || k === 'GNU.sparse.numbytes');
  if (offsets.length === 0 && text('GNU.sparse.numblocks') === undefined) return undefined;
  if (size === undefined) throw new TarCorruptError(ctx, 'GNU sparse 0.0 entry without GNU.sparse.size');
  const regions: SparseRegion[] = [];
  for (let i = 0; i < offsets.length; i += 2) {
    const o = offsets[i]!;
    const n = offsets[i + 1];
    if (o[0] !== 'GNU.sparse.offset' || n === undefined || n[0] !== 'GNU.sparse.numbytes') {
      throw new TarCorruptError(ctx, 'GNU sparse 0.0 offset/numbytes records are not paired');
    }
    regions.push({ offset: decimal(o[1].toString('latin1'), o[0], ctx), length: decimal(n[1].toString('latin1'), n[0], ctx) });
  }
  const numblocks = text('GNU.sparse.numblocks');
  if (numblocks !== undefined && decimal(numblocks, 'GNU.sparse.numblocks', ctx) !== regions.length) {
    throw new TarCorruptError(ctx, `GNU.sparse.numblocks=${numblocks} but ${regions.length} regions are listed`);
  }
  return { version: '0.0', regions, realSize: decimal(size, 'GNU.sparse.size', ctx), name };
}

/**
 * Format 1.0 keeps its map at the start of the entry's data: decimal numbers, one per line
 * (count, then offset/length pairs), padded to a block boundary. Returns undefined while
 * `head` (whole blocks read so far) does not yet hold the complete map.
 */
export function parseSparseMap10(head: Buffer, ctx: EntryContext): { regions: SparseRegion[]; mapBytes: number } | undefined {
  const nums: number[] = [];
  let pos = 0;
  let want = -1;
  while (want < 0 || nums.length < want) {
    const nl = head.indexOf(0x0a, pos);
    if (nl === -1) {
      if (head.length - pos > 20) throw new TarCorruptError(ctx, 'GNU sparse 1.0 map: number too long');
      return undefined;
    }
    const n = decimal(head.subarray(pos, nl).toString('latin1'), 'GNU sparse 1.0 map', ctx);
    pos = nl + 1;
    if (want < 0) want = 1 + 2 * n;
    nums.push(n);
  }
  const regions: SparseRegion[] = [];
  for (let i = 1; i < nums.length; i += 2) regions.push({ offset: nums[i]!, length: nums[i + 1]! });
  return { regions, mapBytes: Math.ceil(pos / 512) * 512 };
}

/** Rejects a map that is unordered, overlapping, outside the file, or does not match the data. */
export function checkSparseMap(regions: readonly SparseRegion[], realSize: number, dataBytes: number, ctx: EntryContext): void {
  let end = 0;
  let sum = 0;
  for (const r of regions) {
    if (r.offset < end) throw new TarCorruptError(ctx, `sparse map region at ${r.offset} overlaps or is out of order`);
    if (r.offset + r.length > realSize) throw new TarCorruptError(ctx, `sparse map region ${r.offset}+${r.length} is beyond the file size ${realSize}`);
    end = r.offset + r.length;
    sum += r.length;
  }
  if (sum !== dataBytes) throw new TarCorruptError(ctx, `sparse map describes ${sum} bytes of data but the entry stores ${dataBytes}`);
}
