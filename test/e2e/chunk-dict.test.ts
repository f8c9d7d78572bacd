// Host end-to-end: an image B built with `--chunk-dict A/bootstrap` reuses image A's chunks.
// B's blob table lists A's blob, B's own blob holds only chunks A lacks, and the kernel,
// given A's blob (unpacked from A's directory) and B's (from B's), mounts B's exact tree.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { BuildResult } from '../../src/builder/builder.js';
import { Cleanup, cli, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { Prng, textBytes } from '../helpers/image-fixtures.js';
import { deviceBlobIds, mountErofs, unpackFromDirs } from '../helpers/kernel-mount.js';
import { assertSameTree } from '../helpers/tree-compare.js';

const CHUNK = 64 << 10;

function treeChunks(root: string): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const data = readFileSync(p);
        for (let at = 0; at < data.length; at += CHUNK) {
          const c = data.subarray(at, at + CHUNK);
          if (c.some((b) => b !== 0)) out.add(createHash('sha256').update(c).digest('hex'));
        }
      }
    }
  };
  walk(root);
  return out;
}

describe('chunk dict: image B reuses image A\'s chunks', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let treeA: string;
  let treeB: string;

  before(() => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'chunk-dict');
    treeA = join(work, 'tree-a');
    const prng = new Prng(31337);
    mkdirSync(join(treeA, 'lib'), { recursive: true });
    mkdirSync(join(treeA, 'share/doc'), { recursive: true });
    for (let i = 0; i < 10; i++) writeFileSync(join(treeA, 'lib', `lib${i}.so`), prng.bytes(50_000 + i * 30_000));
    for (let i = 0; i < 5; i++) writeFileSync(join(treeA, 'share/doc', `doc${i}.txt`), textBytes(prng, 10_000 + i * 70_000));
    writeFileSync(join(treeA, 'big.bin'), prng.bytes(16 * CHUNK + 100));
    writeFileSync(join(treeA, 'removed-in-b'), prng.bytes(90_000));

    // B: a copy with one chunk of big.bin rewritten, two files replaced, three new, one gone.
    treeB = join(work, 'tree-b');
    execFileSync('cp', ['-a', treeA, treeB]);
    const big = readFileSync(join(treeB, 'big.bin'));
    prng.bytes(CHUNK).copy(big, 7 * CHUNK);
    writeFileSync(join(treeB, 'big.bin'), big);
    writeFileSync(join(treeB, 'lib/lib3.so'), prng.bytes(120_000));
    writeFileSync(join(treeB, 'share/doc/doc1.txt'), textBytes(prng, 33_000));
    mkdirSync(join(treeB, 'new'));
    for (let i = 0; i < 3; i++) writeFileSync(join(treeB, 'new', `file${i}`), prng.bytes(40_000 + i));
    rmSync(join(treeB, 'removed-in-b'));
  });

  test('B lists A\'s blob, stores only new chunks, and mounts as B\'s tree', async (t) => {
    const outA = join(work, 'a');
    const outB = join(work, 'b');
    const resA = JSON.parse((await cliOk(['build', treeA, '-o', outA, '--chunk-size', '64K', '--json'])).stdout) as BuildResult;
    const resB = JSON.parse((await cliOk(['build', treeB, '-o', outB, '--chunk-size', '64K', '--chunk-dict', join(outA, 'bootstrap'), '--json'])).stdout) as BuildResult;
    assert.equal(resA.blobs.length, 1);
    const blobA = resA.blobs[0]!.blobId;

    const chunksA = treeChunks(treeA);
    const chunksB = treeChunks(treeB);
    const newInB = [...chunksB].filter((d) => !chunksA.has(d)).length;
    t.diagnostic(`A: ${chunksA.size} distinct chunks; B: ${chunksB.size} distinct, ${newInB} not in A; B's own blob: ${resB.blobs.find((b) => !b.fromDict)?.chunkCount} chunks`);

    // The blob table and device table list B's own blob, then A's.
    assert.deepEqual(resB.blobs.map((b) => [b.fromDict, b.fromDict ? b.blobId : 'own']), [[false, 'own'], [true, blobA]]);
    const own = resB.blobs[0]!;
    assert.deepEqual(await deviceBlobIds(join(outB, 'bootstrap')), [own.blobId, blobA]);
    assert.equal(own.chunkCount, newInB, 'B\'s blob holds exactly the chunks A does not have');
    assert.ok(newInB < chunksB.size / 2, 'most of B comes from A');
    assert.deepEqual(readdirSync(join(outB, 'blobs')), [own.blobId], 'A\'s blob is referenced, not copied');

    // Without A's blob, unpacking B fails with a typed error naming what is missing.
    const missing = await cli(['unpack', join(outB, 'bootstrap'), '--blobs', join(outB, 'blobs'), '-o', join(work, 'unpack-fail')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, new RegExp(`${blobA}.*\\[ONDINE_ERR_NOT_FOUND\\]`));

    const { paths } = await unpackFromDirs(join(outB, 'bootstrap'), [join(outB, 'blobs'), join(outA, 'blobs')], join(work, 'unpacked'));
    const m = await mountErofs(t, join(outB, 'bootstrap'), paths, join(work, 'mnt'));
    await assertSameTree(t, 'kernel mount of B (two blobs) vs tree B', treeB, m.dir, { dirNlink: true });
  });
});
