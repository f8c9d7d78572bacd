import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import * as native from '../../src/native/index.js';
import { binding } from '../../src/native/binding.js';
import {
  MNT_DETACH, MS_RDONLY, MS_REMOUNT, NativeError, mount, mountAsync, mountErofsFile, umount2, umount2Async,
} from '../../src/native/index.js';
import { cliOk, requireKernelFs, scratchDir } from '../helpers/e2e-env.js';
import { Prng, textBytes } from '../helpers/image-fixtures.js';
import { mountErofs, unpackWithCli } from '../helpers/kernel-mount.js';
import { tarLayer } from '../helpers/oci-layers.js';
import { isRoot, tempDir } from './util.js';

interface MountInfo {
  mountPoint: string;
  options: string;
  fstype: string;
  source: string;
}

function mountAt(dir: string): MountInfo | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const f = left.split(' ');
    const [fstype, source] = right.split(' ');
    if (f[4] === dir) return { mountPoint: dir, options: f[5] ?? '', fstype: fstype ?? '', source: source ?? '' };
  }
  return undefined;
}

const needsRoot = isRoot ? false : 'mount(2) needs root';

test('the TS constants match the kernel headers the addon was built with', () => {
  const fromHeaders = binding.constants;
  const exported = native as unknown as Record<string, unknown>;
  let compared = 0;
  for (const [name, value] of Object.entries(fromHeaders)) {
    const ours = exported[name];
    assert.notEqual(ours, undefined, `${name} is not exported from src/native`);
    assert.equal(Number(ours), value, name);
    compared++;
  }
  assert.ok(compared >= 70, `only ${compared} constants compared`);
  for (const name of ['MS_RDONLY', 'MNT_DETACH', 'FAN_PRE_ACCESS', 'FAN_CLASS_PRE_CONTENT', 'CACHEFILES_IOC_READ_COMPLETE']) {
    assert.ok(name in fromHeaders, `${name} is checked against the headers`);
  }
  assert.equal(native.FAN_DENY_ERRNO(5), 0x05000002);
});

test('mount a tmpfs with mount(2), remount read-only, unmount', { skip: needsRoot }, (t) => {
  const dir = join(tempDir(t), 'mnt');
  mkdirSync(dir);
  mount('ondine-test', dir, 'tmpfs', 0, 'size=1m,mode=0700');

  const info = mountAt(dir);
  assert.equal(info?.fstype, 'tmpfs');
  assert.equal(info?.source, 'ondine-test');
  writeFileSync(join(dir, 'x'), 'inside');
  assert.equal(readFileSync(join(dir, 'x'), 'utf8'), 'inside');

  mount(null, dir, null, MS_REMOUNT | MS_RDONLY, null);
  assert.match(mountAt(dir)?.options ?? '', /^ro\b/);
  assert.throws(() => writeFileSync(join(dir, 'y'), ''), /EROFS/);

  umount2(dir, 0);
  assert.equal(mountAt(dir), undefined);
  assert.ok(!existsSync(join(dir, 'x')));
});

test('mountAsync/umount2Async run on the thread pool with the same results', { skip: needsRoot }, async (t) => {
  const dir = join(tempDir(t), 'mnt');
  mkdirSync(dir);
  await mountAsync('ondine-async', dir, 'tmpfs', MS_RDONLY, null);
  assert.equal(mountAt(dir)?.source, 'ondine-async');
  await umount2Async(dir);
  assert.equal(mountAt(dir), undefined);
  await assert.rejects(umount2Async(dir), (e: unknown) =>
    e instanceof NativeError && e.code === 'EINVAL' && e.syscall === 'umount2' && e.path === dir);
});

test('mount errors are NativeErrors naming the target', { skip: needsRoot }, async (t) => {
  const dir = tempDir(t);
  assert.throws(() => mount('x', dir, 'no-such-fs', 0, null), (e: unknown) =>
    e instanceof NativeError && e.code === 'ENODEV' && e.errno === 19 && e.syscall === 'mount' && e.path === dir);
  await assert.rejects(mountAsync('x', join(dir, 'missing'), 'tmpfs', 0, null), (e: unknown) =>
    e instanceof NativeError && e.code === 'ENOENT');
  assert.throws(() => umount2(dir), (e: unknown) => e instanceof NativeError && e.code === 'EINVAL');
  assert.throws(() => mount('x', '', 'tmpfs', 0, null), native.NativeArgumentError);
  assert.throws(() => mount('x', dir, 'tmpfs', -1, null), native.NativeArgumentError);
});

test('file-backed EROFS: mount(2) with the image file as source, no loop device', { skip: needsRoot }, (t) => {
  const mkfs = ['/usr/bin/mkfs.erofs', '/usr/sbin/mkfs.erofs'].find((p) => existsSync(p));
  if (mkfs === undefined) {
    t.skip('mkfs.erofs (erofs-utils) is not installed');
    return;
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\terofs')) {
    t.skip('this kernel has no EROFS');
    return;
  }
  const base = tempDir(t, '/var/tmp');
  const tree = join(base, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  writeFileSync(join(tree, 'sub', 'hello.txt'), 'hello from erofs\n');
  const image = join(base, 'image.erofs');
  execFileSync(mkfs, [image, tree], { stdio: ['ignore', 'ignore', 'inherit'] });
  const dir = join(base, 'mnt');
  mkdirSync(dir);

  mount(image, dir, 'erofs', MS_RDONLY, null);
  const info = mountAt(dir);
  assert.equal(info?.fstype, 'erofs');
  assert.equal(info?.source, image, 'the image file itself is the source, not /dev/loopN');
  assert.equal(readFileSync(join(dir, 'sub', 'hello.txt'), 'utf8'), 'hello from erofs\n');
  umount2(dir);
  assert.equal(mountAt(dir), undefined);
});

// A two-blob image (two layer tarballs, each bringing data) built with `ondine build`, its blobs
// unpacked with `ondine unpack` (which verifies every chunk) and copied to device paths that
// mount(2)'s option syntax cannot carry: a comma, and more than 200 characters.
async function twoBlobImage(t: TestContext): Promise<{ work: string; bootstrap: string; unpacked: string[]; tree: string }> {
  requireKernelFs('erofs');
  const work = scratchDir(t, 'fsmount');
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'a'), { recursive: true });
  mkdirSync(join(tree, 'b'), { recursive: true });
  const prng = new Prng(7);
  writeFileSync(join(tree, 'a', 'one.txt'), textBytes(prng, 300_000));
  writeFileSync(join(tree, 'b', 'two.txt'), textBytes(prng, 200_000));
  tarLayer(tree, ['a', 'a/one.txt'], join(work, 'l1.tar'), 'none');
  tarLayer(tree, ['b', 'b/two.txt'], join(work, 'l2.tar'), 'none');
  const out = join(work, 'image');
  await cliOk(['build', join(work, 'l1.tar'), join(work, 'l2.tar'), '-o', out, '--chunk-size', '64K']);
  const bootstrap = join(out, 'bootstrap');
  const unpacked = await unpackWithCli(bootstrap, join(out, 'blobs'), join(work, 'unpacked'));
  assert.equal(unpacked.length, 2, 'one blob per layer');
  return { work, bootstrap, unpacked, tree };
}

/** A directory whose path has commas and at least `length` characters (components of <= 100). */
function awkwardDir(base: string, label: string, length: number): string {
  let dir = join(base, `${label},with,commas`);
  while (dir.length < length) dir = join(dir, 'x'.repeat(Math.min(100, Math.max(1, length - dir.length - 1))));
  mkdirSync(dir, { recursive: true });
  return dir;
}

test('mountErofsFile: two blobs at device paths with commas and over 200 characters', { skip: needsRoot }, async (t) => {
  const { work, bootstrap, unpacked, tree } = await twoBlobImage(t);
  const dir = awkwardDir(work, 'devs', 200);
  const devices = unpacked.map((p, i) => {
    const d = join(dir, `blob-${i},${'y'.repeat(8)}`);
    copyFileSync(p, d);
    return d;
  });
  for (const d of devices) {
    assert.ok(d.length > 200 && d.length <= 255 && d.includes(','), `${d.length} characters`);
  }
  const target = join(work, 'mnt');
  mkdirSync(target);

  await mountErofsFile(bootstrap, target, devices);
  t.after(() => {
    if (mountAt(target) !== undefined) umount2(target, MNT_DETACH);
  });
  const info = mountAt(target);
  assert.equal(info?.fstype, 'erofs');
  assert.equal(info?.source, bootstrap, 'the bootstrap file itself is the source, not /dev/loopN');
  assert.match(info?.options ?? '', /^ro\b/);
  assert.ok(readFileSync(join(target, 'a', 'one.txt')).equals(readFileSync(join(tree, 'a', 'one.txt'))));
  assert.ok(readFileSync(join(target, 'b', 'two.txt')).equals(readFileSync(join(tree, 'b', 'two.txt'))));
  await umount2Async(target);
  assert.equal(mountAt(target), undefined);

  // The e2e helper takes the same devices: mount(2) could not carry them, so it uses the new API.
  const viaHelper = await mountErofs(t, bootstrap, devices, join(work, 'mnt2'));
  assert.equal(mountAt(viaHelper.dir)?.fstype, 'erofs');
  assert.ok(readFileSync(join(viaHelper.dir, 'a', 'one.txt')).equals(readFileSync(join(tree, 'a', 'one.txt'))));
  viaHelper.unmount();
  assert.equal(mountAt(viaHelper.dir), undefined);
});

test('mountErofsFile: paths over the 255-byte fsconfig limit go through /proc/self/fd', { skip: needsRoot }, async (t) => {
  const { work, bootstrap, unpacked, tree } = await twoBlobImage(t);
  const dir = awkwardDir(work, 'long', 400);
  const devices = unpacked.map((p, i) => {
    const d = join(dir, `blob-${i}`);
    copyFileSync(p, d);
    return d;
  });
  const longBootstrap = join(dir, 'bootstrap');
  copyFileSync(bootstrap, longBootstrap);
  assert.ok(longBootstrap.length > 400);
  const target = join(work, 'mnt');
  mkdirSync(target);

  await mountErofsFile(longBootstrap, target, devices);
  t.after(() => {
    if (mountAt(target) !== undefined) umount2(target, MNT_DETACH);
  });
  assert.equal(mountAt(target)?.fstype, 'erofs');
  assert.ok(readFileSync(join(target, 'b', 'two.txt')).equals(readFileSync(join(tree, 'b', 'two.txt'))));
  await umount2Async(target);
  assert.equal(mountAt(target), undefined);
});

test('mountErofsFile: a missing device names the step and the path; nothing is mounted', { skip: needsRoot }, async (t) => {
  const { work, bootstrap, unpacked } = await twoBlobImage(t);
  const dir = awkwardDir(work, 'missing', 210);
  const missing = join(dir, 'no-such-blob');
  const target = join(work, 'mnt');
  mkdirSync(target);

  await assert.rejects(mountErofsFile(bootstrap, target, [unpacked[0]!, missing]), (e: unknown) => {
    assert.ok(e instanceof NativeError, String(e));
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.syscall, 'fsconfig');
    assert.equal(e.path, missing);
    assert.match(e.message, /fsconfig\(FSCONFIG_CMD_CREATE\) failed/);
    assert.ok(e.message.includes(`device '${missing}' cannot be opened`), e.message);
    return true;
  });
  assert.equal(mountAt(target), undefined);

  // One device too few: EROFS itself refuses, and says so in the context log.
  await assert.rejects(mountErofsFile(bootstrap, target, [unpacked[0]!]), (e: unknown) => {
    assert.ok(e instanceof NativeError, String(e));
    assert.match(e.message, /fsconfig\(FSCONFIG_CMD_CREATE\) failed/);
    return true;
  });
  assert.equal(mountAt(target), undefined);

  await assert.rejects(mountErofsFile(bootstrap, join(work, 'no-such-dir'), unpacked), (e: unknown) =>
    e instanceof NativeError && e.code === 'ENOENT' && e.syscall === 'move_mount' && /move_mount failed/.test(e.message));
  await assert.rejects(mountErofsFile(bootstrap, target, unpacked, { extraOptions: { 'no-such-option': 'x' } }), (e: unknown) =>
    e instanceof NativeError && e.syscall === 'fsconfig' && /"no-such-option"/.test(e.message) && /kernel: e erofs/.test(e.message));
  await assert.rejects(mountErofsFile(bootstrap, target, ['']), native.NativeArgumentError);
  await assert.rejects(mountErofsFile(bootstrap, target, unpacked, { extraOptions: { device: '/x' } }), native.NativeArgumentError);
});
