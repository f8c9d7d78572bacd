// Bad input loses nothing: an unknown fsid fails its mount clearly while the daemon keeps
// serving; a corrupt chunk or a failing/hanging source gives that reader EIO within the
// timeout, other mounts keep working, and corrupt bytes never reach the cache; killing the
// daemon turns uncached reads into EIO, not a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, open, rm, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { seekData, seekHole } from '../../../src/native/index.js';
import { cli, hashTree, manifest, mountImage, readInChild, startDaemon, umountImage, CACHE_DIR } from './harness.js';

/** Cache files (cache/I<volume>/@<hash>/D<cookie>) whose name holds `cookie`. */
async function cacheFiles(cookie: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.includes(cookie)) out.add(p);
    }
  };
  await walk(join(CACHE_DIR, 'cache'));
  return out;
}

test('an unknown fsid fails its mount with a clear error; the daemon keeps serving', async () => {
  const m = await manifest();
  const d = await startDaemon('unknown');
  try {
    await mountImage(d, m.small.dir, '/run/mnt-unk-ok', { fsid: 'unk-ok' });
    await mkdir('/run/mnt-unk', { recursive: true });
    const { mountFscache } = await import('../../../src/kernel/mounts.js');
    await assert.rejects(mountFscache('/run/mnt-unk', 'no-such-fsid'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ONDINE_ERR_MOUNT');
      assert.match(err.message, /fsid=no-such-fsid/);
      return true;
    });
    assert.equal(d.proc.exitCode, null, 'daemon still running');
    assert.deepEqual(await hashTree('/run/mnt-unk-ok'), m.small.files);
    await umountImage(d, '/run/mnt-unk-ok');
  } finally {
    await d.stop();
  }
});

test('a corrupt chunk gives its reader EIO, never reaches the cache, and other files still read', async (t) => {
  const m = await manifest();
  const d = await startDaemon('corrupt');
  try {
    const mnt = '/run/mnt-corrupt';
    const blobId = m.corrupt.blobs[0]!.id;
    // Other tests cache the same blob id under their own volumes: ours is the file that appears.
    const before = await cacheFiles(blobId);
    await mountImage(d, m.corrupt.dir, mnt, { fsid: 'corrupt-img' });
    const bad = await readInChild(join(mnt, m.corrupt.badFile));
    t.diagnostic(`bad file read: ${bad.result} after ${bad.ms} ms`);
    assert.equal(bad.result, 'EIO');
    const good = await readInChild(join(mnt, m.corrupt.goodFile));
    assert.equal(good.result, m.corrupt.files[m.corrupt.goodFile]);
    assert.equal(d.proc.exitCode, null);
    await umountImage(d, mnt);
    // cachefiles keeps a new object in an unlinked tmpfile and links it into the cache
    // directory when the object is committed after the unmount: wait for it to appear.
    let created: string[] = [];
    for (let i = 0; i < 100 && created.length === 0; i++) {
      created = [...await cacheFiles(blobId)].filter((p) => !before.has(p));
      if (created.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(created.length, 1, `one new cache file for ${blobId}: ${created.join(', ')}`);
    const cacheFile = created[0]!;
    t.diagnostic(`cache file ${cacheFile}`);
    // The bad chunk's range of the cache file is still a hole: nothing corrupt was written.
    const fh = await open(cacheFile, 'r');
    try {
      const [start, end] = m.corrupt.badRange;
      const data = seekData(fh.fd, start);
      assert.ok(data === -1 || data >= end || seekHole(fh.fd, start) === start, `no data allocated in [${start}, ${end})`);
    } finally {
      await fh.close();
    }
  } finally {
    await d.stop();
  }
});

test('a source that fails or hangs gives EIO within the read timeout while other mounts work', async (t) => {
  const m = await manifest();
  // Image copies whose blob is missing (fails at once) or a FIFO (a read that never returns).
  const work = '/run/failing-sources';
  await rm(work, { recursive: true, force: true });
  for (const name of ['missing', 'hanging']) {
    await mkdir(join(work, name, 'blobs'), { recursive: true });
    await cp(join(m.small.dir, 'bootstrap'), join(work, name, 'bootstrap'));
  }
  execFileSync('mkfifo', [join(work, 'hanging/blobs', m.small.blobs[0]!.id)]);
  const d = await startDaemon('failing', ['--read-timeout', '5000']);
  try {
    await mountImage(d, m.small.dir, '/run/mnt-fs-ok', { fsid: 'fs-ok' });
    await mountImage(d, join(work, 'missing'), '/run/mnt-fs-missing', { fsid: 'fs-missing' });
    await mountImage(d, join(work, 'hanging'), '/run/mnt-fs-hanging', { fsid: 'fs-hanging' });
    const missing = await readInChild('/run/mnt-fs-missing/hello.txt');
    assert.equal(missing.result, 'EIO');
    const hanging = await readInChild('/run/mnt-fs-hanging/hello.txt', 60_000);
    t.diagnostic(`missing blob: ${missing.result} in ${missing.ms} ms; hanging source: ${hanging.result} in ${hanging.ms} ms`);
    assert.equal(hanging.result, 'EIO', 'a hanging source ends in EIO, not a hang');
    assert.deepEqual(await hashTree('/run/mnt-fs-ok'), m.small.files);
    assert.equal(d.proc.exitCode, null);
    for (const p of ['/run/mnt-fs-ok', '/run/mnt-fs-missing', '/run/mnt-fs-hanging']) await umountImage(d, p);
  } finally {
    // Unblock the FIFO opener so the daemon can exit.
    const w = await open(join(work, 'hanging/blobs', m.small.blobs[0]!.id), 'r+').catch(() => undefined);
    await w?.close();
    await d.stop();
  }
});

test('killing the daemon makes uncached reads fail with EIO, not hang', async (t) => {
  const m = await manifest();
  const d = await startDaemon('kill');
  const mnt = '/run/mnt-kill';
  await mountImage(d, m.big.dir, mnt, { fsid: 'kill-big' });
  const first = await readInChild(join(mnt, m.big.smallFile));
  assert.equal(first.result, m.big.files[m.big.smallFile]);
  await d.kill();
  const r = await readInChild(join(mnt, 'part7.bin'), 60_000);
  t.diagnostic(`uncached read after SIGKILL: ${r.result} in ${r.ms} ms`);
  assert.equal(r.result, 'EIO');
  // What was cached stays readable from the cache file.
  const again = await readInChild(join(mnt, m.big.smallFile));
  assert.equal(again.result, m.big.files[m.big.smallFile]);
  const u = await cli(['umount', mnt, '--socket', d.socket]);
  assert.equal(u.code, 0, u.stderr);
});
