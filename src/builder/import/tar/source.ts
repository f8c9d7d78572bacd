// Opening a layer (a file, or a stream such as a registry blob) as a stream of uncompressed tar
// bytes. Compression is recognised by its magic bytes, never by the file name or media type
// (registries hand out blobs named by digest). gzip goes through node:zlib, zstd through
// zstd-napi's streaming decompressor; failures are reported as I/O errors (the file) or
// DecompressError (the bytes), with the layer named. Every stored byte passes a RawCheck
// (count, size, digest) and the layer's data ends only once the raw stream has ended, the
// checks have passed and the decoder has taken every byte: bytes after the compressed data,
// a short stream or a wrong digest are errors, whichever order the streams finish in.
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type Gunzip, type ZlibOptions } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { OndineError } from '../../../errors.js';
import { DecompressError, SourceIoError, UnsupportedCompressionError } from '../errors.js';
import { RawCheck, type RawExpectation } from './raw-check.js';
import { DecodedLimitError } from './decoded-limit.js';
import type { StageClock } from '../../stages.js';

export type Compression = 'none' | 'gzip' | 'zstd';

const READ_CHUNK = 1 << 20;

export function detectCompression(head: Uint8Array, source: string): Compression {
  const is = (...magic: number[]): boolean => magic.every((b, i) => head[i] === b);
  if (is(0x1f, 0x8b)) return 'gzip';
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) throw new UnsupportedCompressionError(source, 'xz');
  if (is(0x42, 0x5a, 0x68)) throw new UnsupportedCompressionError(source, 'bzip2');
  if (is(0x04, 0x22, 0x4d, 0x18)) throw new UnsupportedCompressionError(source, 'lz4');
  return 'none';
}

/**
 * A layer that is not a local file: a registry blob, a blob inside an OCI layout, bytes in
 * memory. `open()` is called once; its bytes are the layer as stored (compressed or not).
 * Errors the stream raises that are already OndineErrors (a registry failure, a digest
 * mismatch) come out unchanged.
 */
export interface LayerSource {
  /** Names the layer in errors, warnings and progress (a digest, a URL, a file). */
  name: string;
  /** Stored (compressed) size when known: progress shows a ratio then. Exact when `digest` is set. */
  size?: number;
  /**
   * The descriptor's digest of the stored bytes: checked over every byte at the end of the raw
   * stream, and `size` (when given) enforced as exact, before the layer's data ends.
   */
  digest?: string;
  open(): Promise<Readable | AsyncIterable<Buffer | Uint8Array>>;
}

/** A layer tarball on disk, or a stream of one. */
export type LayerInput = string | LayerSource;

export function layerName(input: LayerInput): string {
  return typeof input === 'string' ? input : input.name;
}

export interface LayerStream {
  compression: Compression;
  /** Size of the layer as stored (compressed): the file size, or the source's size (0 when unknown). */
  fileSize: number;
  /** Bytes of the stored layer read so far. */
  readonly bytesRead: number;
  /** The uncompressed tar bytes; errors come out typed. Breaking out of it closes the file. */
  data: AsyncIterable<Buffer>;
  /**
   * True once `data` has ended with every stored byte read, the raw checks passed and nothing
   * after the compressed data: only then does the layer count as read.
   */
  readonly verified: boolean;
}

/**
 * How far a decoder may run ahead of the tar reader. zlib decodes on the thread pool, but with
 * a stream's default 16 KiB it stops after every 256 KiB it puts out until the reader takes it,
 * so decoding and the main thread's work took turns instead of overlapping.
 */
const DECODED_AHEAD = 8 << 20;

function decoderFor(compression: Compression): Transform | undefined {
  if (compression === 'gzip') return createGunzip({ chunkSize: 256 << 10, readableHighWaterMark: DECODED_AHEAD } as ZlibOptions);
  if (compression === 'zstd') {
    const d = new DecompressStream();
    // zstd-napi takes no stream options: the same run-ahead, set on its readable side.
    (d as unknown as { _readableState: { highWaterMark: number } })._readableState.highWaterMark = DECODED_AHEAD;
    return d;
  }
  return undefined;
}

/**
 * Counts a decoder's work as the gunzip stage: the time from handing it each input chunk to its
 * callback (zlib works on the thread pool, one chunk at a time), its bytes in and out.
 */
function timeDecoder(decoder: Transform, stages: StageClock): void {
  const d = decoder as Transform & { _transform: Transform['_transform'] };
  const transform = d._transform.bind(d);
  const push = d.push.bind(d);
  let out = 0;
  d.push = (c: unknown, enc?: BufferEncoding) => {
    if (c) out += (c as Buffer).length;
    return push(c, enc);
  };
  d._transform = (chunk: Buffer, enc, cb) => {
    const t = performance.now();
    const before = out;
    transform(chunk, enc, (err, data) => {
      stages.add('gunzip', chunk.length, performance.now() - t, out - before);
      cb(err, data);
    });
  };
}

export interface OpenLayerOptions {
  /** Uncompressed bytes past this are refused (ONDINE_ERR_TOO_LARGE): a decompression bomb stops here. */
  maxDecoded?: number;
  /** Where the fetch (stream sources) and gunzip stages report their bytes and time. */
  stages?: StageClock;
}

export async function openLayer(input: LayerInput, opts: OpenLayerOptions = {}): Promise<LayerStream> {
  return typeof input === 'string' ? openLayerFile(input, opts) : openLayerStream(input, opts);
}

async function openLayerFile(path: string, opts: OpenLayerOptions): Promise<LayerStream> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new SourceIoError(path, err);
  }
  let fileSize: number;
  let compression: Compression;
  try {
    fileSize = (await fh.stat()).size;
    const head = Buffer.alloc(6);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    compression = detectCompression(head.subarray(0, bytesRead), path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err instanceof UnsupportedCompressionError ? err : new SourceIoError(path, err);
  }
  const file = fh.createReadStream({ start: 0, highWaterMark: READ_CHUNK, autoClose: true });
  return decodeStream(path, file, compression, fileSize, () => file.bytesRead, {}, opts);
}

async function openLayerStream(src: LayerSource, opts: OpenLayerOptions): Promise<LayerStream> {
  const rethrow = (err: unknown): never => {
    throw err instanceof OndineError ? err : new SourceIoError(src.name, err);
  };
  const opened = await src.open().catch(rethrow);
  const it = (opened as AsyncIterable<Buffer | Uint8Array>)[Symbol.asyncIterator]();
  // The magic bytes may straddle the first chunks of a network stream.
  const head: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  try {
    while (headLen < 6) {
      const r = await it.next();
      if (r.done) { ended = true; break; }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      head.push(b);
      headLen += b.length;
    }
  } catch (err) {
    rethrow(err);
  }
  let compression: Compression;
  try {
    compression = detectCompression(Buffer.concat(head).subarray(0, 6), src.name);
  } catch (err) {
    await it.return?.();
    throw err;
  }
  let read = 0;
  async function* all(): AsyncGenerator<Buffer> {
    try {
      for (const b of head) { read += b.length; yield b; }
      if (ended) return;
      for (;;) {
        const t = performance.now();
        const r = await it.next();
        if (r.done) return;
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        read += b.length;
        opts.stages?.add('fetch', b.length, performance.now() - t);
        yield b;
      }
    } finally {
      if (!ended) await it.return?.();
    }
  }
  const raw = Readable.from(all(), { objectMode: false });
  const expect: RawExpectation = {};
  if (src.digest !== undefined) {
    expect.digest = src.digest;
    if (src.size !== undefined) expect.size = src.size;
  }
  return decodeStream(src.name, raw, compression, src.size ?? 0, () => read, expect, opts);
}

function decodeStream(name: string, raw: Readable, compression: Compression, fileSize: number, bytesRead: () => number,
  expect: RawExpectation, opts: OpenLayerOptions): LayerStream {
  const check = new RawCheck(name, expect);
  const decoder = decoderFor(compression);
  if (decoder && opts.stages) timeDecoder(decoder, opts.stages);
  // The first stage to fail says what went wrong; pipeline() then destroys the others with
  // the same error, so later events say nothing new.
  let first: { stage: 'raw' | 'check' | 'decoder'; err: unknown } | undefined;
  raw.once('error', (err) => (first ??= { stage: 'raw', err }));
  check.once('error', (err) => (first ??= { stage: 'check', err }));
  decoder?.once('error', (err) => (first ??= { stage: 'decoder', err }));
  const out: Readable = decoder ?? check;
  // pipeline() ends only when every stage has: the raw stream at its EOF, the check's flush
  // (digest) and the decoder's end. Its promise is awaited before the data ends.
  const done = pipeline(decoder ? [raw, check, decoder] : [raw, check]);
  done.catch(() => undefined);

  const fail = (err: unknown): unknown => {
    const origin = first?.err ?? err;
    if (origin instanceof OndineError) return origin;
    if (first?.stage === 'decoder') return new DecompressError(name, compression, origin);
    return new SourceIoError(name, origin);
  };

  let complete = false;
  async function* data(): AsyncGenerator<Buffer> {
    let decoded = 0;
    try {
      for await (const chunk of out.iterator({ destroyOnReturn: false })) {
        decoded += (chunk as Buffer).length;
        if (opts.maxDecoded !== undefined && decoded > opts.maxDecoded) throw new DecodedLimitError(name, opts.maxDecoded);
        yield chunk as Buffer;
      }
      await done;
      // zlib skips zero bytes after the last gzip member without a word; they are still bytes
      // that are not part of the layer's compressed data.
      const taken = decoder ? (decoder as Gunzip).bytesWritten : undefined;
      if (typeof taken === 'number' && taken !== check.total) {
        throw new DecompressError(name, compression, new Error(`${check.total - taken} bytes after the end of the compressed data`));
      }
      if (!check.verified) throw new SourceIoError(name, new Error('the stream ended before its checks ran'));
      complete = true;
    } catch (err) {
      throw err instanceof DecodedLimitError ? err : fail(err);
    } finally {
      if (!complete) {
        decoder?.destroy();
        check.destroy();
        raw.destroy();
      }
    }
  }
  return {
    compression,
    fileSize,
    get bytesRead() {
      return bytesRead();
    },
    get verified() {
      return complete;
    },
    data: data(),
  };
}
