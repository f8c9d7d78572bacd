// fsck.erofs as an independent reader of our images: a plain check (`fsck.erofs --device=…`)
// and an extraction (`--extract`) compared with the source tree.
//
// What the extraction can and cannot reproduce, seen in erofs-utils' own code and runs here:
//   1.8.6 - an unmapped (hole) chunk becomes an lseek and the file is never ftruncate'd, so a
//           file whose last chunk is a hole comes out short: such files are checked as "the
//           extracted bytes are the source's prefix and the source is zeros after it".
//         - the lseek result is stored in an int, so a hole past 2 GiB fails the extraction.
//         - an xattr with an empty value stops that inode's xattr dump (`ret <= 0`).
//         - xattrs are set before lchown, and the kernel drops security.capability on chown.
//   1.5   - a hole chunk is skipped without a seek (a file beginning with a hole gets only
//           its tail), no xattrs, no hardlinks, and setuid/setgid cleared by a late chown.
// Our builder stores a chunk of zeros as a hole, so "hole" means "all-zero chunk" here.
import { closeSync, openSync, readSync, readdirSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

import type { ErofsTools } from './e2e-env.js';
import { run, type RunResult } from './e2e-env.js';
import { assertSameTree, showPath, type CompareStats } from './tree-compare.js';

export async function fsckCheck(fsck: string, bootstrap: string, devices: readonly string[]): Promise<RunResult> {
  return run(fsck, [...devices.map((d) => `--device=${d}`), bootstrap]);
}

interface ZeroChunks {
  /** Files (display paths) with at least one all-zero chunk. */
  any: Set<string>;
  /** Files whose last chunk is all zeros. */
  last: Set<string>;
}

function isZero(fd: number, offset: number, length: number, buf: Buffer): boolean {
  for (let at = offset; at < offset + length; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, offset + length - at), at);
    if (n === 0) return true;
    if (buf.subarray(0, n).some((b) => b !== 0)) return false;
    at += n;
  }
  return true;
}

/** Which regular files of `root` have all-zero chunks of `chunkSize` (small trees only). */
export function zeroChunks(root: string, chunkSize: number, maxFile = 256 << 20): ZeroChunks {
  const out: ZeroChunks = { any: new Set(), last: new Set() };
  const buf = Buffer.allocUnsafe(1 << 20);
  const walk = (rel: Buffer) => {
    const abs = Buffer.concat([Buffer.from(root), rel]);
    for (const name of readdirSync(abs, { encoding: 'buffer' })) {
      const childRel = Buffer.concat([rel, Buffer.from('/'), name]);
      const childAbs = Buffer.concat([Buffer.from(root), childRel]);
      const st = lstatSync(childAbs);
      if (st.isDirectory()) walk(childRel);
      if (!st.isFile() || st.size === 0) continue;
      if (st.size > maxFile) throw new Error(`${showPath(childRel)}: ${st.size} bytes is too large for the extraction oracle`);
      const fd = openSync(childAbs, 'r');
      try {
        const n = Math.ceil(st.size / chunkSize);
        for (let i = 0; i < n; i++) {
          const len = Math.min(chunkSize, st.size - i * chunkSize);
          if (isZero(fd, i * chunkSize, len, buf)) {
            out.any.add(showPath(childRel));
            if (i === n - 1) out.last.add(showPath(childRel));
          }
        }
      } finally {
        closeSync(fd);
      }
    }
  };
  walk(Buffer.alloc(0));
  return out;
}

/**
 * `fsck.erofs --extract` of an image into `extractDir`, compared with `source` as far as the
 * oracle's version can reproduce it (see the header). Fails the test on any other difference.
 */
export async function fsckExtractAndCompare(
  t: { diagnostic(m: string): void }, tools: ErofsTools, source: string, bootstrap: string, devices: readonly string[],
  chunkSize: number, extractDir: string, opts: { emptyXattrFiles?: readonly string[] } = {},
): Promise<CompareStats> {
  const modern = tools.extractsLeadingHoles;
  const args = [...devices.map((d) => `--device=${d}`), `--extract=${extractDir}`, ...(modern ? ['--xattrs'] : []), bootstrap];
  const r = await run(tools.fsck, args);
  assert.equal(r.code, 0, `${tools.fsck} ${args.join(' ')} failed:\n${r.stderr.slice(-2000)}`);
  const zeros = zeroChunks(source, chunkSize);
  const emptyX = new Set(opts.emptyXattrFiles ?? []);
  let stats: CompareStats;
  if (modern) {
    let prefixChecked = 0;
    for (const rel of zeros.last) {
      const want = readFileSync(join(source, rel));
      const got = readFileSync(join(extractDir, rel));
      assert.ok(got.length <= want.length, `${rel}: extracted ${got.length} bytes, source has ${want.length}`);
      assert.ok(want.subarray(0, got.length).equals(got), `${rel}: extracted bytes are not the source's first ${got.length} bytes`);
      assert.ok(!want.subarray(got.length).some((b) => b !== 0), `${rel}: source has data after the ${got.length} bytes fsck wrote, fsck should have written it`);
      prefixChecked++;
    }
    stats = await assertSameTree(t, `fsck.erofs ${tools.version} --extract vs source`, source, extractDir, {
      skipContent: (rel) => (zeros.last.has(rel) ? 'ends in a hole: fsck does not extend the file' : undefined),
      xattrs: (name, rel) => name !== 'security.capability' && !emptyX.has(rel),
      dirNlink: true,
    });
    t.diagnostic(`fsck ${tools.version} extraction: ${prefixChecked} files ending in a hole checked as prefix + zeros; ` +
      `security.capability and the xattrs of ${emptyX.size} file(s) with an empty xattr value not comparable (fsck limits)`);
  } else {
    stats = await assertSameTree(t, `fsck.erofs ${tools.version} --extract vs source`, source, extractDir, {
      skipContent: (rel) => (zeros.any.has(rel) ? 'has a hole chunk: 1.5 mis-extracts it' : undefined),
      xattrs: false, hardlinks: false, modeMask: 0o1777,
    });
    t.diagnostic(`fsck 1.5 extraction: ${zeros.any.size} files with hole chunks (leading holes included) not compared: ${tools.note}`);
  }
  return stats;
}
