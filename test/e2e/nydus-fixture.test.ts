// Compatibility with images made by Nydus's own builder: the RAFS v6 fixture pair in
// shared/fixtures/nydus-rafs-v6 is inspected, unpacked (every chunk verified: zstd, blake3)
// and mounted by the host kernel over the unpacked blob. A bit-flipped copy of the blob must
// fail verification without the bad chunk's bytes ever reaching the output file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { OndineError } from '../../src/errors.js';
import { parseBootstrap, type Bootstrap } from '../../src/format/bootstrap.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { unpackBlob } from '../../src/storage/unpack.js';
import { seekData, seekHole } from '../../src/native/index.js';
import { Cleanup, cli, cliOk, requireKernelFs, scratchDir, sharedDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { mountErofs } from '../helpers/kernel-mount.js';

const FIXTURES = join(sharedDir, 'fixtures', 'nydus-rafs-v6');
const BOOT = join(FIXTURES, 'rafs-v6-2.2.boot');
const BLOB_ID = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
const FILES = { '/lib.rs': 16931, '/sync_io.rs': 13400 } as const;

/** A file's bytes assembled from an uncompressed blob image through the bootstrap's chunk map. */
function fromUnpacked(b: Bootstrap, path: string, image: Buffer): Buffer {
  const ino = b.lookup(path);
  const out = Buffer.alloc(ino.size);
  for (const m of b.chunkMap(ino)) {
    if (m.chunk.blkaddr === 0xffffffff) continue;
    const at = m.chunk.blkaddr * 4096;
    image.copy(out, m.fileOffset, at, at + m.length);
  }
  return out;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the Nydus RAFS v6 fixture', { skip: existsSync(BOOT) ? false : `fixture ${BOOT} not found (set ONDINE_SHARED)` }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let b: Bootstrap;

  before(() => {
    work = scratchDir(suite, 'nydus');
    b = parseBootstrap(readFileSync(BOOT));
  });

  test('inspect --json lists /lib.rs (16931 bytes) and /sync_io.rs (13400) in one zstd/blake3 blob', async (t) => {
    const s = JSON.parse((await cliOk(['inspect', '--json', BOOT])).stdout) as {
      rafs: boolean; chunkSize: number;
      blobs: Array<{ blobId: string; compressor: string; digest: string; chunkCount: number; uncompressedSize: number; compressedSize: number }>;
      tree: Array<{ path: string; size: number; mode: string }>;
    };
    assert.equal(s.rafs, true);
    assert.equal(s.chunkSize, 1 << 20);
    const files = Object.fromEntries(s.tree.filter((f) => f.mode.startsWith('10')).map((f) => [f.path, f.size]));
    assert.deepEqual(files, FILES);
    assert.equal(s.blobs.length, 1);
    assert.deepEqual(
      { id: s.blobs[0]!.blobId, c: s.blobs[0]!.compressor, d: s.blobs[0]!.digest, n: s.blobs[0]!.chunkCount, u: s.blobs[0]!.uncompressedSize, z: s.blobs[0]!.compressedSize },
      { id: BLOB_ID, c: 'zstd', d: 'blake3', n: 2, u: 36864, z: 14554 },
    );
    t.diagnostic(`inspect: ${s.tree.length} entries, blob ${BLOB_ID.slice(0, 12)}… zstd/blake3, 2 chunks`);
  });

  test('unpack verifies both chunks and the kernel mount serves the same bytes', { skip: skipUnlessRoot }, async (t) => {
    requireKernelFs('erofs');
    const out = join(work, 'unpacked');
    const r = await cliOk(['unpack', BOOT, '--blobs', FIXTURES, '-o', out]);
    assert.match(r.stdout, /2 chunks, all verified/);
    const image = readFileSync(join(out, BLOB_ID));
    assert.equal(image.length, 36864);

    const m = await mountErofs(t, BOOT, [join(out, BLOB_ID)], join(work, 'mnt'));
    assert.deepEqual(readdirSync(m.dir).sort(), ['lib.rs', 'sync_io.rs']);
    for (const [path, size] of Object.entries(FILES)) {
      const viaKernel = readFileSync(join(m.dir, path));
      const viaUs = fromUnpacked(b, path, image);
      assert.equal(viaKernel.length, size, `${path} size through the kernel`);
      assert.equal(sha(viaKernel), sha(viaUs), `${path}: kernel and our chunk map disagree`);
      assert.ok(viaKernel.subarray(0, 12).toString() === '// Copyright', `${path} is Rust source: starts ${JSON.stringify(viaKernel.subarray(0, 20).toString())}`);
      assert.ok(!viaKernel.includes(0), `${path} is text (no NUL bytes)`);
      assert.equal(statSync(join(m.dir, path)).mode & 0o7777, 0o644);
      t.diagnostic(`${path}: ${size} bytes, sha256 ${sha(viaKernel).slice(0, 16)}… equal through the kernel and through our chunk map`);
    }
  });

  for (const bad of [0, 1]) {
    test(`a bit flip inside compressed chunk ${bad} fails verification; its range stays a hole, the other chunk is written`, async (t) => {
      const good = join(work, `good-${bad}`);
      await cliOk(['unpack', BOOT, '--blobs', FIXTURES, '-o', good]);
      const goodImage = readFileSync(join(good, BLOB_ID));

      const chunks = [...b.chunks].sort((x, y) => x.compressedOffset - y.compressedOffset);
      assert.equal(chunks.length, 2);
      const victim = chunks[bad]!;
      const other = chunks[1 - bad]!;
      const blobDir = join(work, `flipped-${bad}`);
      mkdirSync(blobDir);
      const blob = readFileSync(join(FIXTURES, BLOB_ID));
      const at = victim.compressedOffset + Math.floor(victim.compressedSize / 2);
      blob[at]! ^= 0x10;
      writeFileSync(join(blobDir, BLOB_ID), blob);

      // Through the CLI: exit 2 with a typed error.
      const out = join(work, `bad-out-${bad}`);
      const r = await cli(['unpack', BOOT, '--blobs', blobDir, '-o', out]);
      assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
      assert.match(r.stderr, /\[ONDINE_ERR_(DIGEST_MISMATCH|CORRUPT)\]/);
      assert.match(r.stdout, /1 FAILED/);

      // Through the library: exactly the flipped chunk fails, with a typed error.
      const source = new LocalDirSource(blobDir);
      const out2 = join(work, `bad-lib-${bad}`);
      const res = await unpackBlob(b, b.blobs[0]!, source, out2).finally(() => source.close());
      assert.equal(res.failures.length, 1);
      const f = res.failures[0]!;
      assert.ok(f instanceof OndineError && ['ONDINE_ERR_DIGEST_MISMATCH', 'ONDINE_ERR_CORRUPT'].includes(f.code), `failure is typed: ${String(f)}`);

      for (const file of [join(out, BLOB_ID), out2]) {
        const img = readFileSync(file);
        assert.equal(img.length, 36864);
        const v0 = victim.uncompressedOffset;
        const v1 = v0 + victim.uncompressedSize;
        assert.ok(!img.subarray(v0, v1).some((x) => x !== 0), 'the bad chunk range reads zeros');
        const o0 = other.uncompressedOffset;
        const o1 = o0 + other.uncompressedSize;
        assert.ok(img.subarray(o0, o1).equals(goodImage.subarray(o0, o1)), 'the good chunk is written intact');
        // The bad range is a hole, not written zeros: SEEK_DATA skips it, the file holds only
        // the good chunk's blocks.
        const fd = openSync(file, 'r');
        try {
          const firstData = seekData(fd, v0);
          assert.ok(firstData === -1 || firstData >= v1 - (v1 % 4096), `SEEK_DATA from ${v0} lands at ${firstData}, inside the bad chunk`);
          assert.equal(seekHole(fd, v0), v0, 'a hole starts at the bad chunk');
          assert.ok(seekData(fd, o0) === o0 - (o0 % 4096), 'the good chunk is data');
        } finally {
          closeSync(fd);
        }
        const allocated = statSync(file).blocks * 512;
        assert.ok(allocated <= Math.ceil(other.uncompressedSize / 4096) * 4096, `${allocated} bytes allocated: more than the good chunk`);
      }
      t.diagnostic(`flipped byte ${at} (chunk ${bad}: compressed ${victim.compressedOffset}+${victim.compressedSize}); failure: ${f.message}`);
    });
  }
});
