// Arguments the addon refuses itself (behind the checks in src/native/index.ts) arrive as
// NativeArgumentErrors, which are Ondine errors: the CLI prints them as one line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constants } from 'node:os';
import { OndineError } from '../../src/errors.js';
import { binding } from '../../src/native/binding.js';
import { NativeArgumentError, NativeError } from '../../src/native/index.js';

test("the addon's own argument errors are Ondine errors with the table's errno", () => {
  // Not a power of two: the addon's RangeError, called past index.ts's check.
  const err = (() => {
    try {
      binding.alignedBuffer(4096, 3);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof NativeArgumentError, `got ${String(err)}`);
  assert.ok(err instanceof OndineError);
  assert.equal(err.code, 'ONDINE_ERR_INVALID_ARG');
  assert.equal(err.errno, constants.errno.EINVAL);
  assert.match(err.message, /power of two/);
});

test('errno failures of the addon stay NativeErrors', () => {
  assert.throws(() => binding.openDevice('/nonexistent/ondine-device'), (e: unknown) => e instanceof NativeError && e.code === 'ENOENT');
});

test('the FdPoller class keeps working through the wrapper, and refuses a bad fd as an Ondine error', () => {
  assert.throws(() => new binding.FdPoller(-5, () => {}), (e: unknown) => e instanceof NativeArgumentError || e instanceof NativeError);
});
