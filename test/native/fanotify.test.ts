import assert from 'node:assert/strict';
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import {
  AT_FDCWD,
  FAN_ALLOW,
  FAN_CLASS_NOTIF,
  FAN_CLASS_PRE_CONTENT,
  FAN_CLOEXEC,
  FAN_CLOSE_NOWRITE,
  FAN_DENY_ERRNO,
  FAN_EVENT_INFO_TYPE_RANGE,
  FAN_MARK_ADD,
  FAN_NONBLOCK,
  FAN_OPEN,
  FAN_PRE_ACCESS,
  FANOTIFY_METADATA_VERSION,
  FdPoller,
  NativeArgumentError,
  NativeError,
  closeFd,
  devRead,
  fanotifyInit,
  fanotifyMark,
  writeBuffer,
} from '../../src/native/index.js';
import { isRoot, tempDir, until } from './util.js';

// Minimal event decoding for the test only; the real parser belongs to src/kernel.
interface Event {
  mask: bigint;
  fd: number;
  pid: number;
  range?: { offset: number; count: number };
}

function parseEvents(buf: Buffer, n: number): Event[] {
  const events: Event[] = [];
  for (let off = 0; off < n;) {
    const len = buf.readUInt32LE(off);
    assert.equal(buf.readUInt8(off + 4), FANOTIFY_METADATA_VERSION);
    const metaLen = buf.readUInt16LE(off + 6);
    const ev: Event = { mask: buf.readBigUInt64LE(off + 8), fd: buf.readInt32LE(off + 16), pid: buf.readInt32LE(off + 20) };
    for (let info = off + metaLen; info < off + len;) {
      const type = buf.readUInt8(info);
      const infoLen = buf.readUInt16LE(info + 2);
      if (type === FAN_EVENT_INFO_TYPE_RANGE) {
        ev.range = { offset: Number(buf.readBigUInt64LE(info + 8)), count: Number(buf.readBigUInt64LE(info + 16)) };
      }
      info += infoLen;
    }
    events.push(ev);
    off += len;
  }
  return events;
}

function response(fd: number, answer: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeUInt32LE(answer, 4);
  return b;
}

/** A fanotify group read through FdPoller + devRead, closed after the test. */
function listen(t: TestContext, flags: number, onEvent: (fan: number, ev: Event) => void): number {
  const fan = fanotifyInit(flags | FAN_CLOEXEC | FAN_NONBLOCK, constants.O_RDWR);
  const buf = Buffer.alloc(64 * 1024);
  const poller = new FdPoller(fan, () => {
    for (let n = devRead(fan, buf); n > 0; n = devRead(fan, buf)) {
      for (const ev of parseEvents(buf, n)) onEvent(fan, ev);
    }
  });
  t.after(() => {
    poller.close();
    closeFd(fan);
  });
  return fan;
}

const needsRoot = isRoot ? false : 'fanotify needs CAP_SYS_ADMIN';

test('fanotify notification events arrive through FdPoller and devRead', { skip: needsRoot }, async (t) => {
  const file = join(tempDir(t), 'watched');
  writeFileSync(file, 'x');
  const seen: Event[] = [];
  const fan = listen(t, FAN_CLASS_NOTIF, (_fan, ev) => {
    seen.push(ev);
    closeFd(ev.fd);
  });
  fanotifyMark(fan, FAN_MARK_ADD, FAN_OPEN | FAN_CLOSE_NOWRITE, AT_FDCWD, file);

  readFileSync(file);
  await until(() => seen.some((e) => (e.mask & FAN_CLOSE_NOWRITE) !== 0n));
  assert.ok(seen.some((e) => (e.mask & FAN_OPEN) !== 0n));
  assert.ok(seen.every((e) => e.pid === process.pid && e.fd >= 0));
});

test('pre-content events: fill through the event fd, then allow or deny', { skip: needsRoot }, async (t) => {
  const file = join(tempDir(t, '/var/tmp'), 'lazy');
  const size = 256 * 1024;
  const fd = openSync(file, 'w');
  ftruncateSync(fd, size); // all hole: the content arrives on demand
  closeSync(fd);
  const expected = Buffer.alloc(size);
  for (let i = 0; i < size; i++) expected[i] = i % 251;

  let deny = false;
  let filled = 0;
  let fan: number;
  try {
    fan = listen(t, FAN_CLASS_PRE_CONTENT, (group, ev) => {
      if ((ev.mask & FAN_PRE_ACCESS) !== 0n && !deny && ev.range !== undefined) {
        const end = Math.min(size, ev.range.offset + ev.range.count);
        if (end > ev.range.offset) {
          writeSync(ev.fd, expected, ev.range.offset, end - ev.range.offset, ev.range.offset);
          filled += end - ev.range.offset;
        }
      }
      writeBuffer(group, response(ev.fd, deny ? FAN_DENY_ERRNO(5) : FAN_ALLOW));
      closeFd(ev.fd);
    });
    fanotifyMark(fan, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, file);
  } catch (err) {
    if (err instanceof NativeError && err.code === 'EINVAL') {
      t.skip(`this kernel/filesystem has no pre-content events (${err.message})`);
      return;
    }
    throw err;
  }

  // The read runs on the thread pool, so this thread is free to answer the events.
  assert.deepEqual(await readFile(file), expected);
  assert.ok(filled >= size, `filled ${filled} bytes`);

  deny = true;
  writeFileSync('/proc/sys/vm/drop_caches', '1');
  await assert.rejects(readFile(file), (e: NodeJS.ErrnoException) => e.code === 'EIO');
});

test('fanotify arguments are checked; kernel errors are NativeErrors', { skip: needsRoot }, (t) => {
  assert.throws(() => fanotifyMark(0, FAN_MARK_ADD, 1 as unknown as bigint, AT_FDCWD, '/'), NativeArgumentError);
  assert.throws(() => fanotifyMark(0, FAN_MARK_ADD, -1n, AT_FDCWD, '/'), NativeArgumentError);
  assert.throws(() => fanotifyInit(-1, 0), NativeArgumentError);
  const fan = fanotifyInit(FAN_CLASS_NOTIF | FAN_CLOEXEC, constants.O_RDONLY);
  t.after(() => closeFd(fan));
  assert.throws(
    () => fanotifyMark(fan, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, join(tempDir(t), 'missing')),
    (e: unknown) => e instanceof NativeError && e.code === 'ENOENT' && e.syscall === 'fanotify_mark',
  );
});
