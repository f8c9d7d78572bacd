// Seeded mutation fuzz of the real Nydus bootstrap, the blob's meta/TOC tail and a synthetic
// image with every inode kind: the only allowed outcomes are success or a coded OndineError.
// Each target runs in a worker with a watchdog, so a hang fails the test naming the case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import type { FuzzMessage, FuzzRequest } from './fuzz-worker.js';
import { exerciseBootstrap, exerciseBlob, guard } from './fuzz-harness.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { OndineError } from '../../src/errors.js';
import { fixture, assertOndine, rd16, wr16, wr32, wr64, BOOT_NAME, BLOB_ID, CORRUPT } from './support.js';

const SEED = 0x0d1e5eed;
/** A case that makes no progress for this long is a hang (cases take well under a millisecond). */
const STALL_MS = 5000;

function fuzz(req: FuzzRequest, signal: AbortSignal): Promise<Extract<FuzzMessage, { type: 'done' }>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./fuzz-worker.js', import.meta.url), { workerData: req });
    signal.addEventListener('abort', () => void worker.terminate(), { once: true });
    let last: { i: number; what: string } = { i: -1, what: '(not started)' };
    let lastAt = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastAt > STALL_MS) {
        clearInterval(watchdog);
        void worker.terminate();
        reject(new Error(`${req.target} case ${last.i} (seed 0x${req.seed.toString(16)}) hung: ${last.what}`));
      }
    }, 250);
    worker.on('message', (m: FuzzMessage) => {
      lastAt = Date.now();
      if (m.type === 'case') last = m;
      else { clearInterval(watchdog); resolve(m); void worker.terminate(); }
    });
    worker.on('error', (err) => { clearInterval(watchdog); reject(err); });
    worker.on('exit', (code) => { clearInterval(watchdog); if (code !== 0 && code !== 1) reject(new Error(`fuzz worker exited ${code} after case ${last.i}: ${last.what}`)); });
  });
}

function report(r: Extract<FuzzMessage, { type: 'done' }>): string {
  return r.failures.slice(0, 5).map((f) => `case ${f.i} [${f.what}]: ${f.error}`).join('\n\n');
}

test('fuzz: 2000 mutations of the Nydus bootstrap end in success or an OndineError', { timeout: 20_000 }, async (t) => {
  const r = await fuzz({ target: 'bootstrap', seed: SEED, count: 2000 }, t.signal);
  assert.deepEqual(r.failures.length, 0, report(r));
  // The fuzz must reach deep: many mutants still parse and walk, many are refused.
  assert.ok(r.parsed > r.total * 0.3, `only ${r.parsed} of ${r.total} parsed`);
  assert.ok(r.walkCompleted > r.total * 0.1, `only ${r.walkCompleted} walks completed`);
  assert.ok(r.parsed < r.total, 'some mutants are refused at parse');
});

test('fuzz: 1000 mutations of the blob\'s chunk-info header, chunk infos and TOC', { timeout: 20_000 }, async (t) => {
  const r = await fuzz({ target: 'blob', seed: SEED + 1, count: 1000 }, t.signal);
  assert.deepEqual(r.failures.length, 0, report(r));
});

test('fuzz: 800 mutations of a synthetic image with symlinks, devices, xattrs and multi-block dirs', { timeout: 20_000 }, async (t) => {
  const r = await fuzz({ target: 'synthetic', seed: SEED + 2, count: 800 }, t.signal);
  assert.deepEqual(r.failures.length, 0, report(r));
  assert.ok(r.walkCompleted > r.total * 0.1, `only ${r.walkCompleted} walks completed`);
});

test('the harness itself rejects non-Ondine errors', () => {
  assert.throws(() => guard(() => { throw new RangeError('x'); }), RangeError);
  assert.throws(() => guard(() => (undefined as unknown as { f(): void }).f()), TypeError);
  assert.equal(guard(() => { throw new OndineError('ONDINE_ERR_CORRUPT', 117, 'x'); }), 'ondine');
  assert.equal(guard(() => 1), 'ok');
});

// ---- targeted mutations of the fixture: loops, huge sizes, truncation everywhere ----

const boot = fixture(BOOT_NAME);
const ROOT = 12288; // nid 128 in meta block 2
const LIB = 12448; // nid 133
const DIRENTS = ROOT + 64; // root's inline directory data, right after its extended inode

test('fixture: a dirent pointing back at the root is refused as a directory loop', () => {
  const b = Buffer.from(boot);
  assert.equal(b.subarray(ROOT + 64 + rd16(b, DIRENTS + 24 + 8)).subarray(0, 6).toString(), 'lib.rs', 'lib.rs is the third entry');
  wr64(b, DIRENTS + 24, 128n);
  b[DIRENTS + 24 + 10] = 2; // EROFS_FT_DIR
  const bs = parseBootstrap(b);
  // Bounded, so a walk that fails to detect the loop fails this test instead of hanging it.
  assertOndine(() => { let n = 0; for (const _ of bs.walk()) if (++n > 100) throw new Error('walk does not terminate'); },
    CORRUPT, { structure: 'EROFS directory', message: /directory loop at "\/lib.rs"/ });
  assert.equal(exerciseBootstrap(b).walkCompleted, false);
});

test('fixture: a file inode turned into a directory over its chunk index is refused, not looped', () => {
  const b = Buffer.from(boot);
  wr16(b, LIB + 4, 0o040755);
  b[DIRENTS + 24 + 10] = 2;
  const s = exerciseBootstrap(b);
  assert.equal(s.parsed, true);
  assert.equal(s.walkCompleted, false);
});

test('fixture: huge sizes are refused, never allocated or looped over', () => {
  const cases: Array<[number, bigint, RegExp]> = [
    [ROOT + 8, 1n << 40n, /too large/],
    [ROOT + 8, (1n << 53n) - 1n, /too large/],
    [ROOT + 8, 0xffff_ffff_ffff_ffffn, /out of range/],
    [LIB + 8, 1n << 50n, /chunk indexes of inode 133/],
    [LIB + 8, (1n << 53n) - 1n, /chunk indexes of inode 133/],
  ];
  for (const [at, v, msg] of cases) {
    const b = Buffer.from(boot);
    wr64(b, at, v);
    assertOndine(() => {
      const bs = parseBootstrap(b);
      for (const { ino } of bs.walk()) if (ino.nid === 133) bs.chunkMap(ino);
    }, CORRUPT, { message: msg });
  }
  // Chunk size bits at their maximum: one 2^40-byte chunk, bounded work.
  const b = Buffer.from(boot);
  wr32(b, LIB + 16, 0x20 | 28);
  const bs = parseBootstrap(b);
  assert.equal(bs.chunkMap(bs.lookup('/lib.rs')).length, 1);
});

test('fixture: every truncation length is refused with an OndineError or parses', () => {
  for (let len = 0; len <= boot.length; len += 11) exerciseBootstrap(boot.subarray(0, len), { slots: false });
  const blob = fixture(BLOB_ID);
  const entry = parseBootstrap(boot).blobs[0]!;
  for (let len = 0; len <= blob.length; len += 5) exerciseBlob(blob.subarray(0, len), entry);
});

test('fixture: unmutated inputs exercise cleanly end to end', () => {
  const s = exerciseBootstrap(boot);
  assert.deepEqual(s, { parsed: true, walked: 3, walkCompleted: true });
  exerciseBlob(fixture(BLOB_ID), parseBootstrap(boot).blobs[0]!);
});
