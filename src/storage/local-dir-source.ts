// A directory of blobs named by their ids (what `ondine build` writes to <out>/blobs).
import { readSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FetchError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { type BlobSource, SourceCounters } from './blob-source.js';

const BLOB_ID = /^[0-9a-f]{64}$/;

/**
 * Reads up to this size are done on the JS thread: a small pread of a local file costs less
 * than the thread-pool round trip it would otherwise take (seen in the test VM: the hop cost
 * milliseconds, several times the pread), and it is what a waiting random reader needs.
 */
export const SYNC_READ_MAX = 64 << 10;

export class LocalDirSource implements BlobSource {
  readonly description: string;
  readonly counters = new SourceCounters();
  readonly cancellable = false;
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(readonly dir: string) {
    this.description = `local directory ${dir}`;
  }

  private path(blobId: string): string {
    if (!BLOB_ID.test(blobId)) throw new InvalidArgumentError(`blob id "${blobId}" is not 64 hex characters`);
    return join(this.dir, blobId);
  }

  private handle(blobId: string): Promise<FileHandle> {
    let h = this.handles.get(blobId);
    if (!h) {
      h = open(this.path(blobId), 'r').catch((err: NodeJS.ErrnoException) => {
        this.handles.delete(blobId);
        if (err.code === 'ENOENT') throw new NotFoundError(`blob ${blobId} in ${this.dir}`);
        throw new FetchError(`cannot open blob ${blobId}: ${err.message}`, { cause: err });
      });
      this.handles.set(blobId, h);
    }
    return h;
  }

  async read(blobId: string, offset: number, length: number): Promise<Buffer> {
    const fh = await this.handle(blobId);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const bytesRead = length <= SYNC_READ_MAX
        ? readSync(fh.fd, buf, done, length - done, offset + done)
        : (await fh.read(buf, done, length - done, offset + done)).bytesRead;
      if (bytesRead === 0) throw new FetchError(`blob ${blobId}: read past its end at ${offset + done} (wanted ${offset}+${length})`);
      done += bytesRead;
    }
    this.counters.add(blobId, length);
    return buf;
  }

  async size(blobId: string): Promise<number> {
    try {
      return (await stat(this.path(blobId))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`blob ${blobId} in ${this.dir}`);
      throw err;
    }
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.allSettled(all.map(async (h) => (await h).close()));
  }
}
