// Confinement of archive member names to the image root. Pure: a raw name in, the list of
// components out, or an UnsafePathError. The policy, applied to entry names and hardlink
// targets alike:
//   - leading '/' is stripped (the name is made relative, as tar does) and reported as a warning;
//   - empty and '.' components are dropped, so './a//b/' is 'a/b';
//   - '..' removes the previous component lexically ('a/../b' is 'b'); a '..' that would climb
//     above the root is rejected, never clamped, because a member that tries it is hostile;
//   - a NUL byte is rejected (it cannot be a Linux name; only PAX records can carry one).
// Symlinks are not consulted here; the layer applier refuses to walk through them.
import { UnsafePathError, type EntryContext } from './errors.js';

export interface NormalisedPath {
  /** Components below the root; empty for the root itself. */
  components: string[];
  /** The name was absolute and has been made relative. */
  wasAbsolute: boolean;
}

export function normaliseMemberPath(raw: string, ctx: EntryContext): NormalisedPath {
  if (raw.includes('\0')) throw new UnsafePathError(ctx, raw, 'contains a NUL byte');
  const wasAbsolute = raw.startsWith('/');
  const components: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (components.length === 0) throw new UnsafePathError(ctx, raw, "'..' climbs above the image root");
      components.pop();
      continue;
    }
    components.push(part);
  }
  return { components, wasAbsolute };
}

export function joinComponents(components: readonly string[]): string {
  return `/${components.join('/')}`;
}
