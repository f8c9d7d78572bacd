// Loads build/Release/ondine.node and describes it. The interface below is the hand-written
// type of the raw module: it trusts its callers, so only src/native/index.ts (which checks
// arguments first) should use it.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { NativeError } from './errors.js';

export interface RawFdPoller {
  close(): void;
  ref(): void;
  unref(): void;
  readonly closed: boolean;
}

export interface NativeBinding {
  setErrorClass(ctor: typeof NativeError): void;
  readonly constants: Readonly<Record<string, number>>;

  alignedBuffer(size: number, align: number): Buffer;

  lz4Decompress(src: Uint8Array, uncompressedSize: number): Buffer;
  lz4Compress(src: Uint8Array): Buffer;

  llistxattr(path: string | Uint8Array): string[];
  lgetxattr(path: string | Uint8Array, name: string): Buffer;

  seekData(fd: number, offset: number): number;
  seekHole(fd: number, offset: number): number;
  closeFd(fd: number): void;
  openat2(dirfd: number, path: string | Uint8Array, flags: number, mode: number, resolve: number): number;
  setCloexec(fd: number, on: boolean): void;
  devRead(fd: number, buf: Uint8Array): number;
  devWrite(fd: number, command: string): void;
  writeBuffer(fd: number, buf: Uint8Array): number;
  pwriteAsync(fd: number, buf: Uint8Array, offset: number): Promise<number>;

  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): void;
  umount2(target: string, flags: number): void;
  mountAsync(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): Promise<void>;
  umount2Async(target: string, flags: number): Promise<void>;
  mountErofsFileAsync(
    source: string,
    target: string,
    devices: string[],
    options: Array<[string, string]>,
  ): Promise<void>;

  openDevice(path: string): number;
  ioctlReadComplete(fd: number, msgId: number): void;

  FdPoller: new (fd: number, onReadable: (error?: NativeError) => void) => RawFdPoller;

  fanotifyInit(flags: number, eventFlags: number): number;
  fanotifyMark(fd: number, flags: number, mask: bigint, dirfd: number, path: string | null): void;

  socketpair(nonBlocking: boolean): [number, number];
  sendMessage(socketFd: number, buf: Uint8Array, fd: number): boolean;
  recvMessage(socketFd: number, buf: Uint8Array): { length: number; fd: number };
}

/** dist/src/native/binding.js -> <package root>/build/Release/ondine.node */
export const ADDON_PATH = fileURLToPath(
  new URL('../../../build/Release/ondine.node', import.meta.url),
);

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  let binding: NativeBinding;
  try {
    binding = require(ADDON_PATH) as NativeBinding;
  } catch (err) {
    throw new Error(
      `cannot load the ondine native addon from ${ADDON_PATH}: build it with ` +
        '`npm run build:native` (needs liblz4-dev and a C++ compiler)',
      { cause: err },
    );
  }
  // The addon constructs this class for every errno it reports, sync or async.
  binding.setErrorClass(NativeError);
  return binding;
}

export const binding: NativeBinding = load();
