// `ondine mount` prints the daemon's own start-up error, not just its exit code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastDaemonError } from '../../../src/cli/commands/mount.js';

test('the last CLI error line of the daemon log is the reason (its code left to the outer error)', () => {
  const log = [
    '{"level":30,"msg":"supervisor started"}',
    'ondine: cache directory /x does not exist [ONDINE_ERR_CACHE_DIR]',
    '',
  ].join('\n');
  assert.equal(lastDaemonError(log), 'cache directory /x does not exist');
});

test('else the last pino line at error level or above, with its error message', () => {
  const log = [
    '{"level":50,"msg":"old failure"}',
    '{"level":60,"msg":"fanotify_init failed","err":{"message":"EPERM"}}',
    '{"level":30,"msg":"info after"}',
  ].join('\n');
  assert.equal(lastDaemonError(log), 'fanotify_init failed: EPERM');
  assert.equal(lastDaemonError('{"level":30,"msg":"all fine"}\nnot json\n'), undefined);
});
