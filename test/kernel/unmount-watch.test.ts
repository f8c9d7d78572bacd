// inotify records as the kernel writes them: wd, mask, cookie, len, then len name bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IN_IGNORED, IN_UNMOUNT } from '../../src/native/constants.js';
import { parseInotifyEvents } from '../../src/kernel/unmount-watch.js';

function record(wd: number, mask: number, name = ''): Buffer {
  const len = name ? Math.ceil((name.length + 1) / 16) * 16 : 0;
  const b = Buffer.alloc(16 + len);
  b.writeInt32LE(wd, 0);
  b.writeUInt32LE(mask, 4);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(len, 12);
  b.write(name, 16);
  return b;
}

test('records are read in order, names skipped, a torn tail ignored', () => {
  const buf = Buffer.concat([record(3, IN_UNMOUNT), record(3, IN_IGNORED), record(7, 0x2, 'some-name'), record(9, IN_UNMOUNT).subarray(0, 10)]);
  assert.deepEqual(parseInotifyEvents(buf, buf.length), [
    { wd: 3, mask: IN_UNMOUNT }, { wd: 3, mask: IN_IGNORED }, { wd: 7, mask: 0x2 },
  ]);
  assert.deepEqual(parseInotifyEvents(buf, 16), [{ wd: 3, mask: IN_UNMOUNT }], 'only the bytes read count');
});
