// The worker the supervisor tests run under build/Release/ondine-supervisor: it marks one
// sparse file through the group fd it inherited, then fills ranges with the test pattern.
// Behaviour from the environment:
//   WORKER_FILE       the sparse file to mark (FAN_PRE_ACCESS)
//   WORKER_MODE       fill (default) | silent (never answers) | deny (answers EIO) |
//                     exit-before-ready (exits 2 before READY) | ignore-sigterm (fills, and
//                     survives SIGTERM)
//   WORKER_HOLD_BELOW generations below this number receive events but never answer them
//   WORKER_ANSWER_FIRST answers only this many events, then goes silent
//   WORKER_FILL_EXTRA   fills this many bytes past each event's range too (read-ahead)
//   WORKER_HINT_FILL    on a HINT, fills [hint offset, + this many bytes) through the hint's fd
// Reports JSON lines on stdout: {kind:'ready'|'event'|'stats', generation, pid, ...}.
import { closeSync, fstatSync, writeSync } from 'node:fs';

import { SupervisorLink } from '../../../src/kernel/fanotify/supervisor-link.js';
import { AT_FDCWD, FAN_MARK_ADD, FAN_PRE_ACCESS, fanotifyMark } from '../../../src/native/index.js';
import { patternBytes } from './pattern.js';

const BLOCK = 4096;
const link = SupervisorLink.fromEnv();
if (link === undefined) {
  console.error('supervisor-worker: ONDINE_SUPERVISOR_FD is not set');
  process.exit(1);
}
const mode = process.env.WORKER_MODE ?? 'fill';
const fillExtra = Number(process.env.WORKER_FILL_EXTRA ?? '0');
const hintFill = Number(process.env.WORKER_HINT_FILL ?? '0');
const holdBelow = Number(process.env.WORKER_HOLD_BELOW ?? '0');
let answerLeft = Number(process.env.WORKER_ANSWER_FIRST ?? 'Infinity');
const generation = link.generation;
const report = (kind: string, fields: object = {}): void => {
  process.stdout.write(`${JSON.stringify({ kind, generation, pid: process.pid, ...fields })}\n`);
};

if (mode === 'exit-before-ready') process.exit(2);
if (mode === 'ignore-sigterm') process.on('SIGTERM', () => report('sigterm-ignored'));

fanotifyMark(link.groupFd, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, process.env.WORKER_FILE!);

link.start(
  (ev) => {
    report('event', { id: ev.id, offset: ev.offset, count: ev.count, ino: String(ev.ino) });
    if (generation < holdBelow || mode === 'silent' || answerLeft-- <= 0) return; // keeps the fd: never answered
    if (mode === 'deny') {
      closeSync(ev.fd);
      link.answer(ev.id, 5);
      return;
    }
    // Whole blocks: an allocated block is taken as filled by the supervisor's hole check.
    const size = fstatSync(ev.fd).size;
    const start = Math.floor(ev.offset / BLOCK) * BLOCK;
    const end = Math.min(size, Math.ceil((ev.offset + ev.count + fillExtra) / BLOCK) * BLOCK);
    writeSync(ev.fd, patternBytes(start, end - start), 0, end - start, start);
    closeSync(ev.fd);
    link.answer(ev.id, 0);
  },
  () => process.exit(0),
  (err) => console.error(`supervisor-worker: ${err.message}`),
  (h) => {
    report('hint', { offset: h.offset, count: h.count, ino: String(h.ino) });
    if (hintFill > 0) {
      const end = Math.min(fstatSync(h.fd).size, h.offset + hintFill);
      writeSync(h.fd, patternBytes(h.offset, end - h.offset), 0, end - h.offset, h.offset);
      report('hint-filled', { offset: h.offset, count: end - h.offset });
    }
    closeSync(h.fd);
  },
);
link.ready();
report('ready');

if (process.env.WORKER_STATS_ON_SIGUSR2 === '1') {
  process.on('SIGUSR2', () => {
    link.stats().then((stats) => report('stats', { stats }), (err: Error) => report('stats-error', { message: err.message }));
  });
}
