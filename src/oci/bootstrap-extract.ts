// Taking the bootstrap out of a bootstrap layer as a stream, as hostile input: the gzip tar is
// never held whole, it may decompress to no more than the cap (plus room for headers), and
// `image/image.boot` is taken only as exactly one regular, non-sparse file entry whose header
// declares at most the cap (refused before its body is read). Its first block must be an
// EROFS superblock whose RAFS tables lie inside the file, checked as soon as it arrives, so a
// file of zeros stops there. The bytes go to a sink (a temporary file, a buffer); the result
// counts only once the whole layer was read and its digest checked.
import { createHash } from 'node:crypto';
import { CorruptError, OndineError, UnsupportedError } from '../errors.js';
import { readTar } from '../builder/import/tar/reader.js';
import { openLayer, type LayerSource } from '../builder/import/tar/source.js';
import { decodeSuperblock, verifySuperblockChecksum } from '../format/superblock.js';
import { decodeRafsSuperblock } from '../format/rafs-superblock.js';
import { COMPAT_RAFS_V6 } from '../format/constants.js';
import { BOOTSTRAP_ENTRY } from '../registry/media-types.js';

/** Default cap on a bootstrap's size: about 4 million files at 100–250 bytes each plus chunks. */
export const DEFAULT_MAX_BOOTSTRAP_BYTES = 1 << 30;
/** Room for the tar's own headers, pax records and the other small members of the layer. */
const TAR_OVERHEAD = 64 << 20;
const HEAD = 4096;

/** The bootstrap went past the cap (declared in its tar header, or decompressed). */
export class BootstrapTooLargeError extends OndineError {
  constructor(readonly source: string, readonly limit: number, detail: string) {
    super('ONDINE_ERR_TOO_LARGE', undefined, `${source}: ${detail}, over the ${limit}-byte cap on a bootstrap`);
  }
}

export interface BootstrapSink {
  /** Bytes in order, from offset 0. */
  write(data: Buffer): Promise<void>;
}

export interface ExtractedBootstrap {
  size: number;
  /** sha256 hex of the bootstrap's bytes. */
  sha256: string;
}

export interface ExtractOptions {
  /** Cap on the bootstrap's size, default 1 GiB. */
  maxBytes?: number;
}

function entryName(path: string): string {
  let p = path;
  while (p.startsWith('./') || p.startsWith('/')) p = p.startsWith('/') ? p.slice(1) : p.slice(2);
  return p;
}

function isBootstrapName(path: string): boolean {
  const n = entryName(path);
  return n === BOOTSTRAP_ENTRY || n === 'image.boot';
}

/**
 * The first block of a bootstrap: an EROFS superblock (checksum when the block is whole) whose
 * RAFS blob and chunk tables lie inside a file of `size` bytes. Pure.
 */
export function checkBootstrapHead(head: Buffer, size: number, source: string): void {
  try {
    checkHead(head, size, source);
  } catch (err) {
    // Name the layer and entry: the decoders only know offsets.
    if (err instanceof CorruptError) throw new CorruptError(`${source}: bootstrap`, 0, err.message);
    if (err instanceof UnsupportedError) throw new UnsupportedError('bootstrap', `${source}: ${err.message}`);
    throw err;
  }
}

function checkHead(head: Buffer, size: number, source: string): void {
  const sb = decodeSuperblock(head);
  const blockSize = 1 << sb.blkszbits;
  if (head.length >= blockSize) verifySuperblockChecksum(head, sb);
  if (sb.featureCompat & COMPAT_RAFS_V6) {
    const r = decodeRafsSuperblock(head);
    const inside = (offset: number, length: number): boolean => Number.isSafeInteger(offset + length) && offset + length <= size;
    if (!inside(r.blobTableOffset, r.blobTableSize)) throw new CorruptError('RAFS blob table', r.blobTableOffset, `${source}: ${r.blobTableSize} bytes beyond the bootstrap's ${size}`);
    if (!inside(r.chunkTableOffset, r.chunkTableSize)) throw new CorruptError('RAFS chunk table', r.chunkTableOffset, `${source}: ${r.chunkTableSize} bytes beyond the bootstrap's ${size}`);
  }
}

/**
 * Streams the layer, handing `image/image.boot` to `sink`. Resolves once the layer was read
 * to its verified end (digest, size, no bytes after the compressed data).
 */
export async function extractBootstrapTo(layer: LayerSource, sink: BootstrapSink, opts: ExtractOptions = {}): Promise<ExtractedBootstrap> {
  const cap = opts.maxBytes ?? DEFAULT_MAX_BOOTSTRAP_BYTES;
  const name = layer.name;
  const stream = await openLayer(layer, { maxDecoded: cap + TAR_OVERHEAD });
  let found: ExtractedBootstrap | undefined;
  for await (const entry of readTar(stream.data, { source: name })) {
    const where = `${name}: ${JSON.stringify(entry.path)}`;
    if (entry.size > cap) throw new BootstrapTooLargeError(where, cap, `its tar header declares ${entry.size} bytes`);
    if (!isBootstrapName(entry.path)) continue;
    if (found !== undefined) throw new CorruptError('bootstrap layer', entry.offset, `${where}: a second ${BOOTSTRAP_ENTRY} entry`);
    if (entry.type !== 'file') throw new CorruptError('bootstrap layer', entry.offset, `${where}: a ${entry.type}, not a regular file`);
    if (entry.sparse) throw new UnsupportedError('sparse bootstrap', `${where}: stored as a sparse file`);
    found = await copyEntry(entry.segments(), entry.size, sink, where);
  }
  if (!stream.verified) throw new CorruptError('bootstrap layer', 0, `${name}: the layer was not read to its verified end`);
  if (found === undefined) throw new CorruptError(name, 0, `no ${BOOTSTRAP_ENTRY} in the archive`);
  return found;
}

async function copyEntry(segments: AsyncIterable<{ offset: number; data: Buffer }>, size: number, sink: BootstrapSink, where: string): Promise<ExtractedBootstrap> {
  const hash = createHash('sha256');
  let head: Buffer[] = [];
  let headLen = 0;
  let checked = false;
  let written = 0;
  const emit = async (b: Buffer): Promise<void> => {
    hash.update(b);
    written += b.length;
    await sink.write(b);
  };
  for await (const seg of segments) {
    if (seg.offset !== written + headLen) throw new CorruptError('bootstrap layer', seg.offset, `${where}: data out of order`);
    if (checked) {
      await emit(seg.data);
      continue;
    }
    head.push(seg.data);
    headLen += seg.data.length;
    if (headLen >= HEAD) {
      const all = Buffer.concat(head, headLen);
      checkBootstrapHead(all, size, where);
      checked = true;
      head = [];
      headLen = 0;
      await emit(all);
    }
  }
  if (!checked) {
    const all = Buffer.concat(head, headLen);
    checkBootstrapHead(all, size, where);
    await emit(all);
  }
  if (written !== size) throw new CorruptError('bootstrap layer', 0, `${where}: ${written} of ${size} bytes`);
  return { size, sha256: hash.digest('hex') };
}

/** The bootstrap as a buffer (tests, small layers in memory); the same rules. */
export async function extractBootstrapBuffer(layer: LayerSource, opts: ExtractOptions = {}): Promise<Buffer> {
  const parts: Buffer[] = [];
  await extractBootstrapTo(layer, { write: async (b) => { parts.push(b); } }, opts);
  return Buffer.concat(parts);
}
