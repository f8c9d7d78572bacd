// Loads build/Release/ondine.node and describes it. The interface below is the hand-written
// type of the raw module: it trusts its callers, so only src/native/index.ts (which checks
// arguments first) should use it.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { OndineError } from '../errors.js';
import { NativeArgumentError, NativeError } from './errors.js';

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

  inotifyInit(): number;
  inotifyAddWatch(fd: number, path: string, mask: number): number;
  inotifyRmWatch(fd: number, wd: number): void;
  flockExclusive(fd: number, unlock: boolean): boolean;

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
    throw new OndineError(
      'ONDINE_ERR_INSTALL',
      undefined,
      `cannot load the ondine native addon from ${ADDON_PATH}: build it with ` +
        '`npm run build:native` (needs liblz4-dev and a C++ compiler)',
      { cause: err },
    );
  }
  // The addon constructs this class for every errno it reports, sync or async.
  binding.setErrorClass(NativeError);
  return asOndineArgumentErrors(binding);
}

/**
 * The addon checks its arguments again and throws a plain TypeError or RangeError: those
 * become NativeArgumentErrors (Ondine errors: one line in the CLI, never a stack), thrown by
 * functions and constructors alike; errno failures pass through as NativeErrors.
 */
function asOndineArgumentErrors(raw: NativeBinding): NativeBinding {
  const convert = (err: unknown): unknown =>
    err instanceof TypeError || err instanceof RangeError ? new NativeArgumentError(err.message, { cause: err }) : err;
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw as unknown as Record<string, unknown>)) {
    if (typeof value !== 'function') {
      wrapped[name] = value;
      continue;
    }
    const fn = value as (...a: unknown[]) => unknown;
    // Classes (FdPoller) are called with `new`; plain functions with their module as `this`.
    wrapped[name] = /^[A-Z]/.test(name)
      ? function construct(...args: unknown[]): object {
        try {
          return Reflect.construct(fn, args) as object;
        } catch (err) {
          throw convert(err);
        }
      }
      : (...args: unknown[]): unknown => {
        try {
          return fn.apply(raw, args);
        } catch (err) {
          throw convert(err);
        }
      };
  }
  return wrapped as unknown as NativeBinding;
}

export const binding: NativeBinding = load();
