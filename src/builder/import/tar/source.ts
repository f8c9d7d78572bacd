// Opening a layer (a file, or a stream such as a registry blob) as a stream of uncompressed tar
// bytes. Compression is recognised by its magic bytes, never by the file name or media type
// (registries hand out blobs named by digest). gzip goes through node:zlib, zstd through
// zstd-napi's streaming decompressor; failures are reported as I/O errors (the file) or
// DecompressError (the bytes), with the layer named.
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, type Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { OndineError } from '../../../errors.js';
import { DecompressError, SourceIoError, UnsupportedCompressionError } from '../errors.js';

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
  /** Stored (compressed) size when known: progress shows a ratio then. */
  size?: number;
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
}

function decoderFor(compression: Compression): Transform | undefined {
  return compression === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : compression === 'zstd' ? new DecompressStream() : undefined;
}

export async function openLayer(input: LayerInput): Promise<LayerStream> {
  return typeof input === 'string' ? openLayerFile(input) : openLayerStream(input);
}

async function openLayerFile(path: string): Promise<LayerStream> {
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
  return decodeStream(path, file, compression, fileSize, () => file.bytesRead);
}

async function openLayerStream(src: LayerSource): Promise<LayerStream> {
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
        const r = await it.next();
        if (r.done) return;
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        read += b.length;
        yield b;
      }
    } finally {
      if (!ended) await it.return?.();
    }
  }
  const raw = Readable.from(all(), { objectMode: false });
  return decodeStream(src.name, raw, compression, src.size ?? 0, () => read);
}

function decodeStream(name: string, raw: Readable, compression: Compression, fileSize: number, bytesRead: () => number): LayerStream {
  let rawError: unknown;
  raw.once('error', (err) => (rawError ??= err));
  const decoder = decoderFor(compression);
  const out: Readable = decoder ? raw.pipe(decoder) : raw;
  if (decoder) {
    // pipe() does not forward errors; a failed read must still end the decoder's iteration.
    raw.once('error', (err) => decoder.destroy(err));
    decoder.once('close', () => raw.destroy());
  }

  async function* data(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of out) yield chunk as Buffer;
    } catch (err) {
      if (rawError !== undefined) throw rawError instanceof OndineError ? rawError : new SourceIoError(name, rawError);
      if (decoder) throw new DecompressError(name, compression, err);
      throw err instanceof OndineError ? err : new SourceIoError(name, err);
    } finally {
      out.destroy();
      raw.destroy();
    }
  }

  return {
    compression,
    fileSize,
    get bytesRead() {
      return bytesRead();
    },
    data: data(),
  };
}
