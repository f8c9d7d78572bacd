// Chunk codecs as small ops objects looked up by their on-disk id (none 0, lz4 1, gzip 2,
// zstd 3). Decoders check the output size exactly: a chunk that inflates to anything but
// its recorded size is corrupt, whatever the codec library thinks.
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
}

function exact(out: Buffer, want: number, codec: string): Buffer {
  if (out.length !== want) throw new CorruptError(`${codec} chunk`, 0, `decompressed to ${out.length} bytes, expected ${want}`);
  return out;
}

function guarded(codec: string, fn: () => Buffer): Buffer {
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
  decompress: (d, n) => guarded('zstd', () => {
    checkZstdContentSize(d, n);
    return exact(zstd.decompress(d), n, 'zstd');
  }),
};

/** Refuses a frame that announces a content size other than expected, before allocating it. */
function checkZstdContentSize(d: Uint8Array, want: number): void {
  if (d.length < 6 || d[0] !== 0x28 || d[1] !== 0xb5 || d[2] !== 0x2f || d[3] !== 0xfd) {
    throw new CorruptError('zstd chunk', 0, 'bad frame magic');
  }
  const fhd = d[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const didFlag = fhd & 3;
  const fcsSize = fcsFlag === 0 ? (single ? 1 : 0) : 1 << fcsFlag;
  if (fcsSize === 0) return;
  const at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][didFlag]!;
  if (d.length < at + fcsSize) throw new CorruptError('zstd chunk', 0, 'truncated frame header');
  let size = 0;
  for (let i = fcsSize - 1; i >= 0; i--) size = size * 256 + d[at + i]!;
  if (fcsSize === 2) size += 256;
  if (size !== want) throw new CorruptError('zstd chunk', 0, `frame announces ${size} bytes, expected ${want}`);
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
