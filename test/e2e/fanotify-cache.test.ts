// What the fanotify path fetches, counted at the source (status → sources): one small file of
// a 200 MB image costs a few percent of the blob; a daemon restarted on the same cache dir
// fetches nothing again, and a complete blob loses its mark so warm reads raise no event;
// 8 parallel readers over 5000 small files fetch every chunk exactly once.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { parseBootstrap } from '../../src/format/bootstrap.js';
import { loadBlobChunkMap } from '../../src/storage/blob-chunk-map.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import {
  dropCaches, pseudoRandomBytes, readInChild, sha256, sourceBytes, startFanotifyDaemon, totalSourceBytes, type DaemonStatus,
} from '../helpers/fanotify-daemon.js';
import type { ReadJob } from '../helpers/fanotify-reader.js';

/** sha256 of every regular file under `root`, by path relative to it. */
function hashFiles(root: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
    const r = join(rel, e.name);
    if (e.isDirectory()) for (const [k, v] of hashFiles(root, r)) out.set(k, v);
    else if (e.isFile()) out.set(r, sha256(readFileSync(join(root, r))));
  }
  return out;
}

/** Reads every file of `expected` under `mnt` in a child and lists what differs. */
async function readAll(work: string, mnt: string, expected: Map<string, string>, order?: (paths: string[]) => string[]): Promise<string[]> {
  const paths = order ? order([...expected.keys()]) : [...expected.keys()];
  const jobs: ReadJob[] = paths.map((p) => ({ path: join(mnt, p) }));
  const r = await readInChild(work, jobs);
  const bad: string[] = [];
  if (r.hung) bad.push(`a read hung (no progress for 60 s) after ${r.outcomes.length} of ${jobs.length} files`);
  for (const o of r.outcomes) {
    const p = paths[o.i]!;
    if (o.result !== 'ok') bad.push(`${p}: ${o.result}`);
    else if (o.sha !== expected.get(p)) bad.push(`${p}: wrong content (${o.zeroBlocks} zero blocks)`);
  }
  if (!r.hung && r.outcomes.length !== jobs.length) bad.push(`reader exited ${r.exit} after ${r.outcomes.length} of ${jobs.length}: ${r.stderr.slice(-500)}`);
  return bad;
}

function incompleteBlobs(s: DaemonStatus, mnt: string): string[] {
  const m = s.mounts.find((x) => x.mountpoint === mnt);
  if (!m) return [`no mount ${mnt} in status`];
  return m.blobs.filter((b) => !b.complete).map((b) => b.id);
}

describe('fanotify fetches, counted at the source', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;

  before(() => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'fan-cache');
  });

  test('reading one small file of a 200 MB image costs < 5% of the blob bytes', async (t) => {
    const src = join(work, 'big-src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'big.bin'), pseudoRandomBytes(1, 200 << 20));
    writeFileSync(join(src, 'etc/hostname'), 'ondine-lazy\n');
    for (let i = 0; i < 20; i++) writeFileSync(join(src, 'etc', `conf-${i}`), pseudoRandomBytes(100 + i, 3000 + i * 100));
    const img = join(work, 'big-img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    const [blobId] = readdirSync(join(img, 'blobs'));
    const blobBytes = statSync(join(img, 'blobs', blobId!)).size;
    assert.ok(blobBytes > 190e6, `the blob is ${blobBytes} bytes (want ~200 MB)`);

    const d = await startFanotifyDaemon(t, work);
    const mnt = join(work, 'mnt-big');
    await d.mount(img, mnt);
    dropCaches();
    // Mounting may read the blob's chunk-info table (its chunk map is loaded ahead of the
    // first read), nothing else.
    const ciBytes = parseBootstrap(readFileSync(join(img, 'bootstrap'))).blobs[0]!.ciCompressedSize;
    const atMount = totalSourceBytes(await d.status());
    assert.ok(atMount <= ciBytes, `mounting fetched ${atMount} bytes, more than the ${ciBytes}-byte chunk-info table`);
    const r = await readInChild(work, [{ path: join(mnt, 'etc/hostname') }]);
    assert.equal(r.outcomes[0]?.result, 'ok', `reading etc/hostname: ${JSON.stringify(r.outcomes[0])}`);
    assert.equal(r.outcomes[0]?.sha, sha256(Buffer.from('ondine-lazy\n')), 'etc/hostname has the right bytes');
    const fetched = sourceBytes(await d.status()).get(blobId!) ?? 0;
    t.diagnostic(`one 12-byte file cost ${fetched} of ${blobBytes} blob bytes (${((100 * fetched) / blobBytes).toFixed(3)}%)`);
    assert.ok(fetched > 0, 'the read was served from the source (source bytes counted)');
    assert.ok(fetched < 0.05 * blobBytes, `one small file cost ${fetched} of ${blobBytes} blob bytes (>= 5%)`);
    await d.umount(mnt);
  });

  test('a sequential cold read: reads the supervisor allows on its own reach the worker as read hints, and the bytes are right', async (t) => {
    const src = join(work, 'seq-src');
    mkdirSync(src, { recursive: true });
    const data = pseudoRandomBytes(7, 48 << 20);
    writeFileSync(join(src, 'seq.bin'), data);
    const img = join(work, 'seq-img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    const d = await startFanotifyDaemon(t, work);
    const mnt = join(work, 'mnt-seq');
    await d.mount(img, mnt);
    dropCaches();
    const r = await readInChild(work, [{ path: join(mnt, 'seq.bin') }]);
    assert.equal(r.outcomes[0]?.result, 'ok', JSON.stringify(r.outcomes[0]));
    assert.equal(r.outcomes[0]?.sha, sha256(data));
    const s = await d.status();
    t.diagnostic(`48 MiB read: ${s.fanotify?.supervisor?.events} events, ${s.fanotify?.supervisor?.forwarded} forwarded, ${s.fanotify?.hints} hints`);
    assert.ok((s.fanotify?.hints ?? 0) > 0, `no read hint reached the worker: ${JSON.stringify(s.fanotify)}`);
    assert.equal(s.fanotify?.denied, 0);
    await d.umount(mnt);
  });

  test('a daemon restarted on the same cache dir refetches nothing; a complete blob loses its mark and warm reads raise no event', async (t) => {
    const src = join(work, 'restart-src');
    mkdirSync(join(src, 'a/b'), { recursive: true });
    writeFileSync(join(src, 'one-chunk'), pseudoRandomBytes(2, 700_000));
    writeFileSync(join(src, 'a/three-chunks'), pseudoRandomBytes(3, (2 << 20) + 12_345));
    writeFileSync(join(src, 'a/b/tiny'), 'tiny\n');
    for (let i = 0; i < 30; i++) writeFileSync(join(src, 'a', `s${i}`), pseudoRandomBytes(200 + i, 1000 + 97 * i));
    const img = join(work, 'restart-img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    const expected = hashFiles(src);
    const cacheDir = join(work, 'restart-cache');
    const mnt = join(work, 'mnt-restart');

    const first = await startFanotifyDaemon(t, work, { cacheDir });
    await first.mount(img, mnt);
    dropCaches();
    assert.deepEqual(await readAll(work, mnt, expected), [], 'first daemon: every file reads right');
    const s1 = await first.status();
    const fetched1 = totalSourceBytes(s1);
    assert.ok(fetched1 > 0, 'the first daemon fetched from the source');
    assert.deepEqual(incompleteBlobs(s1, mnt), [], 'every blob is complete after reading every file (status mounts[].blobs[].complete)');
    const events1 = s1.fanotify?.supervisor?.events;
    assert.ok(events1 !== undefined && events1 > 0, `the supervisor counted events for the cold reads (${events1})`);
    dropCaches();
    assert.deepEqual(await readAll(work, mnt, expected), [], 'first daemon: warm re-read after drop_caches reads right');
    const s1b = await first.status();
    assert.equal(s1b.fanotify?.supervisor?.events, events1, 'a warm re-read of a complete blob raised no event (its mark is gone)');
    assert.equal(totalSourceBytes(s1b), fetched1, 'the warm re-read fetched nothing');
    await first.umount(mnt);
    assert.equal(await first.stop(), 0, 'the first daemon stopped cleanly');

    const second = await startFanotifyDaemon(t, work, { cacheDir });
    await second.mount(img, mnt);
    const s2a = await second.status();
    assert.deepEqual(incompleteBlobs(s2a, mnt), [], 'the second daemon found every blob complete in the cache dir');
    dropCaches();
    assert.deepEqual(await readAll(work, mnt, expected), [], 'second daemon: every file reads right');
    const s2 = await second.status();
    t.diagnostic(`first daemon fetched ${fetched1} bytes; second daemon ${totalSourceBytes(s2)} bytes, ${s2.fanotify?.supervisor?.events} events`);
    assert.equal(totalSourceBytes(s2), 0, 'the second daemon fetched nothing from the source');
    assert.equal(s2.fanotify?.supervisor?.events, 0, 'the second daemon saw no event (complete blobs are not marked)');
    await second.umount(mnt);
  });

  test('8 parallel readers over 5000 small files read all right and fetch each chunk once', async (t) => {
    const src = join(work, 'tree-src');
    const all = pseudoRandomBytes(4, 5000 * 2200);
    let at = 0;
    for (let dir = 0; dir < 50; dir++) {
      mkdirSync(join(src, `d${dir}`), { recursive: true });
      for (let f = 0; f < 100; f++) {
        const n = 100 + ((dir * 100 + f) * 37) % 2000;
        writeFileSync(join(src, `d${dir}`, `f${f}`), all.subarray(at, at + n));
        at += n;
      }
    }
    const img = join(work, 'tree-img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    const expected = hashFiles(src);
    assert.equal(expected.size, 5000);

    // What reading every chunk once costs: the chunk-info table plus each chunk's bytes.
    const b = parseBootstrap(readFileSync(join(img, 'bootstrap')));
    const once = new Map<string, number>();
    for (const entry of b.blobs) {
      const source = new LocalDirSource(join(img, 'blobs'));
      try {
        const map = await loadBlobChunkMap(source, entry, b.chunks);
        once.set(entry.blobId, source.counters.totalBytes() + map.chunks.reduce((s, c) => s + c.compressedSize, 0));
      } finally {
        await source.close();
      }
    }

    const d = await startFanotifyDaemon(t, work);
    const mnt = join(work, 'mnt-tree');
    await d.mount(img, mnt);
    dropCaches();
    const shuffle = (seed: number) => (paths: string[]) => {
      const out = [...paths];
      let x = seed;
      for (let i = out.length - 1; i > 0; i--) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const j = x % (i + 1);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    };
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => readAll(work, mnt, expected, shuffle(i + 1))));
    results.forEach((bad, i) => assert.deepEqual(bad.slice(0, 20), [], `reader ${i} of 8: ${bad.length} files wrong`));
    const s = await d.status();
    const got = sourceBytes(s);
    for (const [id, want] of once) {
      t.diagnostic(`blob ${id.slice(0, 12)}…: ${got.get(id) ?? 0} source bytes; reading each chunk once costs ${want}`);
      assert.equal(got.get(id) ?? 0, want, `blob ${id}: source bytes equal the chunk-info table plus every chunk once`);
    }
    assert.deepEqual(incompleteBlobs(s, mnt), [], 'the blob is complete after every file was read');
    await d.umount(mnt);
  });
});
