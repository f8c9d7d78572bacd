// Chunk codecs as small ops objects looked up by their on-disk id (none 0, lz4 1, gzip 2,
// zstd 3). Decoders check the output size exactly: a chunk that inflates to anything but
// its recorded size is corrupt, whatever the codec library thinks.
import { createRequire } from 'node:module';
import { gunzipSync, gzipSync, constants as zc } from 'node:zlib';
import * as zstd from 'zstd-napi';
import { Compressor } from '../format/constants.js';
import { CorruptError, UnsupportedError } from '../errors.js';
import { lz4Compress, lz4Decompress } from '../native/index.js';

export interface Codec {
  readonly id: Compressor;
  readonly name: 'none' | 'lz4' | 'gzip' | 'zstd';
  compress(data: Uint8Array, level?: number): Buffer;
  /** Throws CorruptError unless the output is exactly `uncompressedSize` bytes. */
  decompress(data: Uint8Array, uncompressedSize: number): Buffer;
  /**
   * Decompresses into `out`, which must come out exactly full (CorruptError otherwise), where
   * the codec can write straight into caller memory (e.g. aligned memory for an O_DIRECT
   * write, saving a copy of every byte). Absent for codecs that cannot.
   */
  decompressInto?(data: Uint8Array, out: Uint8Array): void;
  /**
   * Compresses into `out` (at least compressBound(data.length) bytes) and returns the length:
   * the same bytes as compress(), without a buffer of its own per call. Absent for codecs that cannot.
   */
  compressInto?(data: Uint8Array, out: Uint8Array, level?: number): number;
  compressBound?(length: number): number;
}

// zstd-napi's low-level binding: the one call that decompresses into memory we provide.
const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding') as typeof import('zstd-napi/binding.js');
const { DCtx } = zstdBinding;
const dctx = new DCtx();
// compressInto's context, made on first use; its parameters are set as zstd.compress() sets
// them (reset, then the level), so the frames are the same bytes.
let cctx: InstanceType<typeof zstdBinding.CCtx> | undefined;
let cctxLevel: number | undefined;

function checkSize(got: number, want: number, codec: string): void {
  if (got !== want) throw new CorruptError(`${codec} chunk`, 0, `decompressed to ${got} bytes, expected ${want}`);
}

function exact(out: Buffer, want: number, codec: string): Buffer {
  checkSize(out.length, want, codec);
  return out;
}

function guarded<T>(codec: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CorruptError) throw err;
    throw new CorruptError(`${codec} chunk`, 0, `does not decompress: ${(err as Error).message}`);
  }
}

const none: Codec = {
  id: Compressor.None,
  name: 'none',
  compress: (d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength),
  decompress: (d, n) => exact(Buffer.from(d.buffer, d.byteOffset, d.byteLength), n, 'uncompressed'),
  decompressInto: (d, out) => {
    if (d.length !== out.length) throw new CorruptError('uncompressed chunk', 0, `holds ${d.length} bytes, expected ${out.length}`);
    out.set(d);
  },
};

const lz4: Codec = {
  id: Compressor.Lz4Block,
  name: 'lz4',
  compress: (d) => lz4Compress(d),
  decompress: (d, n) => guarded('lz4', () => exact(lz4Decompress(d, n), n, 'lz4')),
};

const gzip: Codec = {
  id: Compressor.Gzip,
  name: 'gzip',
  compress: (d, level = 6) => gzipSync(d, { level }),
  // maxOutputLength bounds a decompression bomb to one byte past the promise.
  decompress: (d, n) => guarded('gzip', () => exact(gunzipSync(d, { maxOutputLength: Math.max(1, n + 1), finishFlush: zc.Z_SYNC_FLUSH }), n, 'gzip')),
};

const zstdCodec: Codec = {
  id: Compressor.Zstd,
  name: 'zstd',
  compress: (d, level = 3) => zstd.compress(d, { compressionLevel: level }),
  compressInto: (d, out, level = 3) => {
    if (!cctx || cctxLevel !== level) {
      cctx ??= new zstdBinding.CCtx();
      cctx.reset(zstdBinding.ResetDirective.parameters);
      cctx.setParameter(zstdBinding.CParameter.compressionLevel, level);
      cctxLevel = level;
    }
    return cctx.compress2(out, d);
  },
  compressBound: (n) => zstdBinding.compressBound(n),
  decompress: (d, n) => guarded('zstd', () => exact(zstd.decompress(zstdFrameFor(d, n)), n, 'zstd')),
  // The frame checks bound the output; zstd itself refuses to write past `out`.
  decompressInto: (d, out) => {
    checkSize(guarded('zstd', () => dctx.decompress(out, zstdFrameFor(d, out.length))), out.length, 'zstd');
  },
};

/**
 * zstd-napi sizes its output from the content sizes of *all* frames in the buffer and streams
 * without bound when a frame announces none, so a chunk is checked before it gets there: it
 * must be exactly one frame announcing `want` bytes. A frame that announces nothing gets a
 * header that announces `want` (zstd then refuses to write past it). Nothing is allocated for
 * a frame that fails these checks.
 */
function zstdFrameFor(d: Uint8Array, want: number): Uint8Array {
  if (d.length < 6 || d[0] !== 0x28 || d[1] !== 0xb5 || d[2] !== 0x2f || d[3] !== 0xfd) {
    throw new CorruptError('zstd chunk', 0, 'bad frame magic');
  }
  const fhd = d[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const didFlag = fhd & 3;
  const fcsSize = fcsFlag === 0 ? (single ? 1 : 0) : 1 << fcsFlag;
  const at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][didFlag]!;
  if (d.length < at + fcsSize) throw new CorruptError('zstd chunk', 0, 'truncated frame header');
  if (fcsSize !== 0) {
    let size = 0;
    for (let i = fcsSize - 1; i >= 0; i--) size = size * 256 + d[at + i]!;
    if (fcsSize === 2) size += 256;
    if (size !== want) throw new CorruptError('zstd chunk', 0, `frame announces ${size} bytes, expected ${want}`);
  }
  // Walk the block headers (3 bytes: last flag, type, size) to where the frame ends.
  let p = at + fcsSize;
  for (;;) {
    if (p + 3 > d.length) throw new CorruptError('zstd chunk', p, 'truncated frame');
    const bh = d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16);
    const type = (bh >> 1) & 3;
    if (type === 3) throw new CorruptError('zstd chunk', p, 'reserved block type');
    p += 3 + (type === 1 ? 1 : bh >>> 3); // an RLE block stores one byte
    if (bh & 1) break;
  }
  if (fhd & 4) p += 4; // content checksum
  if (p > d.length) throw new CorruptError('zstd chunk', d.length, 'truncated frame');
  if (p < d.length) throw new CorruptError('zstd chunk', p, `${d.length - p} bytes after the frame`);
  if (fcsSize !== 0) return d;
  const out = Buffer.alloc(d.length + 8);
  out.set(d.subarray(0, at));
  out[4] = fhd | 0xc0; // an 8-byte content size field; the window descriptor stays
  out.writeBigUInt64LE(BigInt(want), at);
  out.set(d.subarray(at), at + 8);
  return out;
}

const BY_ID: ReadonlyMap<number, Codec> = new Map([none, lz4, gzip, zstdCodec].map((c) => [c.id, c]));
const BY_NAME: ReadonlyMap<string, Codec> = new Map([none, lz4, gzip, zstdCodec].map((c) => [c.name, c]));

export function codecById(id: number): Codec {
  const c = BY_ID.get(id);
  if (!c) throw new UnsupportedError(`compressor id ${id}`);
  return c;
}

export function codecByName(name: string): Codec {
  const c = BY_NAME.get(name);
  if (!c) throw new UnsupportedError(`compressor "${name}" (use zstd, lz4, gzip or none)`);
  return c;
}
