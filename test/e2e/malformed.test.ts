// Hostile and damaged input, end to end:
//   - thousands of seeded mutations of bootstraps we build: reading them either works or fails
//     with an OndineError carrying a stable code; never another exception, never a hang;
//   - damaged blobs (chunk data, chunk-info table): unpack reports the failure and never writes
//     a bad chunk's bytes (its range stays a hole), good chunks are still written;
//   - the CLI refuses a truncated bootstrap with exit code 2 and names the structure;
//   - malicious layer tarballs fail the build with a typed error and write nothing outside
//     (or even inside) the output directory.
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import type { BuildResult } from '../../src/builder/builder.js';
import { OndineError } from '../../src/errors.js';
import { parseBootstrap, type Bootstrap } from '../../src/format/bootstrap.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { unpackBlob, type UnpackResult } from '../../src/storage/unpack.js';
import { seekData } from '../../src/native/index.js';
import { Cleanup, cli, cliOk, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { makeEveryKindTree, Prng, textBytes } from '../helpers/image-fixtures.js';
import { bootstrapRegions } from '../helpers/mutations.js';
import type { FuzzJob, FuzzMessage } from '../helpers/bootstrap-fuzz-worker.js';
import { tarball, type CraftEntry } from '../helpers/tar-craft.js';

const MUTATIONS_PER_IMAGE = 1500;
/**
 * A single mutation is parsed in about a millisecond. The watchdog only exists to turn a
 * parser stuck in a loop into a failure that names the mutation, instead of a hung run; it is
 * not a performance limit, so it is set two orders of magnitude above anything real.
 */
const STUCK_AFTER_MS = 120_000;

interface FuzzSummary {
  accepted: number;
  codes: Record<string, number>;
  bad: Array<{ index: number; desc: string; error: string }>;
  walkedInodes: number;
}

function runFuzz(job: FuzzJob): Promise<FuzzSummary> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('../helpers/bootstrap-fuzz-worker.js', import.meta.url), {
      workerData: job, resourceLimits: { maxOldGenerationSizeMb: 1024 },
    });
    const bad: FuzzSummary['bad'] = [];
    let current = -1;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        settled = true;
        void worker.terminate();
        reject(new Error(`parsing mutation ${current} of seed ${job.seed} did not finish: a loop in the reader`));
      }, STUCK_AFTER_MS);
    };
    arm();
    worker.on('message', (m: FuzzMessage) => {
      if (m.type === 'start') {
        current = m.index;
        arm();
      } else if (m.type === 'bad') {
        bad.push(m);
      } else {
        clearTimeout(timer);
        settled = true;
        resolve({ accepted: m.accepted, codes: m.codes, walkedInodes: m.walkedInodes, bad });
      }
    });
    worker.on('error', (err) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`fuzz worker died at mutation ${current}: ${err.message}`, { cause: err }));
      settled = true;
    });
    worker.on('exit', (code) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`fuzz worker exited with ${code} at mutation ${current}`));
    });
  });
}

/** The verdict on one unpack of a damaged blob, checked against the good unpack. */
function checkOutput(b: Bootstrap, blobIndex: number, good: Buffer, outPath: string, r: UnpackResult | undefined): { written: number; holes: number } {
  const img = readFileSync(outPath);
  assert.equal(img.length, good.length, 'the output has the blob\'s uncompressed size');
  const failed = new Set<number>();
  for (const f of r?.failures ?? []) {
    assert.ok(f instanceof OndineError, `unpack failure is an OndineError: ${String(f)}`);
    assert.ok(['ONDINE_ERR_DIGEST_MISMATCH', 'ONDINE_ERR_CORRUPT'].includes(f.code), `failure code ${f.code}`);
  }
  const fd = openSync(outPath, 'r');
  let written = 0;
  let holes = 0;
  try {
    for (const c of b.chunks.filter((x) => x.blobIndex === blobIndex)) {
      const s = c.uncompressedOffset;
      const e = s + c.uncompressedSize;
      const range = img.subarray(s, e);
      if (range.equals(good.subarray(s, e))) {
        // Good bytes; all-zero chunks are never stored, so "equal" is never a hole by accident.
        written++;
        continue;
      }
      failed.add(c.index);
      assert.ok(!range.some((x) => x !== 0), `chunk ${c.index} holds bytes that are neither the good data nor zeros`);
      const d = seekData(fd, s);
      assert.ok(d === -1 || d >= e, `chunk ${c.index} (${s}..${e}) is not a hole: SEEK_DATA found data at ${d}`);
      holes++;
    }
  } finally {
    closeSync(fd);
  }
  assert.equal(failed.size, r?.failures.length ?? failed.size, 'every chunk not written was reported, and only those');
  return { written, holes };
}

describe('malformed and hostile input', () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let images: Array<{ name: string; out: string; res: BuildResult }> = [];

  before(async () => {
    work = scratchDir(suite, 'malformed');
    const src = join(work, 'src');
    if (skipUnlessRoot === false) {
      await makeEveryKindTree(src, { variant: 'small', seed: 3 });
    } else {
      // Without root: no devices, owners or trusted xattrs, but the same shapes otherwise.
      const prng = new Prng(3);
      mkdirSync(join(src, 'd/e'), { recursive: true });
      for (let i = 0; i < 40; i++) writeFileSync(join(src, 'd', `f${i}`), prng.bytes(i * 3000));
      writeFileSync(join(src, 'd/e/text'), textBytes(prng, 200_000));
    }
    images = [];
    for (const [name, args] of [['zstd-sha256-4K', ['--chunk-size', '4K', '--digest', 'sha256']], ['none-blake3-64K', ['--chunk-size', '64K', '--compressor', 'none']]] as const) {
      const out = join(work, name);
      const res = JSON.parse((await cliOk(['build', src, '-o', out, '--json', ...args])).stdout) as BuildResult;
      images.push({ name, out, res });
    }
  });

  test(`${2 * MUTATIONS_PER_IMAGE} mutated bootstraps: read fully or refused with a typed, coded error`, async (t) => {
    for (const [k, img] of images.entries()) {
      const bootstrap = readFileSync(join(img.out, 'bootstrap'));
      const regions = bootstrapRegions(bootstrap);
      const s = await runFuzz({ bootstrap, regions, seed: 0x5eed + k, from: 0, to: MUTATIONS_PER_IMAGE });
      const refused = Object.values(s.codes).reduce((a, b) => a + b, 0);
      t.diagnostic(`${img.name}: ${bootstrap.length}-byte bootstrap, regions ${regions.map((r) => r.name).join(', ')}; ` +
        `${s.accepted} mutations read fully (${s.walkedInodes} inodes walked), ${refused} refused: ${JSON.stringify(s.codes)}, ${s.bad.length} untyped`);
      assert.deepEqual(s.bad.slice(0, 5).map((b) => `mutation ${b.index} (${b.desc}): ${b.error.split('\n').slice(0, 4).join(' | ')}`), [],
        `${s.bad.length} mutations ended in an exception that is not an OndineError`);
      assert.equal(s.accepted + refused + s.bad.length, MUTATIONS_PER_IMAGE);
      // The test is only worth something if mutations both pass and fail the reader.
      assert.ok(refused > MUTATIONS_PER_IMAGE / 10, 'enough mutations were refused');
      assert.ok(s.accepted > MUTATIONS_PER_IMAGE / 10, 'enough mutations still parsed (and were walked)');
    }
  });

  test('damaged chunk data: unpack reports it and leaves the bad chunks as holes', async (t) => {
    let runs = 0;
    let detected = 0;
    let holes = 0;
    for (const img of images) {
      const bootstrapPath = join(img.out, 'bootstrap');
      const b = parseBootstrap(readFileSync(bootstrapPath));
      const entry = b.blobs[0]!;
      const good = join(work, `${img.name}-good`);
      await cliOk(['unpack', bootstrapPath, '--blobs', join(img.out, 'blobs'), '-o', good]);
      const goodImage = readFileSync(join(good, entry.blobId));
      const blob = readFileSync(join(img.out, 'blobs', entry.blobId));
      const prng = new Prng(77);
      const chunks = b.chunks.filter((c) => c.blobIndex === 0);
      for (let i = 0; i < 24; i++) {
        const dir = join(work, `${img.name}-flip-${i}`);
        mkdirSync(dir);
        const bad = Buffer.from(blob);
        const victims = new Set<number>();
        for (let n = 1 + prng.int(3); n > 0; n--) {
          const c = prng.pick(chunks);
          bad[c.compressedOffset + prng.int(c.compressedSize)]! ^= 1 << prng.int(8);
          victims.add(c.index);
        }
        writeFileSync(join(dir, entry.blobId), bad);
        const source = new LocalDirSource(dir);
        const out = join(dir, 'out');
        const r = await unpackBlob(b, entry, source, out).finally(() => source.close());
        const v = checkOutput(b, 0, goodImage, out, r);
        runs++;
        holes += v.holes;
        if (r.failures.length) detected++;
        // Uncompressed chunks: every flip changes the data, so every victim must fail.
        if (entry.compressor === 0) assert.equal(r.failures.length, victims.size, `flips in chunks ${[...victims]} all detected`);
        assert.ok(r.failures.length <= victims.size, 'only damaged chunks fail');
      }
    }
    t.diagnostic(`${runs} damaged blobs: ${detected} with failures reported, ${holes} bad chunk ranges left as holes, no bad bytes written`);
    assert.ok(detected >= runs * 0.9, 'flips inside chunk data are detected');
  });

  test('damaged chunk-info table: unpack refuses or verifies, and never writes bad bytes', async (t) => {
    const outcomes = { thrown: 0, failures: 0, clean: 0 };
    for (const img of images) {
      const bootstrapPath = join(img.out, 'bootstrap');
      const b = parseBootstrap(readFileSync(bootstrapPath));
      const entry = b.blobs[0]!;
      const good = join(work, `${img.name}-good-ci`);
      await cliOk(['unpack', bootstrapPath, '--blobs', join(img.out, 'blobs'), '-o', good]);
      const goodImage = readFileSync(join(good, entry.blobId));
      const blob = readFileSync(join(img.out, 'blobs', entry.blobId));
      const prng = new Prng(4242);
      for (let i = 0; i < 40; i++) {
        const dir = join(work, `${img.name}-ci-${i}`);
        mkdirSync(dir);
        const bad = Buffer.from(blob);
        const at = entry.ciOffset + prng.int(entry.ciCompressedSize);
        bad[at]! ^= 1 << prng.int(8);
        writeFileSync(join(dir, entry.blobId), bad);
        const source = new LocalDirSource(dir);
        const out = join(dir, 'out');
        let r: UnpackResult | undefined;
        try {
          r = await unpackBlob(b, entry, source, out);
        } catch (err) {
          assert.ok(err instanceof OndineError, `a refused chunk-info table gives an OndineError: ${String(err)}`);
          outcomes.thrown++;
        } finally {
          await source.close();
        }
        if (r === undefined) {
          if (existsSync(out)) checkOutput(b, 0, goodImage, out, undefined);
          continue;
        }
        checkOutput(b, 0, goodImage, out, r);
        if (r.failures.length) outcomes.failures++;
        else outcomes.clean++;
      }
    }
    t.diagnostic(`80 chunk-info flips: ${outcomes.thrown} refused before writing, ${outcomes.failures} with chunk failures, ${outcomes.clean} harmless (output identical to the good unpack)`);
    assert.ok(outcomes.thrown + outcomes.failures > 0, 'damage to the chunk-info table is noticed');
  });

  test('the CLI refuses a truncated bootstrap with exit code 2 and names the structure', async (t) => {
    const full = readFileSync(join(images[0]!.out, 'bootstrap'));
    const cases: Array<[number, RegExp]> = [
      [0, /EROFS superblock/],
      [1100, /EROFS superblock at offset 1024/],
      [3000, /EROFS superblock block/],
    ];
    // Cut in the middle of the metadata too: whatever structure is cut must be named.
    const meta = bootstrapRegions(full).find((r) => r.name === 'metadata')!;
    cases.push([meta.start + 64, /(EROFS|RAFS) [a-z -]+ at offset \d+|EROFS [a-z ]+/]);
    for (const [len, want] of cases) {
      const path = join(work, `truncated-${len}`);
      writeFileSync(path, full.subarray(0, len));
      for (const args of [['inspect', path], ['unpack', path, '--blobs', join(images[0]!.out, 'blobs'), '-o', join(work, `tr-out-${len}`)]]) {
        const r = await cli(args);
        assert.equal(r.code, 2, `ondine ${args[0]} of a ${len}-byte bootstrap: exit ${r.code}, stderr ${r.stderr}`);
        assert.match(r.stderr, /^ondine: .*\[ONDINE_ERR_CORRUPT\]\n$/);
        assert.match(r.stderr, want);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      }
      t.diagnostic(`${len} bytes: ${(await cli(['inspect', path])).stderr.trim()}`);
    }
  });

  test('a RAFS v5 bootstrap (Nydus\'s older format) is refused by name, not as bad EROFS magic', async () => {
    // What `nydus-image create --fs-version 5` writes first: the RAFS magic, version 0x500,
    // an 8 KiB superblock size and a 1 MiB chunk size.
    const v5 = Buffer.alloc(8192);
    v5.writeUInt32LE(0x52414653, 0);
    v5.writeUInt32LE(0x500, 4);
    v5.writeUInt32LE(0x2000, 8);
    v5.writeUInt32LE(0x100000, 12);
    const path = join(work, 'rafs-v5.boot');
    writeFileSync(path, v5);
    const r = await cli(['inspect', path]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ondine: RAFS v5 is not supported: .*fs-version 6.*\[ONDINE_ERR_UNSUPPORTED\]\n$/);
    assert.doesNotMatch(r.stderr, /bad magic|\n\s+at /);
  });

  describe('malicious layer tarballs', () => {
    const cases: Array<{ name: string; entries: (outside: string) => CraftEntry[]; code: string; check?: (outside: string) => string[] }> = [
      {
        name: "entry '../../evil' climbing out of the root",
        entries: () => [{ name: 'ok', data: 'fine' }, { name: '../../pwned-relative', data: 'escaped' }],
        code: 'ONDINE_ERR_UNSAFE_PATH',
        check: (o) => [join(o, 'pwned-relative'), join(o, 'c1', 'pwned-relative')],
      },
      {
        name: 'entry a/../../../evil climbing out after a descent',
        entries: () => [{ name: 'a/', type: '5' }, { name: 'a/../../../pwned-descent', data: 'escaped' }],
        code: 'ONDINE_ERR_UNSAFE_PATH',
        check: (o) => [join(o, 'pwned-descent')],
      },
      {
        name: 'hardlink whose target climbs out of the root',
        entries: () => [{ name: 'passwd-link', type: '1', linkname: '../../../../../../etc/passwd' }],
        code: 'ONDINE_ERR_UNSAFE_PATH',
      },
      {
        name: 'hardlink to an absolute host path (made relative: not in the image)',
        entries: () => [{ name: 'shadow-link', type: '1', linkname: '/etc/shadow' }],
        code: 'ONDINE_ERR_HARDLINK_TARGET',
      },
      {
        name: 'file written through a symlink pointing outside',
        entries: (o) => [{ name: 'escape', type: '2', linkname: o }, { name: 'escape/pwned-through-symlink', data: 'escaped' }],
        code: 'ONDINE_ERR_SYMLINK_PARENT',
        check: (o) => [join(o, 'pwned-through-symlink')],
      },
      {
        name: 'file written through a relative symlink to ../..',
        entries: () => [{ name: 'up', type: '2', linkname: '../../..' }, { name: 'up/pwned-up', data: 'escaped' }],
        code: 'ONDINE_ERR_SYMLINK_PARENT',
      },
      {
        name: 'hardlink through a symlinked parent',
        entries: () => [{ name: 'etc-link', type: '2', linkname: '/etc' }, { name: 'pw', type: '1', linkname: 'etc-link/passwd' }],
        code: 'ONDINE_ERR_SYMLINK_PARENT',
      },
    ];

    for (const c of cases) {
      test(`${c.name}: build fails with ${c.code}, nothing is written`, async (t) => {
        const w = scratchDir(t, 'evil-tar');
        const outside = join(w, 'outside');
        mkdirSync(outside);
        const cwd = join(w, 'c1', 'c2');
        mkdirSync(cwd, { recursive: true });
        const layer = join(w, 'layer.tar');
        writeFileSync(layer, tarball(c.entries(outside)));
        const before = readdirSync(w, { recursive: true }).map(String).sort();
        const r = await cli(['build', layer, '-o', 'out'], { cwd });
        assert.equal(r.code, 2, `exit ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`\\[${c.code}\\]`));
        const afterList = readdirSync(w, { recursive: true }).map(String).sort();
        const created = afterList.filter((p) => !before.includes(p));
        // Only the (empty) output skeleton may appear: no bootstrap, no blob, no temp file.
        assert.deepEqual(created.filter((p) => !['c1/c2/out', 'c1/c2/out/blobs'].includes(p)), [], 'files written by the failed build');
        for (const p of [...(c.check?.(w) ?? []), join(outside, 'pwned-through-symlink')]) assert.ok(!existsSync(p), `${p} must not exist`);
        t.diagnostic(r.stderr.trim());
      });
    }

    // The build fails within milliseconds, so the chunk pool terminates workers that are still
    // loading the addon. Its module init then failed with the environment already stopping and
    // threw a C++ Napi::Error nothing could catch: SIGABRT instead of exit 2. With 16 workers
    // that happened in about one run in five before the fix, so 30 runs miss it in well under
    // one suite run in a hundred.
    test('a build that fails at once exits 2 every time while its chunk workers are still starting', async (t) => {
      const w = scratchDir(t, 'evil-tar-loop');
      const layer = join(w, 'layer.tar');
      writeFileSync(layer, tarball([{ name: 'ok', data: 'fine' }, { name: '../../pwned-relative', data: 'escaped' }]));
      for (let i = 0; i < 30; i++) {
        const r = await cli(['build', layer, '-o', join(w, 'out'), '--workers', '16']);
        assert.equal(r.signal, null, `run ${i}: killed by ${r.signal}: ${r.stderr}`);
        assert.equal(r.code, 2, `run ${i}: exit ${r.code}: ${r.stderr}`);
        assert.match(r.stderr, /^ondine: .*\[ONDINE_ERR_UNSAFE_PATH\]\n$/, `run ${i}`);
      }
    });

    test('an absolute member name is confined to the image root (with a warning), never written to the host', async (t) => {
      const w = scratchDir(t, 'abs-tar');
      const hostPath = join(w, 'pwned-absolute');
      const layer = join(w, 'layer.tar');
      writeFileSync(layer, tarball([{ name: hostPath, data: 'inside the image only' }]));
      const r = await cli(['build', layer, '-o', join(w, 'out'), '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /absolute member name made relative/);
      assert.ok(!existsSync(hostPath), `${hostPath} must not exist on the host`);
      const s = JSON.parse((await cliOk(['inspect', '--json', join(w, 'out', 'bootstrap')])).stdout) as { tree: Array<{ path: string; size: number }> };
      assert.ok(s.tree.some((e) => e.path === hostPath && e.size === 21), `the image holds ${hostPath} below its own root`);
      t.diagnostic(`warning: ${r.stderr.trim()}`);
    });
  });
});
