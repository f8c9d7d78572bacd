import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CorruptError, InvalidArgumentError } from '../../../src/errors.js';
import {
  LINK_ANSWER_SIZE,
  LINK_EVENT_SIZE,
  LINK_HINT_SIZE,
  LINK_MAX_SIZE,
  LINK_READY_SIZE,
  LINK_STATS_REQUEST_SIZE,
  LINK_STATS_SIZE,
  LinkType,
  decodeLinkMessage,
  encodeLinkMessage,
  type LinkMessage,
} from '../../../src/kernel/fanotify/link-wire.js';

const samples: LinkMessage[] = [
  {
    type: LinkType.Event,
    id: 0xfffffffe,
    offset: 2 ** 40 + 4096,
    count: 65536,
    dev: 0x803n,
    ino: 0xffffffffffffffffn,
    groupFd: 17,
    pid: 4242,
  },
  { type: LinkType.Answer, id: 7, err: 5 },
  { type: LinkType.Answer, id: 8, err: -1 },
  { type: LinkType.Ready },
  { type: LinkType.StatsRequest },
  {
    type: LinkType.Stats,
    stats: {
      events: 1, allowedAtOnce: 2, forwarded: 3, answered: 4,
      deniedByDeadline: 5, lateAnswers: 6, workerRestarts: 7, pending: Number.MAX_SAFE_INTEGER,
    },
  },
  { type: LinkType.Hint, offset: 2 ** 33 + 65536, count: 131072, dev: 0xfd01n, ino: 0x1234567890n },
];

test('every link message has the size native/supervisor/wire.h gives it', () => {
  const sizes: Record<LinkType, number> = {
    [LinkType.Event]: 48,
    [LinkType.Answer]: 16,
    [LinkType.Ready]: 8,
    [LinkType.StatsRequest]: 8,
    [LinkType.Stats]: 72,
    [LinkType.Hint]: 40,
  };
  assert.deepEqual(
    [LINK_EVENT_SIZE, LINK_ANSWER_SIZE, LINK_READY_SIZE, LINK_STATS_REQUEST_SIZE, LINK_STATS_SIZE, LINK_HINT_SIZE],
    [48, 16, 8, 8, 72, 40],
  );
  assert.equal(LINK_MAX_SIZE, 72);
  for (const m of samples) assert.equal(encodeLinkMessage(m).length, sizes[m.type], LinkType[m.type]);
});

test('link messages round-trip', () => {
  for (const m of samples) assert.deepEqual(decodeLinkMessage(encodeLinkMessage(m)), m);
});

test('the EVENT layout is little endian at the documented offsets', () => {
  const buf = encodeLinkMessage(samples[0]!);
  assert.equal(buf.readUInt32LE(0), 1);
  assert.equal(buf.readUInt32LE(4), 0xfffffffe);
  assert.equal(buf.readBigUInt64LE(8), 2n ** 40n + 4096n);
  assert.equal(buf.readBigUInt64LE(16), 65536n);
  assert.equal(buf.readBigUInt64LE(24), 0x803n);
  assert.equal(buf.readBigUInt64LE(32), 0xffffffffffffffffn);
  assert.equal(buf.readInt32LE(40), 17);
  assert.equal(buf.readUInt32LE(44), 4242);
  const hint = encodeLinkMessage(samples.find((m) => m.type === LinkType.Hint)!);
  assert.equal(hint.readUInt32LE(0), 6);
  assert.equal(hint.readUInt32LE(4), 0);
  assert.equal(hint.readBigUInt64LE(8), 2n ** 33n + 65536n);
  assert.equal(hint.readBigUInt64LE(16), 131072n);
  assert.equal(hint.readBigUInt64LE(24), 0xfd01n);
  assert.equal(hint.readBigUInt64LE(32), 0x1234567890n);
  const answer = encodeLinkMessage({ type: LinkType.Answer, id: 9, err: 5 });
  assert.deepEqual([...answer], [2, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
});

test('a truncated or padded message of any type is a CorruptError', () => {
  for (const m of samples) {
    const buf = encodeLinkMessage(m);
    for (let len = 0; len < buf.length; len++) {
      assert.throws(() => decodeLinkMessage(buf, len), CorruptError, `${LinkType[m.type]} cut to ${len}`);
    }
    const longer = Buffer.concat([buf, Buffer.alloc(4)]);
    assert.throws(() => decodeLinkMessage(longer), CorruptError);
  }
});

test('unknown types and out-of-range numbers are refused', () => {
  const buf = Buffer.alloc(8);
  buf.writeUInt32LE(9, 0);
  assert.throws(() => decodeLinkMessage(buf), (e: unknown) => e instanceof CorruptError && e.offset === 0 && /unknown message type 9/.test(e.message));
  const ev = encodeLinkMessage(samples[0]!);
  ev.writeBigUInt64LE(2n ** 60n, 8);
  assert.throws(() => decodeLinkMessage(ev), (e: unknown) => e instanceof CorruptError && e.offset === 8);
  assert.throws(() => decodeLinkMessage(buf, 9), CorruptError);
  assert.throws(() => encodeLinkMessage({ type: LinkType.Answer, id: -1, err: 0 }), InvalidArgumentError);
  assert.throws(() => encodeLinkMessage({ type: LinkType.Answer, id: 1, err: 2 ** 31 }), InvalidArgumentError);
  assert.throws(() => encodeLinkMessage({ ...(samples[0] as LinkMessage & { type: LinkType.Event }), ino: -1n }), InvalidArgumentError);
});
