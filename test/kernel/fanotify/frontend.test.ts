// FanotifyFrontend without a kernel: every event answered exactly once (allow after a fill,
// deny on failure, unknown file or deadline), at most `concurrency` fills at once, and each
// event fd closed once, only after the fill that writes through it has settled.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constants } from 'node:os';
import { FanotifyFrontend, type FanotifyTarget } from '../../../src/kernel/fanotify/frontend.js';
import { AccessReply } from '../../../src/kernel/fanotify/replies.js';
import type { BlobCache } from '../../../src/storage/blob-cache.js';
import { CacheFileIo } from '../../../src/storage/cache-file.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

function setup(opts: { concurrency?: number; fillTimeoutMs?: number }, fill: BlobCache['fill']) {
  const cache: BlobCache = { size: 1 << 20, complete: false, fill };
  const target: FanotifyTarget = { label: 't', cache };
  const closed: number[] = [];
  const answers = new Map<number, number[]>();
  const fe = new FanotifyFrontend(new CacheFileIo(), { byInode: (_d, ino) => (Number(ino) === 7 ? target : undefined) }, (fd) => closed.push(fd), opts);
  const send = (fd: number, ino = 7) => {
    const reply = new AccessReply((err) => answers.set(fd, [...(answers.get(fd) ?? []), err]), `fd ${fd}`);
    fe.handle({ offset: 0, count: 4096, dev: 1, ino, fd }, reply);
  };
  return { fe, send, closed, answers };
}

const tick = () => new Promise((r) => setImmediate(r));

test('fills run at most `concurrency` at once; each is allowed and its fd closed after it settles', async () => {
  const gates: Array<ReturnType<typeof deferred>> = [];
  let active = 0;
  let peak = 0;
  const { fe, send, closed, answers } = setup({ concurrency: 2 }, async () => {
    active++;
    peak = Math.max(peak, active);
    const g = deferred();
    gates.push(g);
    await g.promise;
    active--;
  });
  for (let fd = 100; fd < 105; fd++) send(fd);
  await tick();
  assert.equal(gates.length, 2);
  assert.deepEqual(closed, []);
  for (let released = 0; released < 5; released++) {
    assert.ok(gates.length > released, `fill ${released} started`);
    gates[released]!.resolve();
    await tick();
  }
  await fe.idle();
  assert.equal(peak, 2);
  assert.deepEqual([...answers.entries()].sort(), [100, 101, 102, 103, 104].map((fd) => [fd, [0]]));
  assert.deepEqual([...closed].sort(), [100, 101, 102, 103, 104]);
  assert.equal(fe.stats.fills, 5);
});

test('a failed fill is denied with its errno; an unknown file is denied with EIO', async () => {
  const { fe, send, closed, answers } = setup({}, async () => {
    throw Object.assign(new Error('source down'), { errno: constants.errno.ENETUNREACH });
  });
  send(10);
  send(11, 99);
  await fe.idle();
  await tick();
  assert.deepEqual(answers.get(10), [constants.errno.ENETUNREACH]);
  assert.deepEqual(answers.get(11), [constants.errno.EIO]);
  assert.deepEqual([...closed].sort(), [10, 11]);
  assert.equal(fe.stats.denied, 2);
  assert.equal(fe.stats.unknownFiles, 1);
});

test('events past the deadline are denied once (running and queued); the fd of a fill closes only when it settles', async () => {
  const gate = deferred();
  let signal: AbortSignal | undefined;
  const { fe, send, closed, answers } = setup({ concurrency: 1, fillTimeoutMs: 50 }, async (_o, _l, _w, abort) => {
    signal = abort?.signal;
    await gate.promise;
  });
  send(20);
  send(21); // queued behind 20
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(answers.get(20), [constants.errno.ETIMEDOUT]);
  assert.deepEqual(answers.get(21), [constants.errno.ETIMEDOUT]);
  assert.equal(signal?.aborted, true);
  assert.equal(fe.stats.timeouts, 2);
  // A timed-out fill frees its slot (21 then starts) but keeps its fd until it settles.
  assert.deepEqual(closed, []);
  gate.resolve();
  await fe.idle();
  await tick();
  assert.deepEqual(answers.get(20), [constants.errno.ETIMEDOUT], 'answered once');
  assert.deepEqual([...closed].sort(), [20, 21]);
  assert.equal(fe.stats.fills, 0);
});
