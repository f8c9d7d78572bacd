// The group reader's read-hint policy (mirror of native/supervisor/hints.c): which reads
// allowed without a fill are passed on to move read-ahead.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HINT_FILES, HINT_LOOKAHEAD, HINT_SLACK, HINT_STEP, ReadHints } from '../../../src/kernel/fanotify/read-hints.js';

const MiB = 1 << 20;
const SIZE = 64 * MiB;

test('a sequential stream is passed on once per step, with the look-ahead range to check', () => {
  const h = new ReadHints();
  assert.equal(h.note(1n, 2n, 0, 128 << 10, SIZE, true), undefined, 'a forwarded read is never a hint');
  const due: number[] = [];
  for (let off = 128 << 10; off < 4 * MiB; off += 128 << 10) {
    const d = h.note(1n, 2n, off, off + (128 << 10), SIZE, false);
    if (d) {
      assert.equal(d.lookEnd, off + (128 << 10) + HINT_LOOKAHEAD);
      h.sent(1n, 2n, off);
      due.push(off);
    }
  }
  assert.deepEqual(due, [HINT_STEP, 2 * HINT_STEP, 3 * HINT_STEP]);
});

test('a due hint not sent (no hole ahead) stays due; a forwarded read resets the step', () => {
  const h = new ReadHints();
  h.note(1n, 2n, 0, 4096, SIZE, true);
  assert.equal(h.note(1n, 2n, 4096, HINT_STEP, SIZE, false), undefined, 'continues but not a step on');
  // Not a continuation: prevEnd is HINT_STEP now, the read starts far past it.
  assert.equal(h.note(1n, 2n, 8 * MiB, 8 * MiB + 4096, SIZE, false), undefined);
  assert.ok(h.note(1n, 2n, 8 * MiB + 4096, 8 * MiB + 8192, SIZE, false), 'continues, a step past the last heard of');
  assert.ok(h.note(1n, 2n, 8 * MiB + 8192, 8 * MiB + 12288, SIZE, false), 'still due: the last was not sent');
  h.note(1n, 2n, 8 * MiB + 12288, 8 * MiB + 16384, SIZE, true);
  assert.equal(h.note(1n, 2n, 8 * MiB + 16384, 8 * MiB + 20480, SIZE, false), undefined, 'the worker just heard of this stream');
});

test('random reads, reads far behind, and reads ending at the end of the file are not passed on', () => {
  const h = new ReadHints();
  h.note(1n, 2n, 10 * MiB, 10 * MiB + 4096, SIZE, true);
  for (const off of [0, 30 * MiB, 2 * MiB, 50 * MiB, 10 * MiB]) assert.equal(h.note(1n, 2n, off, off + 4096, SIZE, false), undefined, `read at ${off}`);
  // Just behind the previous end, within the slack: continues (a re-read of its tail).
  h.note(1n, 2n, 20 * MiB, 20 * MiB + 4096, SIZE, false);
  assert.ok(h.note(1n, 2n, 20 * MiB + 4096 - HINT_SLACK, 20 * MiB + 8192, SIZE, false));
  assert.equal(h.note(1n, 2n, SIZE - 4096, SIZE, SIZE, false), undefined, 'nothing past the end');
});

test('files are told apart by device and inode; the table keeps the last HINT_FILES of them', () => {
  const h = new ReadHints();
  h.note(1n, 2n, 0, 4096, SIZE, true);
  h.note(1n, 3n, 50 * MiB, 50 * MiB + 4096, SIZE, true);
  h.note(9n, 2n, 30 * MiB, 30 * MiB + 4096, SIZE, true);
  assert.ok(h.note(1n, 2n, 4096, HINT_STEP + 8192, SIZE, false) === undefined, 'not a step on yet');
  assert.ok(h.note(1n, 2n, HINT_STEP + 8192, HINT_STEP + 12288, SIZE, false), 'its own stream, not the other files');
  for (let i = 0; i < HINT_FILES; i++) h.note(100n, BigInt(i), 0, 4096, SIZE, true);
  // Forgotten: its next read is a first read again.
  assert.equal(h.note(1n, 2n, HINT_STEP + 12288, 3 * HINT_STEP, SIZE, false), undefined);
});
