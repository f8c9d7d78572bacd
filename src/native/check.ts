// Argument checks run before any native call: the addon trusts its arguments, so a bad
// one must fail here with a clear message, never reach a syscall as a truncated integer.
import { NativeArgumentError } from './errors.js';

export const INT32_MAX = 0x7fffffff;
export const UINT32_MAX = 0xffffffff;

export function integer(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new NativeArgumentError(`${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new NativeArgumentError(`${name} must be in [${min}, ${max}], got ${value}`);
  }
  return value;
}

export function fd(value: unknown, name = 'fd'): number {
  return integer(value, name, 0, INT32_MAX);
}

/** A byte offset or size: non-negative and exact as a double. */
export function offset(value: unknown, name: string): number {
  return integer(value, name, 0, Number.MAX_SAFE_INTEGER);
}

export function bytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new NativeArgumentError(`${name} must be a Buffer or Uint8Array, got ${describe(value)}`);
  }
  return value;
}

export function string(value: unknown, name: string): string {
  if (typeof value !== 'string') {
    throw new NativeArgumentError(`${name} must be a string, got ${describe(value)}`);
  }
  if (value.includes('\0')) throw new NativeArgumentError(`${name} must not contain NUL bytes`);
  return value;
}

export function nonEmptyString(value: unknown, name: string): string {
  if (string(value, name) === '') throw new NativeArgumentError(`${name} must not be empty`);
  return value as string;
}

export function optionalString(value: unknown, name: string): string | null {
  return value === null || value === undefined ? null : string(value, name);
}

export type PathArg = string | Uint8Array;

/** A path as text, or as raw bytes for names that are not UTF-8. */
export function path(value: unknown, name = 'path'): PathArg {
  if (value instanceof Uint8Array) {
    if (value.includes(0)) throw new NativeArgumentError(`${name} must not contain NUL bytes`);
    if (value.length === 0) throw new NativeArgumentError(`${name} must not be empty`);
    return value;
  }
  return nonEmptyString(value, name);
}

export function pathText(p: PathArg): string {
  return typeof p === 'string' ? p : Buffer.from(p).toString('utf8');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  return `${typeof value} ${String(value)}`;
}
