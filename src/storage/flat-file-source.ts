// A flat, uncompressed device image (what mkfs.erofs --blobdev writes) read through one open
// file for as long as the image is served: a READ costs a pread, not an open and a close.
// Short reads are errors, never zero padding: past the end there is nothing to serve.
import { open, type FileHandle } from 'node:fs/promises';
import { FetchError, NotFoundError } from '../errors.js';
import { SourceCounters } from './blob-source.js';

export class FlatFileSource {
  readonly counters = new SourceCounters();
  private handle: Promise<FileHandle> | undefined;

  /** `size`: the file's length when it was registered (what copen announced). */
  constructor(readonly path: string, readonly size: number) {}

  private file(): Promise<FileHandle> {
    this.handle ??= open(this.path, 'r').catch((err: NodeJS.ErrnoException) => {
      this.handle = undefined;
      if (err.code === 'ENOENT') throw new NotFoundError(`device image ${this.path}`);
      throw new FetchError(`cannot open device image ${this.path}: ${err.message}`, { cause: err });
    });
    return this.handle;
  }

  /** Exactly [offset, offset + length) of the file, clipped to its size by the caller. */
  async read(offset: number, length: number): Promise<Buffer> {
    const fh = await this.file();
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw new FetchError(`device image ${this.path} ends at ${offset + done}, before ${offset + length}`);
      done += bytesRead;
    }
    this.counters.add(this.path, length);
    return buf;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await (await h.catch(() => undefined))?.close();
  }
}
