// Unit tests of the fanotify front end's protocol logic with a fake cache: every event is
// answered exactly once (allow after a fill, deny on failure, timeout or an unknown file), and
// its fd is closed once, only after every write started through it has finished. The kernel
// itself is exercised in test/e2e/fanotify*.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FanotifyFrontend, type FanotifyTarget } from '../../../src/kernel/fanotify/frontend.js';
import { AccessReply } from '../../../src/kernel/fanotify/replies.js';
import type { BlobCache } from '../../../src/storage/blob-cache.js';
import { FdWriter } from '../../../src/storage/cache-file.js';

/** A fake io: records writes by fd, fails any write to a closed fd. */
class FakeIo {
  closed: number[] = [];
  writes: Array<[number, number]> = [];
  async write(fd: number, offset: number): Promise<void> {
    await new Promise((r) => setTimeout(r, 5));
    assert.ok(!this.closed.includes(fd), `write through fd ${fd} after it was closed`);
    this.writes.push([fd, offset]);
  }
  isAllocated(): boolean { return false; }
}

function frontend(cache: BlobCache | undefined, opts: { fillTimeoutMs?: number } = {}) {
  const io = new FakeIo();
  const files = { writer: (fd: number) => new FdWriter(fd, io) };
  const target: FanotifyTarget | undefined = cache && { label: 'test', cache };
  const fe = new FanotifyFrontend(files, { byInode: () => target }, (fd) => io.closed.push(fd), opts);
  const answers: number[] = [];
  const reply = () => new AccessReply((err) => answers.push(err), 't');
  return { fe, io, answers, reply };
}

const ev = (fd: number) => ({ offset: 0, count: 4096, dev: 1, ino: 2, fd });

test('an event is allowed after its fill, and its fd closed once', async () => {
  const cache: BlobCache = { size: 1 << 20, complete: false, fill: async (o, n, w) => { await w.write(o, Buffer.alloc(n)); } };
  const { fe, io, answers, reply } = frontend(cache);
  fe.handle(ev(7), reply());
  await fe.idle();
  assert.deepEqual(answers, [0]);
  assert.deepEqual(io.closed, [7]);
});

test('an event for a file the daemon does not serve is denied at once (never allowed: zeros)', async () => {
  const { fe, io, answers, reply } = frontend(undefined);
  fe.handle(ev(8), reply());
  await fe.idle();
  assert.equal(answers.length, 1);
  assert.notEqual(answers[0], 0);
  assert.deepEqual(io.closed, [8]);
  assert.equal(fe.stats.unknownFiles, 1);
});

test('a failing fill is denied, exactly once', async () => {
  const cache: BlobCache = { size: 1 << 20, complete: false, fill: async () => { throw Object.assign(new Error('source down'), { errno: 5 }); } };
  const { fe, answers, reply } = frontend(cache);
  fe.handle(ev(9), reply());
  await fe.idle();
  assert.deepEqual(answers, [5]);
  assert.equal(fe.stats.denied, 1);
});

test('a fill past the timeout is denied once; the fd stays open until the fill settles', async () => {
  let finish!: () => void;
  const gate = new Promise<void>((r) => { finish = r; });
  const cache: BlobCache = { size: 1 << 20, complete: false, fill: async (o, n, w) => { await gate; await w.write(o, Buffer.alloc(n)); } };
  const { fe, io, answers, reply } = frontend(cache, { fillTimeoutMs: 30 });
  fe.handle(ev(10), reply());
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(answers.length, 1, 'the timeout did not answer');
  assert.notEqual(answers[0], 0);
  assert.deepEqual(io.closed, [], 'the fd was closed while the fill could still write through it');
  finish();
  await fe.idle();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(answers.length, 1, 'answered twice');
  assert.deepEqual(io.closed, [10]);
});

test('regression: read-ahead written after the fill resolved still goes through an open fd', async () => {
  // Before the fix the front end closed the event fd when the fill resolved, while the
  // read-ahead it started was still writing: those writes failed (and were fetched again),
  // or landed in whatever file reused the fd number.
  const cache: BlobCache = {
    size: 1 << 20,
    complete: false,
    fill: async (o, n, w) => {
      const release = w.hold!();
      void (async () => {
        await new Promise((r) => setTimeout(r, 30));
        await w.write(o + n, Buffer.alloc(4096));
        release();
      })();
      await w.write(o, Buffer.alloc(n));
    },
  };
  const { fe, io, answers, reply } = frontend(cache);
  fe.handle(ev(11), reply());
  await fe.idle();
  assert.deepEqual(answers, [0]);
  assert.deepEqual(io.closed, [], 'closed before the read-ahead write');
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(io.writes.map(([fd]) => fd), [11, 11]);
  assert.deepEqual(io.closed, [11]);
});
