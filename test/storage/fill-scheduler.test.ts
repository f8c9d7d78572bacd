// The fill scheduler alone: classes, the per-source budget, demand first and its reserved
// slots, cancellation, bounded queues, stale work dropped, and its per-class stats. Tasks are
// promises the test settles by hand, so every ordering asserted is the scheduler's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FillDroppedError, FillScheduler, type FillClass } from '../../src/storage/fill-scheduler.js';

/** A task the test finishes by hand; records when it started. */
class Tasks {
  readonly started: string[] = [];
  private readonly finishers = new Map<string, () => void>();
  task(name: string): () => Promise<string> {
    return () => {
      this.started.push(name);
      return new Promise<string>((resolve) => this.finishers.set(name, () => resolve(name)));
    };
  }
  finish(name: string): void {
    const f = this.finishers.get(name);
    assert.ok(f, `${name} was not started`);
    this.finishers.delete(name);
    f();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

test('a source never has more reads in flight than its budget; other sources have budgets of their own', async () => {
  const s = new FillScheduler({ budget: 3, reserved: 0 });
  const t = new Tasks();
  const a = {};
  const b = {};
  const runs = [];
  for (let i = 0; i < 7; i++) runs.push(s.run(a, 'demand', 10, t.task(`a${i}`)));
  for (let i = 0; i < 2; i++) runs.push(s.run(b, 'demand', 10, t.task(`b${i}`)));
  await tick();
  assert.deepEqual(t.started, ['a0', 'a1', 'a2', 'b0', 'b1']);
  assert.equal(s.inFlight(a), 3);
  t.finish('a1');
  await tick();
  assert.deepEqual(t.started.slice(5), ['a3'], 'a freed slot goes to the next queued read, in order');
  for (const n of ['a0', 'a2', 'a3', 'b0', 'b1']) t.finish(n);
  await tick();
  for (const n of ['a4', 'a5', 'a6']) t.finish(n);
  assert.deepEqual(await Promise.all(runs), ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'b0', 'b1']);
  assert.equal(s.inFlight(a), 0);
  assert.equal(s.stats().demand.requests, 9);
  assert.equal(s.stats().demand.bytes, 90);
});

test('lower classes never take the reserved slots; demand queued behind them goes first when a slot frees', async () => {
  const s = new FillScheduler({ budget: 4, reserved: 2 });
  const t = new Tasks();
  const src = {};
  const runs: Promise<string>[] = [];
  for (let i = 0; i < 4; i++) runs.push(s.run(src, 'readahead', 1, t.task(`r${i}`)));
  runs.push(s.run(src, 'background', 1, t.task('bg')));
  runs.push(s.run(src, 'prefetch', 1, t.task('pf')));
  await tick();
  assert.deepEqual(t.started, ['r0', 'r1'], 'read-ahead took more than budget - reserved slots');
  // A reader arrives: the reserved slots are free for it at once.
  runs.push(s.run(src, 'demand', 1, t.task('d0')));
  runs.push(s.run(src, 'demand', 1, t.task('d1')));
  runs.push(s.run(src, 'demand', 1, t.task('d2')));
  await tick();
  assert.deepEqual(t.started.slice(2), ['d0', 'd1'], 'demand did not get the reserved slots');
  // A read-ahead slot frees: the queued demand read takes it, not the older read-ahead.
  t.finish('r0');
  await tick();
  assert.deepEqual(t.started.slice(4), ['d2']);
  // Demand done: read-ahead first, then prefetch, then background, never past budget - reserved.
  for (const n of ['d0', 'd1', 'd2']) t.finish(n);
  await tick();
  assert.deepEqual(t.started.slice(5), ['r2']);
  t.finish('r1');
  await tick();
  assert.deepEqual(t.started.slice(6), ['r3']);
  t.finish('r2');
  t.finish('r3');
  await tick();
  assert.deepEqual(t.started.slice(7), ['pf', 'bg']);
  t.finish('pf');
  t.finish('bg');
  await Promise.all(runs);
  const st = s.stats();
  assert.equal(st.readahead.requests, 4);
  assert.equal(st.prefetch.requests, 1);
  assert.equal(st.background.requests, 1);
  assert.equal(st.demand.requests, 3);
  assert.ok(st.readahead.maxQueueWaitMs >= 0 && st.demand.queued === 0 && st.demand.inFlight === 0);
});

test('a queued read whose signal aborts is cancelled without running; one in flight is left to its task', async () => {
  const s = new FillScheduler({ budget: 1, reserved: 0 });
  const t = new Tasks();
  const src = {};
  const ac = new AbortController();
  const first = s.run(src, 'demand', 1, t.task('first'), ac.signal);
  const queued = s.run(src, 'demand', 1, t.task('queued'), ac.signal);
  const other = s.run(src, 'demand', 1, t.task('other'));
  await tick();
  ac.abort(Object.assign(new Error('deadline'), { name: 'AbortError' }));
  await assert.rejects(queued, /deadline/);
  t.finish('first');
  assert.equal(await first, 'first');
  await tick();
  assert.deepEqual(t.started, ['first', 'other'], 'the cancelled read ran');
  t.finish('other');
  await other;
  assert.equal(s.stats().demand.cancelled, 1);
  await assert.rejects(s.run(src, 'demand', 1, t.task('late'), ac.signal), /deadline/);
  assert.ok(!t.started.includes('late'));
});

test('queues are bounded: lower classes drop their oldest, demand is refused with ONDINE_ERR_BUSY', async () => {
  const s = new FillScheduler({ budget: 2, reserved: 1, maxQueued: { demand: 2, readahead: 3 } });
  const t = new Tasks();
  const src = {};
  const busy = [s.run(src, 'demand', 1, t.task('d0')), s.run(src, 'demand', 1, t.task('d1'))];
  const queued = [s.run(src, 'demand', 1, t.task('dq0')), s.run(src, 'demand', 1, t.task('dq1'))];
  const refused = s.run(src, 'demand', 1, t.task('dq2'));
  await assert.rejects(refused, (e: unknown) => e instanceof FillDroppedError && e.code === 'ONDINE_ERR_BUSY' && e.reason === 'full');
  const ra = [0, 1, 2, 3, 4].map((i) => s.run(src, 'readahead', 1, t.task(`r${i}`)));
  for (const p of ra.slice(0, 2)) await assert.rejects(p, (e: unknown) => e instanceof FillDroppedError && e.fillClass === 'readahead');
  for (const n of ['d0', 'd1']) t.finish(n);
  await tick();
  for (const n of ['dq0', 'dq1']) t.finish(n);
  await Promise.all([...busy, ...queued]);
  for (let i = 2; i < 5; i++) {
    await tick();
    t.finish(`r${i}`);
  }
  assert.deepEqual(await Promise.all(ra.slice(2)), ['r2', 'r3', 'r4']);
  assert.ok(!t.started.includes('r0') && !t.started.includes('r1') && !t.started.includes('dq2'));
  assert.equal(s.stats().readahead.dropped, 2);
  assert.equal(s.stats().demand.dropped, 1);
});

test('queued lower-class work goes stale after its class\'s wait, and can be dropped on request; demand never is', async () => {
  let now = 0;
  const s = new FillScheduler({ budget: 1, reserved: 0, staleMs: { readahead: 100 }, now: () => now });
  const t = new Tasks();
  const src = {};
  const busy = s.run(src, 'demand', 1, t.task('busy'));
  const stale = s.run(src, 'readahead', 1, t.task('stale'));
  const bg = s.run(src, 'background', 1, t.task('bg'));
  const pf = s.run(src, 'prefetch', 1, t.task('pf'));
  const d = s.run(src, 'demand', 1, t.task('d'));
  now = 1_000;
  assert.equal(s.dropQueued('background', src), 1);
  await assert.rejects(bg, (e: unknown) => e instanceof FillDroppedError && e.reason === 'dropped');
  t.finish('busy');
  await busy;
  await tick();
  assert.deepEqual(t.started, ['busy', 'd'], 'a demand read waiting for ages must still run');
  t.finish('d');
  await d;
  await assert.rejects(stale, (e: unknown) => e instanceof FillDroppedError && e.reason === 'stale');
  await tick();
  assert.deepEqual(t.started, ['busy', 'd', 'pf'], 'prefetch (60 s by default) went stale after 1 s');
  t.finish('pf');
  await pf;
});

test('a task that throws or rejects frees its slot and rejects its caller', async () => {
  const s = new FillScheduler({ budget: 1, reserved: 0 });
  const src = {};
  await assert.rejects(s.run(src, 'demand', 1, () => { throw new Error('sync boom'); }), /sync boom/);
  await assert.rejects(s.run(src, 'demand', 1, () => Promise.reject(new Error('async boom'))), /async boom/);
  assert.equal(await s.run(src, 'demand', 1, async () => 'ok'), 'ok');
  assert.equal(s.inFlight(src), 0);
});

test('every class is served, in class order, when slots are plenty', async () => {
  const s = new FillScheduler({ budget: 8, reserved: 2 });
  const classes: FillClass[] = ['background', 'prefetch', 'readahead', 'demand'];
  const got = await Promise.all(classes.map((c) => s.run({}, c, 5, async () => c)));
  assert.deepEqual(got, classes);
  for (const c of classes) assert.equal(s.stats()[c].requests, 1);
});
