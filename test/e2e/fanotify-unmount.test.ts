// Mounts are released when the kernel lets go, not when the mount point leaves the mount
// table: an overlay over an Ondine mount keeps its own clone of it, so after `umount` of the
// EROFS mount point the overlay must still read the right bytes (no zeros, data not yet
// fetched) until it goes too; only then are the marks released. The freed path takes a new
// `ondine mount` at once.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { Cleanup, cliOk, mountsUnder, requireKernelFs, runOk, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';

/** Inode numbers (hex) the fanotify groups of `pid` mark, from fdinfo. */
function fanotifyMarkInodes(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:[fanotify]') continue;
    for (const m of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^fanotify ino:([0-9a-f]+) /gm)) out.push(m[1]!);
  }
  return out;
}

interface Listed { mountpoint: string; detached?: boolean; blobs: Array<{ cacheFile: string }> }

async function mountsAt(d: FanotifyDaemon, mnt: string): Promise<Listed[]> {
  return ((await d.status()).mounts as unknown as Listed[]).filter((m) => m.mountpoint === mnt);
}

describe('fanotify: mounts released only when the kernel lets go', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());

  test('an overlay over an Ondine mount reads right after umount of the mount point; the path takes a new mount; the marks go with the overlay', async (t) => {
    requireKernelFs('erofs');
    requireKernelFs('overlay');
    const work = scratchDir(suite, 'fan-unmount');
    const src = join(work, 'src');
    mkdirSync(src);
    const big = pseudoRandomBytes(23, 6 << 20);
    writeFileSync(join(src, 'big'), big);
    // Never read: the blob stays incomplete, so its mark stays until the daemon releases it.
    writeFileSync(join(src, 'unread'), pseudoRandomBytes(24, 4 << 20));
    await cliOk(['build', src, '-o', join(work, 'img')]);
    const d = await startFanotifyDaemon(t, work);
    const supervisorPid = (await d.client.health()).supervisorPid!;
    const mnt = join(work, 'mnt');
    await d.mount(join(work, 'img'), mnt);
    const [first] = await mountsAt(d, mnt);
    assert.ok(first, `status lists ${mnt}`);
    const ino = statSync(first.blobs[0]!.cacheFile).ino.toString(16);
    assert.ok(fanotifyMarkInodes(supervisorPid).includes(ino), 'the blob cache file is marked while mounted');

    const upper = join(work, 'upper');
    const ovWork = join(work, 'ovwork');
    const merged = join(work, 'merged');
    for (const dir of [upper, ovWork, merged]) mkdirSync(dir);
    await runOk('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${mnt},upperdir=${upper},workdir=${ovWork}`, merged]);

    // What people type. The overlay holds its own clone of the EROFS mount, so this succeeds
    // and the filesystem lives on.
    await runOk('umount', [mnt]);
    assert.equal(mountsUnder(work).includes(mnt), false, `${mnt} left the mount table`);
    const detached = await mountsAt(d, mnt);
    assert.deepEqual(detached.map((m) => m.detached), [true], 'status lists the mount as detached, still served');
    assert.ok(fanotifyMarkInodes(supervisorPid).includes(ino), 'its mark stays while the overlay can read');

    // Nothing of big was read yet: every byte through the overlay is an event the daemon fills.
    dropCaches();
    const r = await readInChild(work, [{ path: join(merged, 'big') }]);
    assert.deepEqual(r.outcomes.map((o) => ({ result: o.result, zeroBlocks: o.zeroBlocks })), [{ result: 'ok', zeroBlocks: 0 }], 'the overlay reads without error and without zero blocks');
    assert.equal(r.outcomes[0]!.sha, sha256(big), 'the overlay reads the source bytes');

    // The path is free for a new mount (the old filesystem still served for the overlay).
    await d.mount(join(work, 'img'), mnt);
    assert.deepEqual((await mountsAt(d, mnt)).map((m) => m.detached ?? false).sort(), [false, true], 'the new mount beside the detached one');
    assert.ok(readFileSync(join(mnt, 'big')).equals(big), 'the new mount reads right');
    await d.umount(mnt);
    assert.deepEqual((await mountsAt(d, mnt)).map((m) => m.detached), [true], 'ondine umount released the new mount; the overlay\'s lives on');
    assert.ok(fanotifyMarkInodes(supervisorPid).includes(ino), 'the shared blob stays marked for the overlay');

    // The overlay goes: the superblock dies, IN_UNMOUNT arrives, the daemon lets go.
    await runOk('umount', [merged]);
    const deadline = Date.now() + 10_000;
    while ((await mountsAt(d, mnt)).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(await mountsAt(d, mnt), [], 'status no longer lists the mount once the overlay is gone');
    assert.equal(fanotifyMarkInodes(supervisorPid).includes(ino), false, 'the mark of the blob cache file is released');
  });

  test('plain `umount DIR` frees the path: a new `ondine mount` there works, and the old one is released', async (t) => {
    requireKernelFs('erofs');
    const work = scratchDir(suite, 'fan-replain');
    const src = join(work, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'note.txt'), 'one\n');
    await cliOk(['build', src, '-o', join(work, 'img')]);
    const d = await startFanotifyDaemon(t, work);
    const mnt = join(work, 'mnt');
    await d.mount(join(work, 'img'), mnt);
    await runOk('umount', [mnt]);
    // Nothing else used it: the kernel lets go at once and the daemon follows.
    const deadline = Date.now() + 10_000;
    while ((await mountsAt(d, mnt)).length > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(await mountsAt(d, mnt), [], 'the unmounted filesystem is released');
    await d.mount(join(work, 'img'), mnt);
    assert.equal(readFileSync(join(mnt, 'note.txt'), 'utf8'), 'one\n');
    assert.deepEqual((await mountsAt(d, mnt)).map((m) => m.detached ?? false), [false]);
    await d.umount(mnt);
  });
});
