// The syscalls the cachefiles front end makes, behind an interface so the handlers can be
// unit-tested with a recording fake. The real implementation is the addon; cache-file writes
// are storage's (one aligned pool for both front ends).
import { closeFd, devWrite, ioctlReadComplete } from '../../native/index.js';
import { CacheFileIo } from '../../storage/cache-file.js';

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

export class NativeKernelIo implements KernelIo {
  constructor(private readonly devFd: number, private readonly files = new CacheFileIo()) {}

  command(cmd: string): void {
    devWrite(this.devFd, cmd);
  }

  readComplete(anonFd: number, msgId: number): void {
    ioctlReadComplete(anonFd, msgId);
  }

  alloc(size: number): Uint8Array {
    return this.files.alloc(size);
  }

  write(anonFd: number, offset: number, data: Uint8Array): Promise<void> {
    return this.files.write(anonFd, offset, data);
  }

  isAllocated(anonFd: number, offset: number, length: number): boolean {
    return this.files.isAllocated(anonFd, offset, length);
  }

  close(anonFd: number): void {
    closeFd(anonFd);
  }
}
