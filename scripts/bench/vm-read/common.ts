// Shared by the host and guest halves of scripts/bench/vm-read.sh.
import { createHash } from 'node:crypto';

export { mulberry32 as rng } from '../../../test/helpers/prng.js';

/** One digest for a whole tree: sha256 over "path\0sha256\n" lines in path order. */
export function treeDigest(files: ReadonlyArray<{ path: string; sha256: string }>): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) h.update(`${f.path}\0${f.sha256}\n`);
  return h.digest('hex');
}

export interface Expected {
  big: { path: string; bytes: number; sha256: string };
  tree: { path: string; files: number; bytes: number; digest: string };
}
