// Streaming tar reader: turns an uncompressed tar byte stream into entries whose file data is
// an AsyncIterable<Segment> read straight from the stream. Handles ustar, GNU (long names and
// links, old sparse) and pax (per-entry and global headers, xattrs, sparse 0.0/0.1/1.0).
// It never buffers a file: an entry's data must be consumed before the next entry is
// requested, and whatever is left unconsumed is skipped. It knows nothing of layers or trees;
// names are decoded with the tree's byte convention but not normalised.
import { nameFromBytes, type Segment } from '../../tree.js';
import { TarCorruptError, TarTruncatedError, TarUnsupportedError, type EntryContext } from '../errors.js';
import { ByteReader } from './byte-reader.js';
import { BLOCK, isZeroBlock, parseGnuSparseExtension, parseHeader, type SparseRegion, type TarHeader } from './header.js';
import { mergePax, paxInteger, paxTime, paxXattrs, parsePaxRecords, type PaxRecord } from './pax.js';
import { checkSparseMap, paxSparse, parseSparseMap10 } from './sparse.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface TarEntry {
  /** Offset of the entry's first header block (pax/long-name headers included). */
  readonly offset: number;
  /** The member name as stored (decoded, not normalised). */
  readonly path: string;
  readonly type: TarEntryType;
  /** Hardlink or symlink target as stored; '' for other types. */
  readonly linkPath: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  /** Logical size of a regular file (the real size when sparse); 0 otherwise. */
  readonly size: number;
  readonly devMajor: number;
  readonly devMinor: number;
  readonly xattrs: Map<string, Buffer>;
  /** Stored as a GNU sparse file: holes are gaps between segments. */
  readonly sparse: boolean;
  /**
   * A regular file's data, at most once and only before the reader advances. Segments are at
   * most `segmentSize` bytes; a short stream fails with TarTruncatedError.
   */
  segments(): AsyncIterable<Segment>;
}

export interface TarWarning {
  code: string;
  message: string;
  source?: string | undefined;
  offset?: number | undefined;
  entry?: string | undefined;
}

export interface TarReadOptions {
  /** Name used in errors and warnings (the layer file). */
  source?: string;
  onWarning?: (w: TarWarning) => void;
  /** Largest segment handed out, default 1 MiB. */
  segmentSize?: number;
}

/** Bound on pax and long-name headers: they are held in memory, and nothing real comes close. */
const MAX_META_BYTES = 16 << 20;
const MAX_SPARSE_MAP_BYTES = 64 << 20;
const DEFAULT_SEGMENT = 1 << 20;

/** Keywords that describe one member and cannot sensibly apply to all of them. */
const GLOBAL_IGNORED = ['path', 'linkpath', 'size', 'GNU.sparse.name', 'GNU.sparse.map', 'GNU.sparse.major', 'GNU.sparse.minor', 'GNU.sparse.realsize', 'GNU.sparse.size', 'GNU.sparse.numblocks'];

const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

interface DataState {
  remaining: number;
  active: boolean;
  taken: boolean;
}

export async function* readTar(input: AsyncIterable<Buffer>, opts: TarReadOptions = {}): AsyncGenerator<TarEntry, void, undefined> {
  const r = new ByteReader(input);
  const source = opts.source;
  const segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT;
  let globals = new Map<string, Buffer>();
  let pendingStart = -1;
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  let local: PaxRecord[] = [];

  const readMeta = async (h: TarHeader, ctx: EntryContext, what: string): Promise<Buffer> => {
    if (h.size > MAX_META_BYTES) throw new TarCorruptError(ctx, `${what} of ${h.size} bytes exceeds the ${MAX_META_BYTES}-byte limit`);
    const data = await r.readExact(h.size);
    if (data.length < h.size) throw new TarTruncatedError(ctx, `inside a ${what}`);
    await skipPadding(h.size, ctx);
    return data;
  };
  const skipPadding = async (size: number, ctx: EntryContext): Promise<void> => {
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if ((await r.skip(pad)) < pad) throw new TarTruncatedError(ctx, 'inside the padding after an entry');
  };

  try {
    for (;;) {
      const at = r.offset;
      const block = await r.readExact(BLOCK);
      const pending = pendingStart >= 0;
      if (block.length === 0) {
        if (pending) throw new TarTruncatedError({ source, offset: pendingStart }, 'extended header is not followed by its entry');
        // Writers that omit the end marker exist, but so do files cut at a block boundary: say so.
        opts.onWarning?.({ code: 'TAR_NO_END_MARKER', source, offset: at, message: 'archive ends without the end-of-archive marker' });
        return;
      }
      if (block.length < BLOCK) throw new TarTruncatedError({ source, offset: at }, 'inside a header block');
      if (isZeroBlock(block)) {
        if (pending) throw new TarCorruptError({ source, offset: pendingStart }, 'extended header is followed by the end-of-archive marker');
        const second = await r.readExact(BLOCK);
        if (second.length > 0 && second.length < BLOCK) throw new TarTruncatedError({ source, offset: at + BLOCK }, 'inside the end-of-archive marker');
        if (second.length === BLOCK && !isZeroBlock(second)) throw new TarCorruptError({ source, offset: at }, 'a single zero block is followed by more headers');
        // Read the record padding to the end so a damaged compressed trailer is still reported.
        while ((await r.skip(1 << 20)) > 0);
        return;
      }
      const start = pending ? pendingStart : at;
      const h = parseHeader(block, { source, offset: at });
      const ctx: EntryContext = { source, offset: start };
      switch (h.type) {
        case 'L':
          longName = cut(await readMeta(h, ctx, 'GNU long name'));
          pendingStart = start;
          continue;
        case 'K':
          longLink = cut(await readMeta(h, ctx, 'GNU long link name'));
          pendingStart = start;
          continue;
        case 'x':
          local = local.concat(parsePaxRecords(await readMeta(h, ctx, 'pax header'), ctx));
          pendingStart = start;
          continue;
        case 'g': {
          const records = parsePaxRecords(await readMeta(h, { source, offset: at }, 'pax global header'), { source, offset: at });
          const ignored = records.filter(([k]) => GLOBAL_IGNORED.includes(k));
          if (ignored.length > 0) {
            opts.onWarning?.({ code: 'TAR_GLOBAL_KEYWORD_IGNORED', source, offset: at, message: `pax global header keywords ignored: ${ignored.map(([k]) => k).join(', ')}` });
          }
          globals = mergePax(globals, records.filter(([k]) => !GLOBAL_IGNORED.includes(k)));
          continue;
        }
        case 'V':
          opts.onWarning?.({ code: 'TAR_VOLUME_LABEL', source, offset: at, message: 'GNU volume label skipped' });
          if ((await r.skip(h.size)) < h.size) throw new TarTruncatedError(ctx, 'inside a volume label');
          await skipPadding(h.size, ctx);
          continue;
      }

      const attrs = mergePax(globals, local);
      const sparseInfo = paxSparse(attrs, local, ctx);
      const pathBytes = sparseInfo?.name ?? attrs.get('path') ?? longName ?? h.path;
      const path = nameFromBytes(pathBytes);
      const ectx: EntryContext = { source, offset: start, entry: path };
      const type = entryType(h, path, ectx);
      const linkBytes = attrs.get('linkpath') ?? longLink ?? h.linkPath;
      const mtime = paxTime(attrs, 'mtime', ectx) ?? { sec: h.mtimeSec, nsec: 0 };
      // Like Go's archive/tar (what containerd and docker unpack with), header-only types carry no
      // data whatever their size field says; GNU dumpdirs ('D') and v7 directories do.
      const dataSize = HEADER_ONLY.has(h.type) ? 0 : (paxInteger(attrs, 'size', ectx) ?? h.size);
      pendingStart = -1;
      longName = longLink = undefined;
      local = [];

      // Where the file's bytes live: map -> regions of the logical file, stored back to back.
      let regions: SparseRegion[] = [];
      let size = 0;
      let stored = dataSize;
      let sparse = false;
      if (type === 'file') {
        if (h.gnuSparse) {
          sparse = true;
          regions = [...h.gnuSparse.regions];
          let extended = h.gnuSparse.extended;
          while (extended) {
            const ext = await r.readExact(BLOCK);
            if (ext.length < BLOCK) throw new TarTruncatedError(ectx, 'inside a GNU sparse extension header');
            const more = parseGnuSparseExtension(ext, ectx);
            regions.push(...more.regions);
            extended = more.extended;
          }
          size = h.gnuSparse.realSize;
        } else if (sparseInfo?.version === '1.0') {
          sparse = true;
          let head = Buffer.alloc(0);
          for (;;) {
            if (head.length >= Math.min(dataSize, MAX_SPARSE_MAP_BYTES)) throw new TarCorruptError(ectx, 'GNU sparse 1.0 map does not end inside the entry');
            const blk = await r.readExact(BLOCK);
            if (blk.length < BLOCK) throw new TarTruncatedError(ectx, 'inside a GNU sparse 1.0 map');
            head = Buffer.concat([head, blk]);
            const parsed = parseSparseMap10(head, ectx);
            if (parsed) {
              regions = parsed.regions;
              stored = dataSize - head.length;
              break;
            }
          }
          size = sparseInfo.realSize;
        } else if (sparseInfo) {
          sparse = true;
          regions = sparseInfo.regions;
          size = sparseInfo.realSize;
        } else {
          regions = dataSize > 0 ? [{ offset: 0, length: dataSize }] : [];
          size = dataSize;
        }
        if (sparse) checkSparseMap(regions, size, stored, ectx);
        if (!Number.isSafeInteger(size)) throw new TarCorruptError(ectx, `file size ${size} is out of range`);
      }

      const state: DataState = { remaining: stored, active: true, taken: false };
      const entry: TarEntry = {
        offset: start,
        path,
        type,
        linkPath: type === 'hardlink' || type === 'symlink' ? nameFromBytes(linkBytes) : '',
        mode: h.mode,
        uid: paxInteger(attrs, 'uid', ectx) ?? h.uid,
        gid: paxInteger(attrs, 'gid', ectx) ?? h.gid,
        mtimeSec: mtime.sec,
        mtimeNsec: mtime.nsec,
        size,
        devMajor: paxInteger(attrs, 'SCHILY.devmajor', ectx) ?? h.devMajor,
        devMinor: paxInteger(attrs, 'SCHILY.devminor', ectx) ?? h.devMinor,
        xattrs: paxXattrs(attrs, ectx, (name, keyword) => opts.onWarning?.({
          code: 'TAR_XATTR_SKIPPED', source, offset: start, entry: path,
          message: `${path}: xattr "${name}" (pax ${keyword.startsWith('LIBARCHIVE') ? 'LIBARCHIVE.xattr' : 'SCHILY.xattr'}) is not in a Linux namespace; skipped`,
        })),
        sparse,
        segments: () => {
          if (type !== 'file') throw new TypeError(`${path}: only regular files have data segments`);
          if (state.taken) throw new TypeError(`${path}: segments() was already called`);
          state.taken = true;
          return streamRegions(r, regions, state, segmentSize, ectx);
        },
      };
      yield entry;
      state.active = false;
      if ((await r.skip(state.remaining)) < state.remaining) throw new TarTruncatedError(ectx, 'inside the entry data');
      await skipPadding(dataSize, ectx);
    }
  } finally {
    await r.close();
  }
}

async function* streamRegions(r: ByteReader, regions: readonly SparseRegion[], state: DataState, segmentSize: number, ctx: EntryContext): AsyncGenerator<Segment> {
  for (const region of regions) {
    let offset = region.offset;
    let left = region.length;
    while (left > 0) {
      const want = Math.min(segmentSize, left);
      const parts: Buffer[] = [];
      let got = 0;
      while (got < want) {
        if (!state.active) throw new Error(`${ctx.entry}: data read after the tar reader moved to the next entry`);
        const b = await r.readUpTo(want - got);
        if (b.length === 0) throw new TarTruncatedError(ctx, `inside the entry data (${state.remaining} bytes missing)`);
        parts.push(b);
        got += b.length;
        state.remaining -= b.length;
      }
      yield { offset, data: parts.length === 1 ? parts[0]! : Buffer.concat(parts, got) };
      offset += got;
      left -= got;
    }
  }
}

function entryType(h: TarHeader, path: string, ctx: EntryContext): TarEntryType {
  switch (h.type) {
    case '0':
    case '7':
      return 'file';
    case 'S':
      if (!h.gnuSparse) throw new TarUnsupportedError(ctx, "GNU sparse entry ('S') in a non-GNU header");
      return 'file';
    case '\0':
      return path.endsWith('/') ? 'dir' : 'file'; // pre-POSIX archives mark directories by the slash
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'chardev';
    case '4':
      return 'blockdev';
    case '5':
    case 'D': // GNU dumpdir: a directory whose data lists its contents
      return 'dir';
    case '6':
      return 'fifo';
    case 'M':
      throw new TarUnsupportedError(ctx, 'GNU multi-volume continuation entries');
    default:
      throw new TarUnsupportedError(ctx, `entry type ${JSON.stringify(h.type)}`);
  }
}

function cut(data: Buffer): Buffer {
  const nul = data.indexOf(0);
  return nul === -1 ? data : data.subarray(0, nul);
}
