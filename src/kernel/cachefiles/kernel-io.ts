// The syscalls the cachefiles front end makes, behind an interface so the handlers can be
// unit-tested with a recording fake. The real implementation is the addon.
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
  /** Whether the cache file holds data over the whole range (SEEK_DATA/SEEK_HOLE). */
  isAllocated(anonFd: number, offset: number, length: number): boolean;
  close(anonFd: number): void;
}

export class NativeKernelIo implements KernelIo {
  constructor(private readonly devFd: number) {}

  command(cmd: string): void {
    devWrite(this.devFd, cmd);
  }

  readComplete(anonFd: number, msgId: number): void {
    ioctlReadComplete(anonFd, msgId);
  }

  async write(anonFd: number, offset: number, data: Uint8Array): Promise<void> {
    // The cache file takes O_DIRECT writes: aligned offset, length and memory.
    const buf = alignedBuffer(alignUp(Math.max(data.length, 1), BLOCK_SIZE));
    buf.set(data);
    await pwriteAsync(anonFd, buf, offset);
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
