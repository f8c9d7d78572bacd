// Writing extended attributes for test fixtures, through setfattr(1) (Debian package attr,
// installed by scripts/setup.sh): Ondine itself only reads xattrs, so the addon has no call
// that writes them. Both act on a symlink itself, never its target (like lsetxattr).
import { execFileSync } from 'node:child_process';

function setfattr(args: string[]): void {
  execFileSync('setfattr', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Sets attribute `name` of `path` to `value` (any bytes; empty is fine). */
export function setXattr(path: string, name: string, value: Uint8Array): void {
  const hex = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  setfattr(['-h', '-n', name, '-v', `0x${hex}`, '--', path]);
}

/** Removes attribute `name` of `path`; throws when it is not set. */
export function removeXattr(path: string, name: string): void {
  setfattr(['-h', '-x', name, '--', path]);
}
