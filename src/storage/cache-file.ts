// Cache-file I/O shared by both front ends: block-aligned, tail-padded writes from a pool of
// aligned memory (cachefiles' anonymous fds are O_DIRECT; fanotify's event fds take the same
// writes), and presence by SEEK_DATA/SEEK_HOLE (only verified bytes are ever written, so
// "allocated" means "valid"). It knows fds and byte ranges, never kernel messages.
import { writeSync } from 'node:fs';
import { alignUp } from '../format/bytes.js';
import { BLOCK_SIZE } from '../format/constants.js';
import { alignedBuffer, pwriteAsync, seekData, seekHole } from '../native/index.js';
import type { RangeWriter } from './blob-cache.js';

/**
 * Writes up to this size go straight from the JS thread: a thread-pool round trip costs more
 * than a small write into the cache file (seen in the VM: ~1-3 ms per hop against well under
 * 1 ms for a 4 KiB O_DIRECT write), and a small write is what a waiting random reader needs.
 * Larger writes go to the thread pool, so verifying the next chunk overlaps the write.
 */
export const SYNC_WRITE_MAX = 64 << 10;

/**
 * Aligned buffers for O_DIRECT writes, reused by power-of-two size class: allocating (and
 * zeroing) fresh aligned memory for every write cost as much as copying the data in.
 */
export class AlignedPool {
  private readonly free = new Map<number, Buffer[]>();
  private readonly mine = new WeakSet<ArrayBufferLike>();
  private pooledBytes = 0;

  constructor(private readonly maxPooledBytes = 64 << 20) {}

  static sizeClass(size: number): number {
    let c = BLOCK_SIZE;
    while (c < size) c *= 2;
    return c;
  }

  /** `alignUp(size)` bytes of aligned memory; contents undefined. */
  take(size: number): Buffer {
    const cls = AlignedPool.sizeClass(Math.max(size, 1));
    let buf = this.free.get(cls)?.pop();
    if (buf) this.pooledBytes -= cls;
    else {
      buf = alignedBuffer(cls);
      this.mine.add(buf.buffer);
    }
    return buf.subarray(0, alignUp(Math.max(size, 1), BLOCK_SIZE));
  }

  /** Whether `buf` came from take() and starts where it did (so it is still aligned). */
  owns(buf: Uint8Array): boolean {
    return buf.byteOffset === 0 && this.mine.has(buf.buffer);
  }

  give(buf: Uint8Array): void {
    if (!this.owns(buf)) return;
    const cls = buf.buffer.byteLength;
    if (this.pooledBytes + cls > this.maxPooledBytes) return;
    const list = this.free.get(cls) ?? [];
    list.push(Buffer.from(buf.buffer, 0, cls));
    this.free.set(cls, list);
    this.pooledBytes += cls;
  }
}

/** Writes into cache files through whichever fd a call names; one pool for all of them. */
export class CacheFileIo {
  private readonly pool = new AlignedPool();

  /** Aligned memory that write() takes without copying. */
  alloc(size: number): Uint8Array {
    return this.pool.take(size);
  }

  /** Writes `data` at `offset` (block aligned), the tail zero-padded to a whole block. */
  write(fd: number, offset: number, data: Uint8Array): Promise<void> {
    // O_DIRECT needs aligned offset, length and memory.
    const length = alignUp(Math.max(data.length, 1), BLOCK_SIZE);
    let buf: Uint8Array;
    if (this.pool.owns(data) && data.length === length) {
      buf = data;
    } else {
      buf = this.pool.take(length);
      buf.set(data);
      buf.fill(0, data.length, length);
    }
    if (length > SYNC_WRITE_MAX) {
      return pwriteAsync(fd, buf, offset).then(() => this.pool.give(buf), (err: unknown) => {
        this.pool.give(buf);
        throw err;
      });
    }
    try {
      for (let done = 0; done < length;) {
        const n = writeSync(fd, buf, done, length - done, offset + done);
        if (n <= 0) throw new Error(`pwrite of the cache file made no progress at ${offset + done}`);
        done += n;
      }
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.pool.give(buf);
    }
  }

  /** Whether the file holds data over the whole range. */
  isAllocated(fd: number, offset: number, length: number): boolean {
    return isAllocated(fd, offset, length);
  }

  /** A writer through `fd`; close the fd with its closeWhenIdle(), never directly. */
  writer(fd: number): FdWriter {
    return new FdWriter(fd, this);
  }
}

/** The calls an FdWriter makes (CacheFileIo, or a front end's io with the same shape). */
export interface FdWriterIo {
  write(fd: number, offset: number, data: Uint8Array): Promise<void>;
  isAllocated(fd: number, offset: number, length: number): boolean;
  alloc?(size: number): Uint8Array;
}

/**
 * Writes into one cache file through one fd, and closes that fd only once no fill holds it
 * any more (read-ahead may still be writing after the fill that started it has answered).
 */
export class FdWriter implements RangeWriter {
  private holds = 0;
  private closer: (() => void) | undefined;

  /** Present when the io has aligned memory that write() takes without copying. */
  readonly alloc?: (size: number) => Uint8Array;

  constructor(readonly fd: number, private readonly io: FdWriterIo) {
    if (io.alloc) this.alloc = (size) => io.alloc!(size);
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.io.write(this.fd, offset, data);
  }

  isCached(offset: number, length: number): boolean {
    return this.io.isAllocated(this.fd, offset, length);
  }

  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.maybeClose();
    };
  }

  /** Runs `close` now if nothing holds the fd, else when the last hold is released. Once. */
  closeWhenIdle(close: () => void): void {
    this.closer ??= close;
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.holds > 0 || !this.closer) return;
    const close = this.closer;
    this.closer = () => undefined;
    close();
  }
}

/** Whether `fd` holds data over [offset, offset + length) (SEEK_DATA/SEEK_HOLE; false on error). */
export function isAllocated(fd: number, offset: number, length: number): boolean {
  try {
    if (seekData(fd, offset) !== offset) return false;
    const hole = seekHole(fd, offset);
    return hole >= offset + length;
  } catch {
    return false;
  }
}
