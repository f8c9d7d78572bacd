import assert from 'node:assert/strict';
import { renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  NativeArgumentError,
  NativeError,
  lgetxattr,
  llistxattr,
} from '../../src/native/index.js';
import { removeXattr, setXattr } from '../helpers/xattr.js';
import { tempDir } from './util.js';

function code(expected: string) {
  return (err: unknown) => err instanceof NativeError && err.code === expected;
}

test('get and list user xattrs on a file, also once one is removed', (t) => {
  const file = join(tempDir(t), 'f');
  writeFileSync(file, 'data');
  assert.deepEqual(llistxattr(file).filter((n) => n.startsWith('user.')), []);

  setXattr(file, 'user.ondine.digest', Buffer.from('sha256:abc'));
  setXattr(file, 'user.empty', Buffer.alloc(0));
  const big = Buffer.alloc(3000, 0x5a);
  setXattr(file, 'user.big', big);

  assert.deepEqual(lgetxattr(file, 'user.ondine.digest'), Buffer.from('sha256:abc'));
  assert.deepEqual(lgetxattr(file, 'user.empty'), Buffer.alloc(0));
  assert.deepEqual(lgetxattr(file, 'user.big'), big);
  assert.deepEqual(
    llistxattr(file).filter((n) => n.startsWith('user.')).sort(),
    ['user.big', 'user.empty', 'user.ondine.digest'],
  );

  removeXattr(file, 'user.big');
  assert.throws(() => lgetxattr(file, 'user.big'), code('ENODATA'));
  assert.ok(!llistxattr(file).includes('user.big'));
});

test('a missing attribute is ENODATA with a message naming it', (t) => {
  const file = join(tempDir(t), 'f');
  writeFileSync(file, '');
  assert.throws(() => lgetxattr(file, 'user.nope'), (err: unknown) => {
    assert.ok(err instanceof NativeError);
    assert.equal(err.code, 'ENODATA');
    assert.equal(err.errno, 61);
    assert.equal(err.syscall, 'lgetxattr');
    assert.match(err.message, /no extended attribute "user\.nope"/);
    return true;
  });
});

test('the l* calls act on a symlink itself, never its target', (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'target');
  const link = join(dir, 'link');
  writeFileSync(target, '');
  symlinkSync(target, link);
  setXattr(target, 'user.on-target', Buffer.from('t'));
  setXattr(link, 'trusted.on-link', Buffer.from('l'));

  assert.ok(!llistxattr(link).includes('user.on-target'));
  assert.throws(() => lgetxattr(link, 'user.on-target'), code('ENODATA'));
  assert.equal(lgetxattr(link, 'trusted.on-link').toString(), 'l');
  assert.ok(!llistxattr(target).includes('trusted.on-link'));
  assert.throws(() => lgetxattr(target, 'trusted.on-link'), code('ENODATA'));
});

test('paths may be raw bytes (names that are not UTF-8)', (t) => {
  const dir = tempDir(t);
  const name = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x66, 0xff, 0xfe])]);
  // setfattr takes the name as a (UTF-8) argument: give the file its raw name afterwards.
  writeFileSync(join(dir, 'plain'), '');
  setXattr(join(dir, 'plain'), 'user.k', Buffer.from('v'));
  renameSync(join(dir, 'plain'), name);
  assert.equal(lgetxattr(name, 'user.k').toString(), 'v');
  assert.ok(llistxattr(name).includes('user.k'));
});

test('a filesystem without xattr support gets a clear error (procfs)', () => {
  assert.throws(() => lgetxattr('/proc/self/status', 'user.x'), (err: unknown) => {
    assert.ok(err instanceof NativeError);
    assert.equal(err.code, 'EOPNOTSUPP');
    assert.match(err.message, /does not support extended attributes/);
    assert.ok(err.cause instanceof NativeError);
    return true;
  });
  assert.ok(Array.isArray(llistxattr('/proc/self/status')));
});

test('errors name the path; bad arguments never reach the kernel', (t) => {
  const missing = join(tempDir(t), 'missing');
  assert.throws(() => llistxattr(missing), (err: unknown) =>
    err instanceof NativeError && err.code === 'ENOENT' && err.path === missing);
  assert.throws(() => lgetxattr('', 'user.x'), NativeArgumentError);
  assert.throws(() => lgetxattr('/tmp\0x', 'user.x'), NativeArgumentError);
  assert.throws(() => lgetxattr('/tmp', ''), NativeArgumentError);
});
