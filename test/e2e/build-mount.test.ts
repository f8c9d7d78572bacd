// Host end-to-end: `ondine build` of a tree holding every kind of file, `ondine unpack`, and
// the real kernel mounting the bootstrap over the unpacked blobs (file-backed EROFS, no loop
// device). The kernel's view must equal the source in every attribute a user can see.
// fsck.erofs (erofs-utils 1.8.6 built by scripts/build-erofs-utils.sh, and Debian's 1.5) checks
// each image and, extracting it, is a second independent reader. Also: byte-identical output
// for the same input, and dedup storing repeated chunks once.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { BuildResult } from '../../src/builder/builder.js';
import { Cleanup, cli, cliOk, erofsTools, requireKernelFs, scratchDir, skipUnlessRoot, type ErofsTools } from '../helpers/e2e-env.js';
import { makeEveryKindTree, Prng, textBytes, writeSparse, type EveryKindTree } from '../helpers/image-fixtures.js';
import { unpackAndMount } from '../helpers/kernel-mount.js';
import { assertSameTree } from '../helpers/tree-compare.js';
import { fsckCheck, fsckExtractAndCompare } from '../helpers/fsck-oracle.js';

interface Config {
  compressor: 'zstd' | 'lz4' | 'none';
  digest: 'blake3' | 'sha256';
  chunkSize: string;
  bytes: number;
}

// Every compressor, digest and chunk size appears at least once.
const CONFIGS: Config[] = [
  { compressor: 'zstd', digest: 'blake3', chunkSize: '1M', bytes: 1 << 20 },
  { compressor: 'lz4', digest: 'sha256', chunkSize: '64K', bytes: 64 << 10 },
  { compressor: 'none', digest: 'blake3', chunkSize: '4K', bytes: 4 << 10 },
];
const label = (c: Config) => `${c.compressor}/${c.digest}/${c.chunkSize}`;
const INSPECT_NAME = { zstd: 'zstd', lz4: 'lz4block', none: 'none' } as const;

/** Distinct inodes of a tree (what the image's inode count must be). */
function countInodes(root: string): number {
  const seen = new Set<bigint>();
  const walk = (dir: Buffer) => {
    seen.add(lstatSync(dir, { bigint: true }).ino);
    for (const e of readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
      const abs = Buffer.concat([dir, Buffer.from('/'), e.name as unknown as Buffer]);
      if (e.isDirectory()) walk(abs);
      else seen.add(lstatSync(abs, { bigint: true }).ino);
    }
  };
  walk(Buffer.from(root));
  return seen.size;
}

async function buildCli(source: string, out: string, c: Config, extra: string[] = []): Promise<BuildResult> {
  const r = await cliOk(['build', source, '-o', out, '--compressor', c.compressor, '--digest', c.digest, '--chunk-size', c.chunkSize, '--json', ...extra]);
  return JSON.parse(r.stdout) as BuildResult;
}

describe('build → unpack → kernel EROFS mount', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let full: EveryKindTree;
  let small: EveryKindTree;
  let tools: ErofsTools;
  let inodes: number;
  const builds = new Map<string, string>();

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'build-mount');
    [full, small, tools] = await Promise.all([
      makeEveryKindTree(join(work, 'full'), { variant: 'full' }),
      makeEveryKindTree(join(work, 'small'), { variant: 'small', seed: 7 }),
      erofsTools(),
    ]);
    inodes = countInodes(full.root);
  });

  for (const c of CONFIGS) {
    test(`${label(c)}: the kernel's mount of the every-kind tree equals the source; fsck.erofs passes`, async (t) => {
      t.diagnostic(`oracle tools: ${tools.note}`);
      const out = join(work, `out-${c.chunkSize}`);
      const res = await buildCli(full.root, out, c);
      builds.set(label(c), out);
      assert.equal(res.blobs.length, 1, 'a directory build writes one blob');
      assert.equal(res.inodes, inodes, 'one image inode per distinct source inode');
      assert.ok(res.holeChunks > 0, 'the sparse files give hole chunks');
      assert.ok(res.dedupRatio > 1, `dedup ratio ${res.dedupRatio}: the tree holds duplicate files`);

      const insp = JSON.parse((await cliOk(['inspect', '--json', res.bootstrapPath])).stdout) as {
        inodes: number; chunkSize: number; blobs: Array<{ blobId: string; compressor: string; digest: string; chunkCount: number }>;
      };
      assert.equal(insp.inodes, inodes);
      assert.equal(insp.chunkSize, c.bytes);
      assert.deepEqual(insp.blobs.map((b) => [b.blobId, b.compressor, b.digest, b.chunkCount]),
        [[res.blobs[0]!.blobId, INSPECT_NAME[c.compressor], c.digest, res.blobs[0]!.chunkCount]]);
      // The blob's name is its sha256.
      const blob = readFileSync(join(out, 'blobs', res.blobs[0]!.blobId));
      assert.equal(createHash('sha256').update(blob).digest('hex'), res.blobs[0]!.blobId);

      const m = await unpackAndMount(t, out, join(work, `run-${c.chunkSize}`));
      await assertSameTree(t, `kernel mount (${label(c)}) vs source`, full.root, m.dir, { dirNlink: true });
      // Spot checks a comparison of two trees could miss if both were wrong the same way.
      assert.equal(lstatSync(join(m.dir, 'sparse/big-5G')).size, 5 * 2 ** 30 + 123);
      assert.equal(readdirSync(join(m.dir, full.manyDir!)).length, full.manyEntries);
      assert.ok(readdirSync(join(m.dir, 'names'), { encoding: 'buffer' }).some((n) => n.equals(full.invalidUtf8Name)));
      m.unmount();

      for (const fsck of new Set([tools.fsck, 'fsck.erofs'])) {
        const r = await fsckCheck(fsck, res.bootstrapPath, m.devices);
        assert.equal(r.code, 0, `${fsck} --device=… ${res.bootstrapPath} failed:\n${r.stdout}${r.stderr}`);
        t.diagnostic(`${fsck}: check passed`);
      }
    });
  }

  for (const c of CONFIGS) {
    test(`${label(c)}: fsck.erofs --extract reproduces the (small) every-kind tree`, async (t) => {
      // The small variant: fsck 1.8.6 cannot extract a file with a hole past 2 GiB (see fsck-oracle.ts).
      const out = join(work, `small-out-${c.chunkSize}`);
      await buildCli(small.root, out, c);
      const devices = (await unpackAndMount(t, out, join(work, `small-run-${c.chunkSize}`))).devices;
      await fsckExtractAndCompare(t, tools, small.root, join(out, 'bootstrap'), devices, c.bytes, join(work, `extract-${c.chunkSize}`), {
        emptyXattrFiles: small.emptyXattrFiles,
      });
    });
  }

  test('the same source built twice gives byte-identical bootstrap and blobs (2 workers vs 1)', async (t) => {
    const c = CONFIGS[0]!;
    let first = builds.get(label(c));
    if (first === undefined) {
      first = join(work, 'det-1');
      await buildCli(full.root, first, c);
    }
    const second = join(work, 'det-2');
    await buildCli(full.root, second, c, ['--workers', '1']);
    const a = readFileSync(join(first, 'bootstrap'));
    const b = readFileSync(join(second, 'bootstrap'));
    assert.ok(a.equals(b), `bootstraps differ (${a.length} vs ${b.length} bytes, first difference at ${a.findIndex((x, i) => x !== b[i])})`);
    const blobsA = readdirSync(join(first, 'blobs')).sort();
    const blobsB = readdirSync(join(second, 'blobs')).sort();
    assert.deepEqual(blobsA, blobsB);
    for (const id of blobsA) assert.ok(readFileSync(join(first, 'blobs', id)).equals(readFileSync(join(second, 'blobs', id))), `blob ${id} differs`);
    t.diagnostic(`compared ${a.length} bootstrap bytes and ${blobsA.length} blob(s) byte for byte`);
  });

  // Also the regression test for "dedupRatio negative when files have holes": the builder
  // counted a file's untouched (hole) chunks as holes but not as chunks.
  test('dedup: identical files across directories are stored once; holes do not skew the dedup ratio', async (t) => {
    const src = join(work, 'dedup-src');
    const prng = new Prng(99);
    const f1 = prng.bytes(256 << 10);
    const f2 = prng.bytes((100 << 10) + 1);
    const text = textBytes(prng, 50_000);
    for (const d of ['a', 'b', 'c/deeper']) {
      mkdirSync(join(src, d), { recursive: true });
      writeFileSync(join(src, d, 'f1'), f1);
      writeFileSync(join(src, d, 'f2'), f2);
      writeFileSync(join(src, d, 'text'), text);
    }
    writeFileSync(join(src, 'f1-twice'), Buffer.concat([f1, f1]));
    writeFileSync(join(src, 'unique'), prng.bytes(70_000));
    // Five hole chunks, then f1's first chunk again: one more reference, nothing new stored.
    writeSparse(join(src, 'sparse'), 6 * (64 << 10), [{ offset: 5 * (64 << 10), data: f1.subarray(0, 64 << 10) }]);

    // Independent count: sha256 of every non-zero 64 KiB chunk of every file.
    const cs = 64 << 10;
    const unique = new Map<string, number>();
    let refs = 0;
    let slots = 0;
    let holes = 0;
    const files = ['a', 'b', 'c/deeper'].flatMap((d) => ['f1', 'f2', 'text'].map((f) => join(src, d, f))).concat([join(src, 'f1-twice'), join(src, 'unique'), join(src, 'sparse')]);
    for (const f of files) {
      const data = readFileSync(f);
      for (let at = 0; at < data.length; at += cs) {
        const chunk = data.subarray(at, at + cs);
        slots++;
        if (!chunk.some((x) => x !== 0)) {
          holes++;
          continue;
        }
        refs++;
        unique.set(createHash('sha256').update(chunk).digest('hex'), chunk.length);
      }
    }
    const out = join(work, 'dedup-out');
    const res = await buildCli(src, out, { compressor: 'none', digest: 'sha256', chunkSize: '64K', bytes: cs });
    t.diagnostic(`${refs} chunk references, ${unique.size} distinct chunks; build says ${res.uniqueChunks} stored, dedup ratio ${res.dedupRatio.toFixed(3)}`);
    assert.deepEqual([res.chunks, res.holeChunks, res.chunkRefs], [slots, holes, refs], 'chunks, holes and references as counted from the source');
    assert.equal(res.uniqueChunks, unique.size);
    assert.equal(res.blobs[0]!.chunkCount, unique.size);
    assert.ok(Math.abs(res.dedupRatio - refs / unique.size) < 1e-9, `dedup ratio ${res.dedupRatio}, expected ${refs / unique.size}`);
    assert.ok(res.dedupRatio > 1);
    const insp = JSON.parse((await cliOk(['inspect', '--json', res.bootstrapPath])).stdout) as { dedupRatio: number; holes: number; chunkRefs: number };
    assert.deepEqual([insp.chunkRefs, insp.holes], [refs, holes], 'inspect reads the same references and holes back');
    assert.ok(Math.abs(insp.dedupRatio - res.dedupRatio) < 1e-9, `inspect's dedup ratio ${insp.dedupRatio} equals the build's ${res.dedupRatio}`);
    const aligned = [...unique.values()].reduce((n, len) => n + Math.ceil(len / 4096) * 4096, 0);
    assert.equal(res.blobs[0]!.uncompressedSize, aligned, 'the uncompressed blob holds each distinct chunk once');
    // Uncompressed chunks appear verbatim in the blob: f1's first chunk exactly once.
    const blob = readFileSync(join(out, 'blobs', res.blobs[0]!.blobId));
    const probe = f1.subarray(0, cs);
    const first = blob.indexOf(probe);
    assert.ok(first >= 0, 'f1 chunk 0 is in the blob');
    assert.equal(blob.indexOf(probe, first + 1), -1, 'f1 chunk 0 is stored only once');
    const m = await unpackAndMount(t, out, join(work, 'dedup-run'));
    await assertSameTree(t, 'kernel mount (dedup) vs source', src, m.dir, { dirNlink: true });
  });

  test('the CLI refuses a bad chunk size and compressor with exit code 2', async () => {
    const r = await cli(['build', small.root, '-o', join(work, 'bad-cs'), '--chunk-size', '3000']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /chunk size 3000 must be a power of two.*\[ONDINE_ERR_INVALID\]/);
    const r2 = await cli(['build', small.root, '-o', join(work, 'bad-comp'), '--compressor', 'brotli']);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /\[ONDINE_ERR_INVALID\]/);
  });
});
