// SupervisorLink against a hand-driven supervisor end (a SEQPACKET socketpair): what the
// worker receives, what it sends, and how it notices the supervisor going away.
import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { InvalidArgumentError } from '../../../src/errors.js';
import {
  LINK_MAX_SIZE,
  LinkType,
  decodeLinkMessage,
  encodeLinkMessage,
} from '../../../src/kernel/fanotify/link-wire.js';
import { SupervisorLink, type SupervisorEvent } from '../../../src/kernel/fanotify/supervisor-link.js';
import { closeFd, recvMessage, sendMessage, setCloexec, socketpair } from '../../../src/native/index.js';
import { tempDir, until } from '../../native/util.js';

test('fromEnv: undefined without a supervisor, fds and generation from the environment', () => {
  assert.equal(SupervisorLink.fromEnv({}), undefined);
  const link = SupervisorLink.fromEnv({ ONDINE_SUPERVISOR_FD: '3', ONDINE_FANOTIFY_FD: '4', ONDINE_WORKER_GENERATION: '2' }, false)!;
  assert.equal(link.linkFd, 3);
  assert.equal(link.groupFd, 4);
  assert.equal(link.generation, 2);
  assert.throws(() => SupervisorLink.fromEnv({ ONDINE_SUPERVISOR_FD: 'three' }), InvalidArgumentError);
  assert.throws(() => SupervisorLink.fromEnv({ ONDINE_SUPERVISOR_FD: '3' }, false)!.groupFd, InvalidArgumentError);
});

test('fromEnv makes the inherited fds close-on-exec', (t) => {
  const [a, b] = socketpair();
  t.after(() => { closeFd(a); closeFd(b); });
  setCloexec(a, false);
  setCloexec(b, false);
  const cloexec = (fd: number): boolean =>
    (parseInt(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/flags:\s+(\d+)/)![1]!, 8) & 0o2000000) !== 0;
  assert.equal(cloexec(a), false);
  SupervisorLink.fromEnv({ ONDINE_SUPERVISOR_FD: String(a), ONDINE_FANOTIFY_FD: String(b) });
  assert.equal(cloexec(a), true);
  assert.equal(cloexec(b), true);
});

test('events arrive with their fd; answers, READY and stats go back', async (t) => {
  const [sup, worker] = socketpair({ nonBlocking: true });
  t.after(() => closeFd(sup));
  const file = join(tempDir(t), 'cache');
  writeFileSync(file, 'x');
  const fd = openSync(file, 'r+');

  const link = new SupervisorLink(worker, 9, 1);
  t.after(() => link.close());
  const events: SupervisorEvent[] = [];
  let closed = 0;
  link.start((ev) => events.push(ev), () => closed++);

  const ev = { type: LinkType.Event, id: 5, offset: 4096, count: 8192, dev: 1n, ino: 2n, groupFd: 33, pid: 77 } as const;
  assert.equal(sendMessage(sup, encodeLinkMessage(ev), fd), true);
  closeSync(fd);
  await until(() => events.length === 1);
  const got = events[0]!;
  assert.deepEqual({ ...got, fd: 0 }, { id: 5, offset: 4096, count: 8192, dev: 1n, ino: 2n, fd: 0, groupFd: 33, pid: 77 });
  assert.equal(fstatSync(got.fd).ino, statSync(file).ino, 'the fd is the cache file');
  closeSync(got.fd);

  link.answer(5, 0);
  link.answer(6, 5);
  link.ready();
  const buf = Buffer.alloc(LINK_MAX_SIZE);
  const sent = [];
  for (let m = recvMessage(sup, buf); m.length >= 0; m = recvMessage(sup, buf)) sent.push(decodeLinkMessage(buf, m.length));
  assert.deepEqual(sent, [
    { type: LinkType.Answer, id: 5, err: 0 },
    { type: LinkType.Answer, id: 6, err: 5 },
    { type: LinkType.Ready },
  ]);

  const stats = link.stats();
  await until(() => recvMessage(sup, buf).length === 8);
  assert.equal(decodeLinkMessage(buf, 8).type, LinkType.StatsRequest);
  const values = { events: 9, allowedAtOnce: 4, forwarded: 5, answered: 5, deniedByDeadline: 0, lateAnswers: 1, workerRestarts: 2, pending: 0 };
  sendMessage(sup, encodeLinkMessage({ type: LinkType.Stats, stats: values }));
  assert.deepEqual(await stats, values);
  assert.equal(closed, 0);
});

test('a malformed datagram is reported and skipped; a closed supervisor ends the link once', async (t) => {
  const [sup, worker] = socketpair({ nonBlocking: true });
  const link = new SupervisorLink(worker);
  t.after(() => link.close());
  const errors: Error[] = [];
  const events: SupervisorEvent[] = [];
  let closed = 0;
  link.start((ev) => events.push(ev), () => closed++, (err) => errors.push(err));

  sendMessage(sup, Buffer.from([1, 0, 0])); // too short
  sendMessage(sup, encodeLinkMessage({ type: LinkType.Event, id: 1, offset: 0, count: 1, dev: 0n, ino: 0n, groupFd: 3, pid: 1 })); // no fd
  await until(() => errors.length === 2);
  assert.equal(events.length, 0);

  const stats = assert.rejects(link.stats(), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET');
  closeFd(sup);
  await until(() => closed === 1);
  await stats;
  link.answer(1, 0); // dropped quietly: the supervisor answers on its own
  assert.equal(closed, 1);
});
