// Opening a layer file as a stream of uncompressed tar bytes. Compression is recognised by its
// magic bytes, never by the file name (registries hand out blobs named by digest). gzip goes
// through node:zlib, zstd through zstd-napi's streaming decompressor; failures are reported as
// I/O errors (the file) or DecompressError (the bytes), with the file named.
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
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

export interface LayerStream {
  compression: Compression;
  /** Size of the file on disk (compressed). */
  fileSize: number;
  /** Bytes of the file read so far. */
  readonly bytesRead: number;
  /** The uncompressed tar bytes; errors come out typed. Breaking out of it closes the file. */
  data: AsyncIterable<Buffer>;
}

export async function openLayer(path: string): Promise<LayerStream> {
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
  let fileError: unknown;
  file.once('error', (err) => (fileError ??= err));
  const decoder: Transform | undefined =
    compression === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : compression === 'zstd' ? new DecompressStream() : undefined;
  const out: Readable = decoder ? file.pipe(decoder) : file;
  if (decoder) {
    // pipe() does not forward errors; a failed read must still end the decoder's iteration.
    file.once('error', (err) => decoder.destroy(err));
    decoder.once('close', () => file.destroy());
  }

  async function* data(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of out) yield chunk as Buffer;
    } catch (err) {
      if (fileError !== undefined) throw new SourceIoError(path, fileError);
      if (decoder) throw new DecompressError(path, compression, err);
      throw new SourceIoError(path, err);
    } finally {
      out.destroy();
      file.destroy();
    }
  }

  return {
    compression,
    fileSize,
    get bytesRead() {
      return file.bytesRead;
    },
    data: data(),
  };
}
