// The syscalls the cachefiles front end makes, behind an interface so the handlers can be
// unit-tested with a recording fake. The real implementation is the addon.
import { writeSync } from 'node:fs';
import { alignUp } from '../../format/bytes.js';
import { BLOCK_SIZE } from '../../format/constants.js';
import {
  alignedBuffer, closeFd, devWrite, ioctlReadComplete, pwriteAsync, seekData, seekHole,
} from '../../native/index.js';

export interface KernelIo {
  command(cmd: string): void;
  readComplete(anonFd: number, msgId: number): void;
  /** O_DIRECT-safe write of `data` at `offset` (aligned copy, tail zero-padded). */
  write(anonFd: number, offset: number, data: Uint8Array): Promise<void>;
  /**
   * Block-aligned memory of at least `size` bytes (rounded up to a block; contents undefined)
   * that write() takes without copying. Once passed to write() it belongs to the io again.
   */
  alloc?(size: number): Uint8Array;
  /** Whether the cache file holds data over the whole range (SEEK_DATA/SEEK_HOLE). */
  isAllocated(anonFd: number, offset: number, length: number): boolean;
  close(anonFd: number): void;
}

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

export class NativeKernelIo implements KernelIo {
  private readonly pool = new AlignedPool();

  constructor(private readonly devFd: number) {}

  command(cmd: string): void {
    devWrite(this.devFd, cmd);
  }

  readComplete(anonFd: number, msgId: number): void {
    ioctlReadComplete(anonFd, msgId);
  }

  alloc(size: number): Uint8Array {
    return this.pool.take(size);
  }

  write(anonFd: number, offset: number, data: Uint8Array): Promise<void> {
    // The cache file takes O_DIRECT writes: aligned offset, length and memory.
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
      return pwriteAsync(anonFd, buf, offset).then(() => this.pool.give(buf), (err: unknown) => {
        this.pool.give(buf);
        throw err;
      });
    }
    try {
      for (let done = 0; done < length;) {
        const n = writeSync(anonFd, buf, done, length - done, offset + done);
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

  isAllocated(anonFd: number, offset: number, length: number): boolean {
    try {
      if (seekData(anonFd, offset) !== offset) return false;
      const hole = seekHole(anonFd, offset);
      return hole >= offset + length;
    } catch {
      return false;
    }
  }

  close(anonFd: number): void {
    closeFd(anonFd);
  }
}
