// Ondine's own layout of cache files for the fanotify path, under the daemon's cache
// directory (cachefiles names and owns its files elsewhere; none of that is imitated here):
//   <cacheDir>/ondine/blobs/<blob id>        sparse, the uncompressed blob (block-padded size)
//   <cacheDir>/ondine/bootstraps/<sha256>    whole (EROFS reads metadata without events)
// A blob file's size is fixed when it is made; a file of another size is not this blob's
// cache and is replaced. Data once written survives daemon restarts.
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, renameSync, statSync, writeFileSync, fsyncSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { alignUp } from '../format/bytes.js';
import { BLOCK_SIZE } from '../format/constants.js';
import { isAllocated } from './cache-file.js';

export class CacheDir {
  readonly root: string;

  constructor(readonly cacheDir: string) {
    this.root = join(cacheDir, 'ondine');
  }

  blobPath(blobId: string): string {
    return join(this.root, 'blobs', blobId);
  }

  /** Creates (or keeps) the sparse cache file of a blob; returns its path. */
  ensureBlob(blobId: string, uncompressedSize: number): string {
    const path = this.blobPath(blobId);
    const size = alignUp(uncompressedSize, BLOCK_SIZE);
    mkdirSync(join(this.root, 'blobs'), { recursive: true });
    const st = statSync(path, { throwIfNoEntry: false });
    if (st && st.size === size) return path;
    // Absent, or of another size (not this blob's cache): a fresh sparse file, renamed into
    // place so no reader ever sees a half-made one.
    const tmp = `${path}.new-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    return path;
  }

  /** Writes the bootstrap whole (fsync'd, renamed into place); returns its path. */
  storeBootstrap(bytes: Uint8Array): string {
    const dir = join(this.root, 'bootstraps');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, createHash('sha256').update(bytes).digest('hex'));
    const st = statSync(path, { throwIfNoEntry: false });
    if (st?.size === bytes.length) return path;
    const tmp = `${path}.new-${process.pid}`;
    writeFileSync(tmp, bytes, { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
    renameSync(tmp, path);
    return path;
  }
}

/** Whether the file open as `fd` holds data from 0 to its end (no hole at all). */
export function fileComplete(fd: number): boolean {
  const size = fstatSync(fd).size;
  return size === 0 || isAllocated(fd, 0, size);
}
