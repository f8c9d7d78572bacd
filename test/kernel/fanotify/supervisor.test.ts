// ondine-supervisor on the real kernel: a sparse file on ext4 marked for pre-content events,
// the test worker (supervisor-worker.ts) filling it. Proves the supervisor answers what is
// already filled on its own, turns silence and errors into EIO, survives worker crashes
// without ever letting a read see zeros, and exits as promised.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { isRoot, tempDir, until } from '../../native/util.js';
import { patternBytes } from './pattern.js';

const SUPERVISOR = fileURLToPath(new URL('../../../../build/Release/ondine-supervisor', import.meta.url));
const WORKER = fileURLToPath(new URL('./supervisor-worker.js', import.meta.url));
const SIZE = 4 << 20;
const CHUNK = 64 * 1024;

interface Report {
  kind: string;
  generation: number;
  pid: number;
  id?: number;
  offset?: number;
  count?: number;
  stats?: Record<string, number>;
}

interface Supervisor {
  child: ChildProcess;
  reports: Report[];
  stderr: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
}

function sparseFile(t: TestContext): string {
  const file = join(tempDir(t, '/var/tmp'), 'lazy');
  const fd = openSync(file, 'w');
  ftruncateSync(fd, SIZE);
  closeSync(fd);
  return file;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function startSupervisor(
  t: TestContext,
  file: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Supervisor {
  const child = spawn(
    SUPERVISOR,
    [...args, '--restart-delay-ms', '50', '--', process.execPath, WORKER],
    { env: { ...process.env, WORKER_FILE: file, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const sup: Supervisor = {
    child,
    reports: [],
    stderr: [],
    exited: false,
    exit: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        sup.exited = true;
        resolve({ code, signal });
      });
    }),
  };
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
      sup.reports.push(JSON.parse(out.slice(0, nl)) as Report);
      out = out.slice(nl + 1);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => sup.stderr.push(chunk));
  t.after(async () => {
    if (!sup.exited) child.kill('SIGKILL');
    await sup.exit;
    for (const pid of new Set(sup.reports.map((r) => r.pid))) {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    await until(() => sup.reports.every((r) => !isAlive(r.pid)));
  });
  return sup;
}

function reports(sup: Supervisor, kind: string, generation?: number): Report[] {
  return sup.reports.filter((r) => r.kind === kind && (generation === undefined || r.generation === generation));
}

async function ready(sup: Supervisor, generation = 0): Promise<Report> {
  await until(() => reports(sup, 'ready', generation).length > 0 || sup.exited, 20000);
  const r = reports(sup, 'ready', generation)[0];
  assert.ok(r !== undefined, `worker generation ${generation} never became ready:\n${sup.stderr.join('')}`);
  return r;
}

/** A read through a fresh open: pre-content events are decided at open time. */
async function readRange(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function covers(r: Report, offset: number, length: number): boolean {
  return r.offset! <= offset && r.offset! + r.count! >= offset + length;
}

const skip = isRoot ? false : 'needs root (fanotify pre-content events)';

test('a cold read is filled by the worker; a warm one is allowed by the supervisor alone', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_STATS_ON_SIGUSR2: '1' });
  const worker = await ready(sup);

  assert.deepEqual(await readRange(file, 0, CHUNK), patternBytes(0, CHUNK));
  assert.ok(reports(sup, 'event').some((r) => covers(r, 0, CHUNK)), 'the worker saw the cold read');

  const before = reports(sup, 'event').length;
  assert.deepEqual(await readRange(file, 0, CHUNK), patternBytes(0, CHUNK));
  // A later cold read is forwarded after anything the warm read could have raised, so once
  // its event is in, every event of the warm read would be too.
  const later = 2 * CHUNK;
  assert.deepEqual(await readRange(file, later, CHUNK), patternBytes(later, CHUNK));
  const since = reports(sup, 'event').slice(before);
  assert.ok(since.some((r) => covers(r, later, CHUNK)), 'the later cold read reached the worker');
  assert.ok(since.every((r) => r.offset! >= CHUNK), `the warm read reached the worker: ${JSON.stringify(since)}`);

  process.kill(worker.pid, 'SIGUSR2');
  await until(() => reports(sup, 'stats').length > 0);
  const stats = reports(sup, 'stats')[0]!.stats!;
  assert.ok(stats.allowedAtOnce! >= 1, JSON.stringify(stats));
  assert.equal(stats.forwarded, stats.answered, JSON.stringify(stats));
  assert.equal(stats.pending, 0);
  assert.equal(stats.deniedByDeadline, 0);
});

test('read hints: a sequential read the supervisor allows on its own reaches the worker once per MiB with an fd it can fill through; warm and random reads do not', { skip }, async (t) => {
  const file = sparseFile(t);
  // The worker fills 2 MiB past a cold read (its read-ahead) and, on a hint, the rest of the
  // file through the hint's fd.
  const sup = startSupervisor(t, file, { WORKER_FILL_EXTRA: String(2 << 20), WORKER_HINT_FILL: String(SIZE) });
  await ready(sup);
  const step = 64 * 1024;
  const MiB = 1 << 20;
  assert.deepEqual(await readRange(file, 0, step), patternBytes(0, step));
  assert.equal(reports(sup, 'event').length, 1);
  // Sequential reads inside what the cold read filled: allowed at once. Within a MiB of the
  // last read the worker heard of, none is passed on; at 1 MiB, with a hole 1 MiB further,
  // one is.
  for (let off = step; off <= MiB; off += step) assert.deepEqual(await readRange(file, off, step), patternBytes(off, step));
  await until(() => reports(sup, 'hint-filled').length > 0, 10_000);
  assert.deepEqual(reports(sup, 'hint').map((r) => [r.offset, r.count]), [[MiB, step]]);
  // The worker filled the rest through the hint's fd: no event of its own, and the reader
  // gets the bytes without one either.
  for (let off = MiB + step; off < SIZE; off += step) assert.deepEqual(await readRange(file, off, step), patternBytes(off, step));
  // A random read of a full file: nothing past it to fetch.
  assert.deepEqual(await readRange(file, 4096, 4096), patternBytes(4096, 4096));
  await readRange(file, SIZE - step, step);
  assert.equal(reports(sup, 'event').length, 1, JSON.stringify(reports(sup, 'event')));
  assert.equal(reports(sup, 'hint').length, 1, JSON.stringify(reports(sup, 'hint')));
});

test('read hints: reads that do not continue the previous one are never passed on', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_FILL_EXTRA: String(3 << 20) });
  await ready(sup);
  const MiB = 1 << 20;
  assert.deepEqual(await readRange(file, 0, 4096), patternBytes(0, 4096));
  // Filled [0, 3 MiB + 4 KiB); the tail is a hole. Jumps of 1.5 MiB never continue a read.
  for (const off of [1.5 * MiB, 0, 3 * MiB, 1.5 * MiB, 3 * MiB - 8192]) {
    assert.deepEqual(await readRange(file, off, 4096), patternBytes(off, 4096));
  }
  // The cold tail, then a read just behind it: it continues, but within a step of the read
  // the worker just had, so no hint either.
  assert.deepEqual(await readRange(file, SIZE - 65536, 65536), patternBytes(SIZE - 65536, 65536));
  await readRange(file, SIZE - 65536, 4096);
  assert.equal(reports(sup, 'hint').length, 0, JSON.stringify(reports(sup, 'hint')));
  assert.equal(reports(sup, 'event').length, 2);
});

test('a worker that never answers: the reader gets EIO at the deadline, not a hang', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_MODE: 'silent' }, ['--deadline-ms', '1500']);
  await ready(sup);
  await assert.rejects(readRange(file, 0, CHUNK), (e: NodeJS.ErrnoException) => e.code === 'EIO');
  assert.ok(reports(sup, 'event').length > 0, 'the worker was asked');
  assert.match(sup.stderr.join(''), /unanswered by its deadline/);
});

test('a deadline after an answered one still denies at its time (the timer is re-armed lazily)', { skip }, async (t) => {
  const file = sparseFile(t);
  const deadlineMs = 1500;
  const sup = startSupervisor(t, file, { WORKER_ANSWER_FIRST: '1' }, ['--deadline-ms', String(deadlineMs)]);
  await ready(sup);
  // The first event arms the timer for its deadline and is answered; the second comes later,
  // so its deadline is later than the timer: the supervisor must wake at the first deadline,
  // find nothing due, and re-arm for the second rather than forget it.
  assert.deepEqual(await readRange(file, 0, CHUNK), patternBytes(0, CHUNK));
  const t0 = Date.now();
  await assert.rejects(readRange(file, 4 * CHUNK, CHUNK), (e: NodeJS.ErrnoException) => e.code === 'EIO');
  assert.ok(Date.now() - t0 >= deadlineMs - 100, `denied after ${Date.now() - t0} ms, before its ${deadlineMs} ms deadline`);
  assert.match(sup.stderr.join(''), /unanswered by its deadline/);
});

test('a worker that answers an error: the reader gets EIO', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_MODE: 'deny' });
  await ready(sup);
  await assert.rejects(readRange(file, 0, CHUNK), (e: NodeJS.ErrnoException) => e.code === 'EIO');
  assert.ok(reports(sup, 'event').length > 0);
});

test('SIGKILL of the worker while a read waits: never zeros, and the service comes back', { skip }, async (t) => {
  const file = sparseFile(t);
  const kills = 3;
  // Generations 0..kills-1 take events and sit on them; each is killed holding one.
  const sup = startSupervisor(t, file, { WORKER_HOLD_BELOW: String(kills) });
  await ready(sup, 0); // the mark is in place: only then may the reader open the file
  const offset = CHUNK;
  const pendingRead = readRange(file, offset, CHUNK).then(
    (bytes) => ({ bytes }),
    (error: NodeJS.ErrnoException) => ({ error }),
  );
  for (let generation = 0; generation < kills; generation++) {
    const worker = await ready(sup, generation);
    await until(() => reports(sup, 'event', generation).some((r) => covers(r, offset, CHUNK)), 20000);
    process.kill(worker.pid, 'SIGKILL');
  }
  await ready(sup, kills);
  const result = await pendingRead;
  t.diagnostic(`the held read ended with ${'error' in result ? result.error.code : 'the pattern'}`);
  if ('error' in result) {
    assert.equal(result.error.code, 'EIO', String(result.error));
  } else {
    assert.deepEqual(result.bytes, patternBytes(offset, CHUNK), 'the read after the kills got other bytes');
  }
  const cold = 3 * CHUNK;
  assert.deepEqual(await readRange(file, cold, CHUNK), patternBytes(cold, CHUNK), 'service is back');
  assert.ok(reports(sup, 'event', kills).some((r) => covers(r, cold, CHUNK)));
  assert.equal(sup.exited, false);
});

test('the first worker exiting before READY ends the supervisor with its code', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_MODE: 'exit-before-ready' });
  const { code } = await sup.exit;
  assert.equal(code, 2, sup.stderr.join(''));
});

test('SIGTERM: the supervisor stops its worker and exits 0', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file);
  const worker = await ready(sup);
  sup.child.kill('SIGTERM');
  const { code, signal } = await sup.exit;
  assert.equal(signal, null);
  assert.equal(code, 0, sup.stderr.join(''));
  assert.equal(isAlive(worker.pid), false, 'the worker outlived its supervisor');
});

test('many concurrent cold reads all get their bytes', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file);
  await ready(sup);
  const count = SIZE / CHUNK;
  const reads = Array.from({ length: count }, (_, i) => readRange(file, i * CHUNK, CHUNK));
  const results = await Promise.all(reads);
  results.forEach((bytes, i) => assert.ok(bytes.equals(patternBytes(i * CHUNK, CHUNK)), `chunk ${i}`));
  assert.ok(reports(sup, 'event').length >= 1);
});

test('SIGTERM with a read pending: the reader gets EIO and the supervisor exits 0', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_MODE: 'silent' });
  await ready(sup);
  const read = readRange(file, 0, CHUNK);
  await until(() => reports(sup, 'event').length > 0);
  sup.child.kill('SIGTERM');
  await assert.rejects(read, (e: NodeJS.ErrnoException) => e.code === 'EIO');
  assert.equal((await sup.exit).code, 0, sup.stderr.join(''));
});

test('SIGTERM to a worker that ignores it: SIGKILL after the deadline, exit 0', { skip }, async (t) => {
  const file = sparseFile(t);
  const sup = startSupervisor(t, file, { WORKER_MODE: 'ignore-sigterm' }, ['--deadline-ms', '1000']);
  const worker = await ready(sup);
  sup.child.kill('SIGTERM');
  assert.equal((await sup.exit).code, 0, sup.stderr.join(''));
  assert.ok(reports(sup, 'sigterm-ignored').length > 0, 'the worker got SIGTERM first');
  assert.match(sup.stderr.join(''), /ignored SIGTERM; killing it/);
  assert.equal(isAlive(worker.pid), false);
});

test('without CAP_SYS_ADMIN the supervisor says so and exits 3', { skip }, async () => {
  const child = spawn('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', SUPERVISOR, '--', 'true'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 3, err);
  const line = JSON.parse(err.trim().split('\n')[0]!) as { level: number; name: string; msg: string };
  assert.equal(line.level, 50);
  assert.equal(line.name, 'supervisor');
  assert.match(line.msg, /CAP_SYS_ADMIN/);
});

test('bad arguments: usage and exit 64', async () => {
  const child = spawn(SUPERVISOR, ['--deadline-ms', 'soon', '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 64);
  assert.match(err, /usage: ondine-supervisor/);
});
