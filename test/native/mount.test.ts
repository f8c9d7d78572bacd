import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import * as native from '../../src/native/index.js';
import { binding } from '../../src/native/binding.js';
import { NativeError, MS_RDONLY, MS_REMOUNT, mount, mountAsync, umount2, umount2Async } from '../../src/native/index.js';
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
