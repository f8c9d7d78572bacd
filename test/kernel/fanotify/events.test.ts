import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CorruptError } from '../../../src/errors.js';
import { INFO_RANGE_LEN, parseFanotifyEvents } from '../../../src/kernel/fanotify/events.js';
import {
  FAN_EVENT_INFO_TYPE_RANGE,
  FAN_EVENT_METADATA_LEN,
  FAN_NOFD,
  FAN_OPEN_PERM,
  FAN_PRE_ACCESS,
  FAN_Q_OVERFLOW,
} from '../../../src/native/constants.js';

// struct fanotify_event_metadata (+ info records), as the kernel lays them out.
function event(mask: bigint, fd: number, pid: number, infos: Buffer[] = [], vers = 3): Buffer {
  const meta = Buffer.alloc(FAN_EVENT_METADATA_LEN);
  const len = FAN_EVENT_METADATA_LEN + infos.reduce((n, b) => n + b.length, 0);
  meta.writeUInt32LE(len, 0);
  meta.writeUInt8(vers, 4);
  meta.writeUInt16LE(FAN_EVENT_METADATA_LEN, 6);
  meta.writeBigUInt64LE(mask, 8);
  meta.writeInt32LE(fd, 16);
  meta.writeInt32LE(pid, 20);
  return Buffer.concat([meta, ...infos]);
}

function rangeInfo(offset: bigint, count: bigint): Buffer {
  const b = Buffer.alloc(INFO_RANGE_LEN);
  b.writeUInt8(FAN_EVENT_INFO_TYPE_RANGE, 0);
  b.writeUInt16LE(INFO_RANGE_LEN, 2);
  b.writeBigUInt64LE(offset, 8);
  b.writeBigUInt64LE(count, 16);
  return b;
}

function otherInfo(type: number, len: number): Buffer {
  const b = Buffer.alloc(len, 0xee);
  b.writeUInt8(type, 0);
  b.writeUInt8(0, 1);
  b.writeUInt16LE(len, 2);
  return b;
}

test('sizes match the uapi structs', () => {
  assert.equal(FAN_EVENT_METADATA_LEN, 24);
  assert.equal(INFO_RANGE_LEN, 24);
});

test('a read buffer of several events parses, range records included', () => {
  const buf = Buffer.concat([
    event(FAN_PRE_ACCESS, 7, 100, [otherInfo(1, 12), rangeInfo(4096n, 65536n)]),
    event(FAN_OPEN_PERM, 8, 101),
    event(FAN_Q_OVERFLOW, FAN_NOFD, 0),
  ]);
  assert.deepEqual(parseFanotifyEvents(buf), [
    { mask: FAN_PRE_ACCESS, fd: 7, pid: 100, range: { offset: 4096, count: 65536 } },
    { mask: FAN_OPEN_PERM, fd: 8, pid: 101 },
    { mask: FAN_Q_OVERFLOW, fd: -1, pid: 0 },
  ]);
  const bigger = Buffer.concat([buf, Buffer.alloc(100, 0xff)]);
  assert.equal(parseFanotifyEvents(bigger, buf.length).length, 3, 'only `length` bytes are read');
  assert.deepEqual(parseFanotifyEvents(buf, 0), []);
});

test('every truncation of an event is a CorruptError', () => {
  const buf = event(FAN_PRE_ACCESS, 7, 100, [rangeInfo(0n, 4096n)]);
  for (let len = 1; len < buf.length; len++) {
    assert.throws(() => parseFanotifyEvents(buf, len), CorruptError, `cut to ${len}`);
  }
});

test('bad versions, lengths and info records are CorruptErrors with their offset', () => {
  const second = event(FAN_OPEN_PERM, 8, 1, [], 2);
  const buf = Buffer.concat([event(FAN_OPEN_PERM, 7, 1), second]);
  assert.throws(() => parseFanotifyEvents(buf), (e: unknown) => e instanceof CorruptError && e.offset === 24 + 4);

  const metaLen = event(FAN_OPEN_PERM, 7, 1);
  metaLen.writeUInt16LE(8, 6);
  assert.throws(() => parseFanotifyEvents(metaLen), (e: unknown) => e instanceof CorruptError && e.offset === 6);

  const overrun = event(FAN_OPEN_PERM, 7, 1);
  overrun.writeUInt32LE(1000, 0);
  assert.throws(() => parseFanotifyEvents(overrun), (e: unknown) => e instanceof CorruptError && e.offset === 0);

  const zeroInfo = event(FAN_PRE_ACCESS, 7, 1, [otherInfo(1, 8)]);
  zeroInfo.writeUInt16LE(0, 24 + 2);
  assert.throws(() => parseFanotifyEvents(zeroInfo), CorruptError);

  const shortRange = event(FAN_PRE_ACCESS, 7, 1, [otherInfo(FAN_EVENT_INFO_TYPE_RANGE, 16)]);
  assert.throws(() => parseFanotifyEvents(shortRange), (e: unknown) => e instanceof CorruptError && /range record of 16/.test(e.message));

  const huge = event(FAN_PRE_ACCESS, 7, 1, [rangeInfo(2n ** 62n, 1n)]);
  assert.throws(() => parseFanotifyEvents(huge), (e: unknown) => e instanceof CorruptError && e.offset === 24 + 8);

  assert.throws(() => parseFanotifyEvents(Buffer.alloc(4), 5), CorruptError);
});
