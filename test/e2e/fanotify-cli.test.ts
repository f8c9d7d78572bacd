// The fanotify path as a new user meets it through the CLI: the traps of the kernel side are
// avoided (no loop device, the bootstrap stored whole, marks placed before the mount so the
// first cold read is right), and mistakes get one line, no stack trace, exit code 2 (missing
// or busy mount point, a --cache-dir that is not the daemon's, `stop` with a live mount);
// `umount` releases the marks and fds, `stop --force` leaves nothing mounted.
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { seekHole } from '../../src/native/index.js';
import { Cleanup, cli, cliOk, mountsUnder, requireKernelFs, scratchDir, skipUnlessRoot, type RunResult } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';

const MiB = 1 << 20;

/** Mountinfo fields of the mount at `dir`: source and fs type. */
function mountOf(dir: string): { fstype: string; source: string } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== dir) continue;
    const dash = f.indexOf('-');
    return { fstype: f[dash + 1]!, source: f[dash + 2]! };
  }
  return undefined;
}

/** Backing files of every loop device in use. */
function loopBackingFiles(): string[] {
  const out: string[] = [];
  for (const dev of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    const p = join('/sys/block', dev, 'loop/backing_file');
    if (existsSync(p)) out.push(`${dev}: ${readFileSync(p, 'utf8').trim()}`);
  }
  return out;
}

/** Inode numbers (hex, as fdinfo prints them) of the inode marks of every fanotify group `pid` holds. */
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

/** What `pid`'s open fds point at. */
function fdTargets(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
}

/** An error as a user should meet it: exit 2 and one line naming the problem, no stack trace. */
function assertUserError(r: RunResult, what: string, pattern: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  assert.equal(r.code, 2, `${what}: exit code 2 (got ${r.code}); stderr: ${r.stderr}`);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${lines.length}:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `${what}: no stack trace`);
  assert.match(lines[0]!, /^ondine: /, `${what}: the line starts "ondine: "`);
  assert.match(lines[0]!, pattern, `${what}: the message says what is wrong`);
}

describe('the fanotify path through the CLI', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let img: string;
  let d: FanotifyDaemon;
  const data = pseudoRandomBytes(40, 3 * MiB + 1234);

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'fan-cli');
    const src = join(work, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'data.bin'), data);
    writeFileSync(join(src, 'note.txt'), 'hello\n');
    img = join(work, 'img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    d = await startFanotifyDaemon(suite, work);
  });

  test('an `ondine mount` uses no loop device, stores the bootstrap whole, and its first cold read is right (marks before mount)', async () => {
    const mnt = join(work, 'mnt-traps');
    await d.mount(img, mnt);
    const s = await d.status();
    const info = s.mounts.find((m) => m.mountpoint === mnt);
    assert.ok(info, `status lists ${mnt}`);
    assert.equal(info.blobs[0]!.complete, false, 'the blob starts incomplete (marked): the read below goes through events');

    const m = mountOf(mnt);
    assert.equal(m?.fstype, 'erofs', `${mnt} is an erofs mount`);
    // The kernel was handed the fd of the bootstrap copy the daemon checked (names.md: no path to re-resolve).
    assert.match(m?.source ?? '', /^\/proc\/self\/fd\/\d+$/, 'the mount source is the fd of the checked bootstrap file, not a path or a block device');
    assert.doesNotMatch(m?.source ?? '', /^\/dev\/loop/, 'not a loop device');
    // Other test files may use loop devices at the same time: only ours must not be behind one.
    assert.deepEqual(loopBackingFiles().filter((l) => l.includes(d.cacheDir) || l.includes(img)), [], 'no loop device is backed by a file of the cache dir or the image');

    const fd = openSync(info.bootstrapCache, 'r');
    try {
      const size = statSync(info.bootstrapCache).size;
      assert.equal(seekHole(fd, 0), size, 'the bootstrap in the cache dir has no hole (SEEK_HOLE is its end)');
    } finally {
      closeSync(fd);
    }
    assert.ok(readFileSync(info.bootstrapCache).equals(readFileSync(join(img, 'bootstrap'))), "the cache dir's bootstrap is the image's bootstrap byte for byte");

    dropCaches();
    const r = await readInChild(work, [{ path: join(mnt, 'data.bin') }, { path: join(mnt, 'note.txt') }]);
    assert.deepEqual(r.outcomes.map((o) => ({ result: o.result, zeroBlocks: o.zeroBlocks })), [{ result: 'ok', zeroBlocks: 0 }, { result: 'ok', zeroBlocks: 0 }], 'cold reads through the fresh mount succeed and return no zero blocks');
    assert.deepEqual(r.outcomes.map((o) => o.sha), [sha256(data), sha256(Buffer.from('hello\n'))], 'cold reads return the source bytes');
    await d.umount(mnt);
  });

  test('a missing mount point: exit 2, one line naming it', async () => {
    const missing = join(work, 'no-such-dir');
    const r = await cli(['mount', img, missing, '--socket', d.socket]);
    assertUserError(r, 'mount on a missing directory', new RegExp(`${missing}.*create the directory`));
  });

  test('a mount point that is already a mount: exit 2, one line saying so', async () => {
    const mnt = join(work, 'mnt-busy');
    await d.mount(img, mnt);
    const r = await cli(['mount', img, mnt, '--socket', d.socket]);
    assertUserError(r, 'mount on a mount point', new RegExp(`${mnt} is already a mount point`));
    assert.equal((await d.status()).mounts.filter((m) => m.mountpoint === mnt).length, 1, 'the first mount is still served, once');
    await d.umount(mnt);
  });

  test("a --cache-dir other than the running daemon's: exit 2, one line naming both", async () => {
    const mnt = join(work, 'mnt-otherdir');
    mkdirSync(mnt);
    const other = join(work, 'other-cache');
    const r = await cli(['mount', img, mnt, '--socket', d.socket, '--cache-dir', other]);
    assertUserError(r, 'mount with another --cache-dir', new RegExp(`${d.cacheDir}.*${other}`));
    assert.deepEqual(mountsUnder(mnt), [], 'nothing was mounted');
  });

  test('umount releases the marks and fds the daemon held for the mount', async () => {
    // An image of its own: the first test completed the shared image's blob, whose mark is gone.
    const src = join(work, 'src-release');
    mkdirSync(src);
    writeFileSync(join(src, 'unread.bin'), pseudoRandomBytes(41, 2 * MiB));
    const img2 = join(work, 'img-release');
    await cliOk(['build', src, '-o', img2, '--chunk-size', '1M']);
    const mnt = join(work, 'mnt-release');
    await d.mount(img2, mnt);
    const s = await d.status();
    const info = s.mounts.find((m) => m.mountpoint === mnt)!;
    const cacheFile = info.blobs[0]!.cacheFile;
    assert.equal(info.blobs[0]!.complete, false, 'the unread blob is incomplete, so it is marked');
    const ino = statSync(cacheFile).ino.toString(16);
    assert.ok(s.supervisorPid, 'the daemon runs under the supervisor');
    // Checked while mounted first, so the checks after umount can see what they look for.
    assert.ok(fanotifyMarkInodes(s.supervisorPid).includes(ino), `the supervisor's group marks the cache file (ino 0x${ino}) while mounted`);
    assert.ok(fdTargets(s.workerPid).includes(cacheFile), `the worker holds an fd of ${cacheFile} while mounted`);

    await d.umount(mnt);
    const after = await d.status();
    assert.deepEqual(after.mounts.map((m) => m.mountpoint), [], 'status shows no mount after umount');
    assert.equal(mountOf(mnt), undefined, `${mnt} is no longer a mount point`);
    assert.equal(fanotifyMarkInodes(s.supervisorPid).includes(ino), false, 'the mark of the cache file is gone after umount');
    const held = [...fdTargets(after.workerPid), ...fdTargets(s.supervisorPid)].filter((p) => p === cacheFile || p === info.bootstrapCache);
    assert.deepEqual(held, [], 'neither the worker nor the supervisor holds an fd of the cache files after umount');
  });

  test('stop with a live mount is refused naming it; stop --force stops the daemon and leaves nothing mounted', async () => {
    const mnt = join(work, 'mnt-stop');
    await d.mount(img, mnt);
    const refused = await d.cli(['stop']);
    assertUserError(refused, 'stop with a live mount', new RegExp(`live mount.*${mnt}.*--force`));
    assert.ok(d.alive, 'the daemon still runs after a refused stop');
    assert.deepEqual((await d.status()).mounts.map((m) => m.mountpoint), [mnt], 'and still serves the mount');

    const forced = await d.cli(['stop', '--force']);
    assert.equal(forced.code, 0, `stop --force exits 0: ${forced.stderr}`);
    const exit = await d.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, 'the daemon exited cleanly');
    assert.deepEqual(mountsUnder(work), [], 'nothing is mounted under the scratch dir after stop --force');
  });
});
