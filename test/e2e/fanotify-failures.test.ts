// Failures on the fanotify path end in EIO for the reader that needed the missing bytes, never
// in a hang or in zeros, and never leave corrupt bytes in the cache: a blob deleted or
// truncated in its blob dir after mount, a bit-flipped chunk, and the worker SIGKILLed ten
// times during cold reads (the supervisor holds the group, denies what the dead worker left
// at its deadline and starts a new worker that serves the same mounts), or stopped (SIGSTOP)
// so that only the supervisor's deadline can end the read.
import assert from 'node:assert/strict';
import { closeSync, cpSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { parseBootstrap } from '../../src/format/bootstrap.js';
import { seekData } from '../../src/native/index.js';
import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import type { ReadJob } from '../helpers/fanotify-reader.js';

const MiB = 1 << 20;
/** --read-timeout for these daemons: the supervisor's deadline is this + 5 s. */
const READ_TIMEOUT_MS = 3000;
/** A read that makes no progress for this long is a hang (well past the 8 s deadline). */
const STALL_MS = 30_000;

/** The blob id of an image directory made by `ondine build` (one blob). */
function onlyBlob(img: string): string {
  const ids = readdirSync(join(img, 'blobs'));
  assert.equal(ids.length, 1, `${img} has one blob`);
  return ids[0]!;
}

/** Whether [start, end) of a file holds no allocated data (SEEK_DATA finds none there). */
function isHole(path: string, start: number, end: number): boolean {
  const fd = openSync(path, 'r');
  try {
    const at = seekData(fd, start);
    return at === -1 || at >= end;
  } finally {
    closeSync(fd);
  }
}

describe('fanotify failures: EIO for that reader only, nothing corrupt cached', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let d: FanotifyDaemon;
  /** A healthy image mounted beside the broken ones, with its files' hashes. */
  let goodMnt: string;
  const goodFiles = new Map<string, string>();

  /** Builds an image of `files` (name → bytes) at <work>/<name>. */
  async function image(name: string, files: Record<string, Buffer>): Promise<string> {
    const src = join(work, `${name}-src`);
    mkdirSync(src, { recursive: true });
    for (const [f, b] of Object.entries(files)) writeFileSync(join(src, f), b);
    const img = join(work, name);
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    return img;
  }

  async function assertGoodImageReads(what: string): Promise<void> {
    dropCaches();
    const names = [...goodFiles.keys()];
    const r = await readInChild(work, names.map((n) => ({ path: join(goodMnt, n) })), { stallMs: STALL_MS });
    assert.equal(r.hung, false, `${what}: a read of the healthy image hung`);
    for (const o of r.outcomes) assert.deepEqual({ file: names[o.i], result: o.result, sha: o.sha }, { file: names[o.i], result: 'ok', sha: goodFiles.get(names[o.i]!) }, `${what}: the healthy image reads right`);
  }

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'fan-fail');
    d = await startFanotifyDaemon(suite, work, { readTimeoutMs: READ_TIMEOUT_MS });
    const files = { 'a.bin': pseudoRandomBytes(10, 3 * MiB + 5), 'b.txt': Buffer.from('healthy\n') };
    for (const [f, b] of Object.entries(files)) goodFiles.set(f, sha256(b));
    goodMnt = join(work, 'mnt-good');
    await d.mount(await image('good', files), goodMnt);
  });

  for (const how of ['deleted', 'truncated to nothing'] as const) {
    test(`a blob ${how} in the blob dir after mount: a cold read gets EIO (no hang, no zeros); another image keeps working`, async () => {
      const name = how === 'deleted' ? 'gone' : 'empty';
      const data = pseudoRandomBytes(how.length, 2 * MiB + 77);
      const img = await image(name, { 'data.bin': data });
      const blobId = onlyBlob(img);
      const mnt = join(work, `mnt-${name}`);
      await d.mount(img, mnt);
      const workerBefore = (await d.status()).workerPid;
      if (how === 'deleted') rmSync(join(img, 'blobs', blobId));
      else writeFileSync(join(img, 'blobs', blobId), '');
      dropCaches();
      const r = await readInChild(work, [{ path: join(mnt, 'data.bin') }], { stallMs: STALL_MS });
      assert.equal(r.hung, false, `reading data.bin of an image whose blob was ${how} hung`);
      const o = r.outcomes[0];
      if (how === 'deleted' && o?.result === 'ok') {
        // The daemon opened the blob at mount (to load its chunk map) and still holds it: an
        // unlinked file keeps its bytes for an open fd, so the right bytes are a fine outcome.
        assert.equal(o.sha, sha256(data), 'a deleted blob still open in the daemon served wrong bytes');
        await d.umount(mnt);
        return;
      }
      assert.equal(o?.result, 'EIO', `reading data.bin of an image whose blob was ${how}: ${JSON.stringify(o)}`);
      assert.equal(o?.zeroBlocks, 0, 'no block of zeros was returned before the EIO');
      const s = await d.status();
      assert.equal(s.workerPid, workerBefore, 'the worker did not crash');
      const cacheFile = s.mounts.find((m) => m.mountpoint === mnt)!.blobs[0]!.cacheFile;
      await assertGoodImageReads(`after the ${how} blob`);
      await d.umount(mnt);
      assert.ok(isHole(cacheFile, 0, 2 * MiB + 77), `the cache file ${cacheFile} holds no data for the failed blob`);
    });
  }

  test('a bit-flipped chunk: that file gets EIO, its cache range stays a hole, other files of the image read right', async () => {
    const files = { 'bad.bin': pseudoRandomBytes(20, 3 * MiB), 'ok.bin': pseudoRandomBytes(21, MiB + 3), 'ok.txt': Buffer.from('fine\n') };
    const img = await image('flip-src-img', files);
    const blobId = onlyBlob(img);
    // A copy of the image whose blob has one byte flipped inside bad.bin's second chunk.
    const bad = join(work, 'flipped');
    cpSync(img, bad, { recursive: true });
    const b = parseBootstrap(readFileSync(join(img, 'bootstrap')));
    const m = b.chunkMap(b.lookup('/bad.bin'))[1]!;
    const ct = b.chunks.find((c) => c.blobIndex === m.chunk.deviceId - 1 && c.index === m.chunk.blobCiIndex)!;
    const blobPath = join(bad, 'blobs', blobId);
    const blob = readFileSync(blobPath);
    blob[ct.compressedOffset + (ct.compressedSize >> 1)]! ^= 0x10;
    writeFileSync(blobPath, blob);

    const mnt = join(work, 'mnt-flipped');
    await d.mount(bad, mnt);
    const cacheFile = (await d.status()).mounts.find((x) => x.mountpoint === mnt)!.blobs[0]!.cacheFile;
    dropCaches();
    const jobs: ReadJob[] = [
      { path: join(mnt, 'bad.bin'), offset: MiB, length: MiB },
      { path: join(mnt, 'bad.bin') },
      { path: join(mnt, 'bad.bin'), offset: 0, length: MiB },
      { path: join(mnt, 'bad.bin'), offset: 2 * MiB, length: MiB },
      { path: join(mnt, 'ok.bin') },
      { path: join(mnt, 'ok.txt') },
    ];
    const r = await readInChild(work, jobs, { stallMs: STALL_MS });
    assert.equal(r.hung, false, 'a read of the image with a corrupt chunk hung');
    const got = r.outcomes.map((o) => (o.result === 'ok' ? o.sha : o.result));
    assert.deepEqual(got, [
      'EIO', 'EIO',
      sha256(files['bad.bin'].subarray(0, MiB)), sha256(files['bad.bin'].subarray(2 * MiB)),
      sha256(files['ok.bin']), sha256(files['ok.txt']),
    ], 'the corrupt chunk reads EIO (alone and as part of the file); the chunks around it and the other files read right');
    const start = m.chunk.blkaddr * 4096;
    assert.ok(isHole(cacheFile, start, start + MiB), `the corrupt chunk's range [${start}, ${start + MiB}) of ${cacheFile} stays a hole`);
    assert.equal(isHole(cacheFile, 0, start), false, 'the good chunk before it was cached (the check can see data)');
    await assertGoodImageReads('after the corrupt chunk');
    await d.umount(mnt);
    assert.ok(isHole(cacheFile, start, start + MiB), `after umount the corrupt chunk's range of ${cacheFile} is still a hole`);
  });
});

describe('fanotify kill test: SIGKILL the worker during cold reads', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());

  test('10 kills: every read returns the right bytes or EIO, never zeros, never a hang; the service comes back each time', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'fan-kill');
    const ROUNDS = 10;
    const SLICE = 8 * MiB; // read cold while the worker is killed
    const CHECK = MiB; // read cold after the new worker is up
    const big = pseudoRandomBytes(30, ROUNDS * (SLICE + CHECK));
    const src = join(work, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'big.bin'), big);
    const small = new Map<string, Buffer>();
    for (let r = 0; r < ROUNDS; r++) {
      mkdirSync(join(src, `r${r}`));
      for (let f = 0; f < 60; f++) {
        const rel = `r${r}/f${f}`;
        small.set(rel, pseudoRandomBytes(1000 + r * 100 + f, 2000 + ((f * 389) % 9000)));
        writeFileSync(join(src, rel), small.get(rel)!);
      }
    }
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    const d = await startFanotifyDaemon(suite, work, { readTimeoutMs: READ_TIMEOUT_MS });
    const mnt = join(work, 'mnt');
    await d.mount(join(work, 'img'), mnt);
    const { supervisorPid } = await d.status();
    assert.ok(supervisorPid, 'the daemon runs under the supervisor');

    const counts = { ok: 0, eio: 0, afterKill: 0 };
    const problems: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const base = round * (SLICE + CHECK);
      const bigJobs: ReadJob[] = Array.from({ length: SLICE / MiB }, (_, i) => ({ path: join(mnt, 'big.bin'), offset: base + i * MiB, length: MiB }));
      const smallNames = [...small.keys()].filter((k) => k.startsWith(`r${round}/`));
      const smallJobs: ReadJob[] = smallNames.map((n) => ({ path: join(mnt, n) }));
      const expectBig = bigJobs.map((j) => sha256(big.subarray(j.offset!, j.offset! + j.length!)));
      const expectSmall = smallNames.map((n) => sha256(small.get(n)!));
      const { workerPid } = await d.status();
      dropCaches();
      // Kill the worker as soon as either reader has finished its first read: the rest are in flight.
      let killedAt = -1;
      let done = 0;
      const kill = () => {
        if (killedAt >= 0) return;
        killedAt = done;
        process.kill(workerPid, 'SIGKILL');
      };
      const onProgress = () => {
        done++;
        kill();
      };
      const [rb, rs] = await Promise.all([
        readInChild(work, bigJobs, { stallMs: STALL_MS, onProgress }),
        readInChild(work, smallJobs, { stallMs: STALL_MS, onProgress }),
      ]);
      kill(); // both readers failed at once: still kill, the restart is what is checked next
      counts.afterKill += bigJobs.length + smallJobs.length - killedAt;
      for (const [run, expect, label] of [[rb, expectBig, 'big.bin block'], [rs, expectSmall, 'small file']] as const) {
        if (run.hung) problems.push(`round ${round}: a ${label} read hung (no progress for ${STALL_MS / 1000} s)`);
        if (!run.hung && run.outcomes.length !== expect.length) problems.push(`round ${round}: ${label} reader stopped after ${run.outcomes.length}: ${run.stderr.slice(-300)}`);
        for (const o of run.outcomes) {
          if (o.result === 'EIO') counts.eio++;
          else if (o.result !== 'ok') problems.push(`round ${round}: ${label} ${o.i}: ${o.result}`);
          else if (o.sha === expect[o.i]) counts.ok++;
          else problems.push(`round ${round}: ${label} ${o.i}: wrong bytes${o.zeroBlocks ? ` (${o.zeroBlocks} blocks of zeros)` : ''}`);
        }
      }
      const s = await d.waitForWorker(workerPid);
      if (s.supervisorPid !== supervisorPid) problems.push(`round ${round}: supervisor changed ${supervisorPid} -> ${s.supervisorPid}`);
      const check = await readInChild(work, [{ path: join(mnt, 'big.bin'), offset: base + SLICE, length: CHECK }], { stallMs: STALL_MS });
      const want = sha256(big.subarray(base + SLICE, base + SLICE + CHECK));
      if (check.outcomes[0]?.result !== 'ok' || check.outcomes[0].sha !== want) {
        problems.push(`round ${round}: a cold read after the restart failed: ${JSON.stringify(check.outcomes[0]) ?? (check.hung ? 'hung' : check.stderr)}`);
      }
    }
    const s = await d.status();
    t.diagnostic(`${ROUNDS} kills: ${counts.ok} reads right, ${counts.eio} EIO, ${counts.afterKill} reads started or in flight after a kill; ` +
      `supervisor: ${JSON.stringify(s.fanotify?.supervisor)}`);
    assert.deepEqual(problems, [], `${problems.length} problems over ${ROUNDS} kills`);
    assert.equal(s.fanotify?.supervisor?.workerRestarts, ROUNDS, 'the supervisor restarted the worker once per kill');
    assert.ok(counts.afterKill > 0, 'some reads were still to do when the worker was killed');

    // Nothing wrong was cached: the whole image reads right now.
    dropCaches();
    const all = await readInChild(work, [{ path: join(mnt, 'big.bin') }, ...[...small.keys()].map((n) => ({ path: join(mnt, n) }))], { stallMs: STALL_MS });
    const wantAll = [sha256(big), ...[...small.values()].map(sha256)];
    assert.deepEqual(all.outcomes.map((o) => (o.result === 'ok' ? o.sha : o.result)), wantAll, 'after the kills every file reads right');
  });
  test('a worker that stops answering (SIGSTOP): the reader gets EIO at the supervisor deadline, not a hang; after SIGCONT reads work', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'fan-stop');
    const src = join(work, 'src');
    mkdirSync(src);
    const data = pseudoRandomBytes(50, 4 * MiB);
    writeFileSync(join(src, 'data.bin'), data);
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    const d = await startFanotifyDaemon(suite, work, { readTimeoutMs: READ_TIMEOUT_MS });
    const mnt = join(work, 'mnt');
    await d.mount(join(work, 'img'), mnt);
    const before = await d.status();
    dropCaches();
    process.kill(before.workerPid, 'SIGSTOP');
    let r;
    const started = Date.now();
    try {
      r = await readInChild(work, [{ path: join(mnt, 'data.bin'), offset: 0, length: MiB }], { stallMs: STALL_MS });
    } finally {
      process.kill(before.workerPid, 'SIGCONT');
    }
    assert.equal(r.hung, false, 'the read hung with the worker stopped');
    assert.equal(r.outcomes[0]?.result, 'EIO', `the read gets EIO once the supervisor's deadline passes: ${JSON.stringify(r.outcomes[0])}`);
    const after = await d.status();
    // Each event is denied at the deadline; the kernel may retry the read with more events.
    t.diagnostic(`EIO after ${Date.now() - started} ms; supervisor: ${JSON.stringify(after.fanotify?.supervisor)}`);
    assert.ok((after.fanotify?.supervisor?.deniedByDeadline ?? 0) > 0, 'the supervisor denied by deadline');
    assert.equal(after.supervisorPid, before.supervisorPid, 'the supervisor is the same');
    const again = await readInChild(work, [{ path: join(mnt, 'data.bin') }], { stallMs: STALL_MS });
    assert.deepEqual({ result: again.outcomes[0]?.result, sha: again.outcomes[0]?.sha }, { result: 'ok', sha: sha256(data) }, 'after SIGCONT the whole file reads right');
  });
});
