import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { NativeArgumentError, NativeError, cachefilesOpen } from '../../src/native/index.js';
import { tempDir } from './util.js';

// The real device paths run in the QEMU VM (test/vm); this host kernel has no cachefiles.

test('cachefilesOpen on a kernel without cachefiles says so', { skip: existsSync('/dev/cachefiles') ? '/dev/cachefiles exists here' : false }, () => {
  assert.throws(() => cachefilesOpen(), (err: unknown) => {
    assert.ok(err instanceof NativeError);
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.errno, 2);
    assert.equal(err.syscall, 'open');
    assert.equal(err.path, '/dev/cachefiles');
    assert.match(err.message, /lacks on-demand cachefiles/);
    assert.match(err.message, /CONFIG_CACHEFILES_ONDEMAND/);
    assert.ok(err.cause instanceof NativeError, 'the raw kernel error is kept as the cause');
    return true;
  });
});

test('cachefilesOpen maps the errno of any device path; others pass through', (t) => {
  const dir = tempDir(t);
  assert.throws(() => cachefilesOpen(join(dir, 'missing')), /lacks on-demand cachefiles/);
  // A directory cannot be opened O_RDWR: EISDIR is not one of the explained errors.
  assert.throws(() => cachefilesOpen(dir), (err: unknown) =>
    err instanceof NativeError && err.code === 'EISDIR' && err.cause === undefined);
  assert.throws(() => cachefilesOpen(''), NativeArgumentError);
});
