// Choosing the kernel paths from what was found by trying, and the one message when none works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseModes } from '../../src/daemon/probe.js';
import { OndineError } from '../../src/errors.js';

test('auto serves every path that works; a named mode only that one', () => {
  assert.deepEqual(chooseModes('auto', { fanotify: true, cachefiles: true }), ['fanotify', 'cachefiles']);
  assert.deepEqual(chooseModes('auto', { fanotify: 'no', cachefiles: true }), ['cachefiles']);
  assert.deepEqual(chooseModes('fanotify', { fanotify: true, cachefiles: true }), ['fanotify']);
});

test('when nothing works, one error names what each path needs', () => {
  assert.throws(() => chooseModes('auto', { fanotify: 'fanotify_init(FAN_CLASS_PRE_CONTENT) failed (EINVAL)', cachefiles: '/dev/cachefiles does not exist' }), (e: unknown) => {
    assert.ok(e instanceof OndineError);
    assert.equal(e.code, 'ONDINE_ERR_NO_KERNEL_PATH');
    assert.match(e.message, /Linux 6\.14\+/);
    assert.match(e.message, /CONFIG_CACHEFILES_ONDEMAND/);
    return true;
  });
  // A cache directory that refuses marks is its own reason: no kernel advice for fanotify.
  assert.throws(() => chooseModes('fanotify', { fanotify: 'the filesystem of /tmp refuses pre-content marks', cachefiles: true }), (e: unknown) => {
    assert.ok(e instanceof OndineError);
    assert.doesNotMatch(e.message, /Linux 6\.14/);
    assert.doesNotMatch(e.message, /cachefiles/);
    return true;
  });
});
