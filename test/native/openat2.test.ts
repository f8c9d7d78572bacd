// openat2(2) through the addon: opens beneath a directory fd, and the kernel's refusals of
// every escape (.., absolute paths, symlinks, magic links) arrive as NativeError instances.
import assert from 'node:assert/strict';
import { closeSync, constants, fstatSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  NativeArgumentError, NativeError, openat2, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
} from '../../src/native/index.js';
import { tempDir } from './util.js';

const STRICT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

test('openat2 opens beneath the dir fd and refuses every way out with the kernel errno', (t) => {
  const root = tempDir(t);
  const inside = join(root, 'inside');
  mkdirSync(join(inside, 'sub'), { recursive: true });
  writeFileSync(join(inside, 'sub', 'f'), 'data');
  writeFileSync(join(root, 'victim'), 'outside');
  symlinkSync(join(root, 'victim'), join(inside, 'abs-link'));
  symlinkSync('sub/f', join(inside, 'rel-link'));
  const dfd = openSync(inside, constants.O_RDONLY | constants.O_DIRECTORY);
  t.after(() => closeSync(dfd));

  const fd = openat2(dfd, 'sub/f', { flags: constants.O_RDONLY, resolve: STRICT });
  try {
    assert.equal(readFileSync(fd, 'utf8'), 'data');
    assert.equal(fstatSync(fd).ino, statSync(join(inside, 'sub', 'f')).ino);
  } finally {
    closeSync(fd);
  }
  const refusals: Array<[string, string]> = [
    ['../victim', 'EXDEV'],
    ['sub/../../victim', 'EXDEV'],
    [join(root, 'victim'), 'EXDEV'],
    ['abs-link', 'ELOOP'],
    ['rel-link', 'ELOOP'],
    [`/proc/self/fd/${dfd}/sub/f`, 'EXDEV'],
    ['missing', 'ENOENT'],
  ];
  for (const [path, code] of refusals) {
    assert.throws(() => openat2(dfd, path, { flags: constants.O_RDONLY, resolve: STRICT }), (err: unknown) => {
      assert.ok(err instanceof NativeError, `${path}: a NativeError (${String(err)})`);
      assert.equal(err.code, code, path);
      assert.equal(err.syscall, 'openat2');
      return true;
    });
  }
  // Creating: the file is made beneath the fd with the given mode, and nowhere else.
  const made = openat2(dfd, 'new', { flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode: 0o640, resolve: STRICT });
  closeSync(made);
  assert.equal(statSync(join(inside, 'new')).mode & 0o777, 0o640 & ~process.umask());
  assert.throws(() => openat2(dfd, 'abs-link', { flags: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, resolve: STRICT }), { code: 'ELOOP' });
  assert.equal(readFileSync(join(root, 'victim'), 'utf8'), 'outside', 'the file behind the symlink is untouched');
  // Arguments are checked before the call.
  assert.throws(() => openat2(dfd, 'a\0b', { flags: 0, resolve: STRICT }), NativeArgumentError);
  assert.throws(() => openat2(dfd, '', { flags: 0, resolve: STRICT }), NativeArgumentError);
  assert.throws(() => openat2(dfd, 'x', { flags: 0, resolve: -1 }), NativeArgumentError);
});
