// Orchestrator of scripts/soak/kill-worker.sh, run once the daemon is up and both images are
// mounted: forks the reader processes (reader.ts), SIGKILLs the daemon's worker `kills` times
// at random intervals, each time waiting until the service is back (health answers with a
// new workerPid, the supervisor unchanged), drops the page cache and starts over from fresh
// cache files now and then so reads stay cold, then stops the readers and prints the
// summary. Exit 1 on any WRONG read, unexpected error, read blocked past slowMs, service not
// back in time, or lost supervisor; results.json holds everything.
//
//   node dist/scripts/soak/kill-worker/soak.js <config.json>
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonClient, type DaemonHealth } from '../../../src/daemon/client.js';
import { mulberry32 } from '../../../test/helpers/prng.js';
import type { FromReader, ReaderKind, ReaderStats, SoakConfig, ToReader } from './common.js';

const READER = fileURLToPath(new URL('./reader.js', import.meta.url));
const configPath = process.argv[2];
if (!configPath) {
  process.stderr.write('usage: soak.js <config.json>\n');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configPath, 'utf8')) as SoakConfig;
const client = new DaemonClient(cfg.socket);
const rand = mulberry32(cfg.seed);
const started = performance.now();
const say = (s: string): void => { process.stderr.write(`soak: [${((performance.now() - started) / 1000).toFixed(1)}s] ${s}\n`); };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const failures: string[] = [];
const fail = (s: string): void => {
  failures.push(s);
  if (failures.length <= 20) say(`FAIL: ${s}`);
  else if (failures.length === 21) say('FAIL: more problems follow (counted in the summary)');
};

interface Reader {
  name: string;
  child: ChildProcess;
  final?: ReaderStats;
  exited: boolean;
  waiters: Array<{ ev: FromReader['ev']; resolve: () => void }>;
}
const readers: Reader[] = [];
let passSinceRecycle = false;

function startReader(kind: ReaderKind, index: number): Reader {
  const child = fork(READER, [configPath!, kind, String(index)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const r: Reader = { name: `${kind}#${index}`, child, exited: false, waiters: [] };
  child.on('message', (m: FromReader) => {
    if (m.ev === 'wrong') fail(`WRONG bytes (${r.name}): ${m.what}`);
    else if (m.ev === 'error') fail(`unexpected error (${r.name}): ${m.what}`);
    else if (m.ev === 'slow') fail(`read ${m.done ? 'took' : 'still blocked after'} ${m.ms} ms > ${cfg.slowMs} ms (${r.name}): ${m.what}`);
    else if (m.ev === 'pass') passSinceRecycle = true;
    else if (m.ev === 'final') r.final = m.stats;
    for (const w of r.waiters.filter((x) => x.ev === m.ev)) w.resolve();
    r.waiters = r.waiters.filter((x) => x.ev !== m.ev);
  });
  child.on('exit', (code, signal) => {
    r.exited = true;
    if (!r.final) fail(`reader ${r.name} died (code ${code}, signal ${signal})`);
    for (const w of r.waiters) w.resolve();
    r.waiters = [];
  });
  return r;
}

/** Resolves true once `r` sends `ev`, false after `ms` or if it exits first. */
function awaitEvent(r: Reader, ev: FromReader['ev'], ms: number): Promise<boolean> {
  if (r.exited) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    r.waiters.push({ ev, resolve: () => { clearTimeout(timer); resolve(!r.exited || (ev === 'final' && r.final !== undefined)); } });
  });
}

function tell(r: Reader, m: ToReader): void {
  if (!r.exited && r.child.connected) r.child.send(m);
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

async function health(): Promise<DaemonHealth | undefined> {
  return client.health().catch(() => undefined);
}

/** Fresh, empty cache files for both images: unmount, delete them, mount again. */
async function recycle(): Promise<void> {
  const t0 = performance.now();
  readers.forEach((r) => tell(r, { cmd: 'pause' }));
  const paused = await Promise.all(readers.map((r) => awaitEvent(r, 'paused', cfg.slowMs + 10000)));
  if (paused.some((p) => !p)) {
    fail(`readers did not pause for a cache recycle: ${readers.filter((_, i) => !paused[i]).map((r) => r.name).join(', ')}`);
    return;
  }
  const st = await client.stats() as { mounts?: Array<{ mountpoint: string; blobs?: Array<{ cacheFile: string }> }> };
  const mine = [cfg.big, cfg.tree];
  const cacheFiles = (st.mounts ?? []).filter((m) => mine.some((x) => x.mountpoint === m.mountpoint)).flatMap((m) => (m.blobs ?? []).map((b) => b.cacheFile));
  for (const m of mine) await client.umount(m.mountpoint);
  for (const f of cacheFiles) rmSync(f, { force: true });
  for (const m of mine) await client.mount({ bootstrap: join(m.image, 'bootstrap'), mountpoint: m.mountpoint });
  readers.forEach((r) => tell(r, { cmd: 'resume' }));
  passSinceRecycle = false;
  say(`fresh caches (${cacheFiles.length} cache files deleted, ${((performance.now() - t0) / 1000).toFixed(2)} s)`);
}

async function main(): Promise<number> {
  const h0 = await health();
  if (!h0) throw new Error(`no daemon answers on ${cfg.socket}`);
  // null: a daemon run with --no-supervisor, the negative control (a kill must show up here).
  const supervisorPid = h0.supervisorPid;
  if (supervisorPid === null) say('warning: this daemon runs without its supervisor: killing the worker kills the service');

  let index = 0;
  for (const kind of ['seq', 'random', 'walk'] as const) {
    for (let i = 0; i < cfg.readers[kind]; i++) readers.push(startReader(kind, index++));
  }
  await Promise.all(readers.map((r) => awaitEvent(r, 'ready', 30000)));
  say(`${readers.length} readers (${readers.map((r) => r.name).join(', ')}); ${cfg.kills} kills, ${cfg.minGapMs}-${cfg.maxGapMs} ms apart`);

  const backMs: number[] = [];
  let kills = 0;
  let recycles = 0;
  let drops = 0;
  let sinceRecycle = 0;
  for (let k = 1; k <= cfg.kills && failures.length === 0; k++) {
    await sleep(cfg.minGapMs + rand() * (cfg.maxGapMs - cfg.minGapMs));
    const h = await health();
    if (!h) { fail(`kill ${k}: the daemon does not answer before the kill`); break; }
    if (h.supervisorPid !== supervisorPid) { fail(`kill ${k}: the supervisor changed (${supervisorPid} -> ${h.supervisorPid})`); break; }
    const victim = h.workerPid;
    if (supervisorPid !== null && parentOf(victim) !== supervisorPid) { fail(`kill ${k}: workerPid ${victim} is not a child of the supervisor ${supervisorPid}`); break; }
    const t0 = performance.now();
    process.kill(victim, 'SIGKILL');
    kills++;
    let back: DaemonHealth | undefined;
    while (performance.now() - t0 < cfg.backTimeoutMs) {
      const now = await health();
      if (now && now.workerPid !== victim) { back = now; break; }
      await sleep(25);
    }
    const ms = performance.now() - t0;
    if (!back) { fail(`kill ${k}: the service was not back ${cfg.backTimeoutMs} ms after killing worker ${victim}`); break; }
    if (back.supervisorPid !== supervisorPid) { fail(`kill ${k}: the supervisor changed (${supervisorPid} -> ${back.supervisorPid})`); break; }
    backMs.push(ms);
    say(`kill ${k}/${cfg.kills}: worker ${victim} -> ${back.workerPid}, back in ${(ms / 1000).toFixed(2)} s${back.ok ? '' : ` (health: ${back.problems?.join('; ')})`}`);
    sinceRecycle++;
    if (k < cfg.kills && (passSinceRecycle || sinceRecycle >= cfg.recycleEvery)) {
      await recycle();
      recycles++;
      sinceRecycle = 0;
    } else if (k % cfg.dropEvery === 0) {
      writeFileSync('/proc/sys/vm/drop_caches', '1');
      drops++;
    }
  }
  // Let the reads raised around the last restart end, then stop.
  await sleep(2000);
  readers.forEach((r) => tell(r, { cmd: 'stop' }));
  const finals = await Promise.all(readers.map((r) => awaitEvent(r, 'final', cfg.slowMs + 15000)));
  readers.forEach((r, i) => {
    if (!finals[i] && !r.final) {
      fail(`reader ${r.name} did not stop (a read blocked?)`);
      r.child.kill('SIGKILL');
    }
  });

  const stats = await client.stats().catch((err: unknown) => ({ error: String(err) })) as Record<string, unknown>;
  const fan = (stats.fanotify ?? {}) as Record<string, unknown>;
  const sup = (fan.supervisor ?? {}) as Record<string, number>;
  const all = readers.map((r) => r.final).filter((s): s is ReaderStats => s !== undefined);
  const sum = (f: (s: ReaderStats) => number) => all.reduce((a, s) => a + f(s), 0);
  const slowest = all.reduce<ReaderStats | undefined>((a, s) => (!a || s.maxMs > a.maxMs ? s : a), undefined);
  const result = {
    kills, recycles, drops,
    reads: { ok: sum((s) => s.ok), eio: sum((s) => s.eio), wrong: sum((s) => s.wrong), errors: sum((s) => s.errors), overOneSecond: sum((s) => s.overOneSecond), bytesOk: sum((s) => s.bytesOk) },
    maxReadMs: Math.round(slowest?.maxMs ?? 0), maxReadWhat: slowest?.maxWhat ?? '',
    backMs: { max: Math.round(Math.max(0, ...backMs)), median: Math.round([...backMs].sort((a, b) => a - b)[Math.floor(backMs.length / 2)] ?? 0) },
    supervisor: sup,
    worker: Object.fromEntries(Object.entries(fan).filter(([, v]) => typeof v === 'number')),
    readers: all,
    failures,
    seconds: Math.round((performance.now() - started) / 1000),
  };
  writeFileSync(join(cfg.out, 'results.json'), JSON.stringify(result, null, 2) + '\n');

  const line = (s: string) => process.stdout.write(s + '\n');
  line(`kills: ${kills} (service back: median ${(result.backMs.median / 1000).toFixed(2)} s, max ${(result.backMs.max / 1000).toFixed(2)} s); cache recycles ${recycles}, drop_caches ${drops}; ${result.seconds} s`);
  line(`reads: ${result.reads.ok} ok (${(result.reads.bytesOk / 2 ** 20).toFixed(0)} MiB), ${result.reads.eio} EIO, ${result.reads.wrong} WRONG, ${result.reads.errors} other errors; ${result.reads.overOneSecond} took > 1 s`);
  line(`max read latency: ${(result.maxReadMs / 1000).toFixed(2)} s (${result.maxReadWhat}); limit ${(cfg.slowMs / 1000).toFixed(1)} s`);
  for (const s of all) line(`  ${s.kind}#${s.index}: ${s.ok} ok, ${s.eio} EIO, ${s.wrong} WRONG, ${s.errors} errors, ${s.passes} passes, max ${(s.maxMs / 1000).toFixed(2)} s`);
  if (fan.supervisor) {
    line(`supervisor: workerRestarts ${sup.workerRestarts}, events ${sup.events}, allowedAtOnce ${sup.allowedAtOnce}, forwarded ${sup.forwarded}, answered ${sup.answered}, deniedByDeadline ${sup.deniedByDeadline}, lateAnswers ${sup.lateAnswers}, pending ${sup.pending}`);
    line(`worker (since its last restart): ${Object.entries(result.worker).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } else {
    line(`no supervisor counters (${'error' in stats ? 'the daemon does not answer' : 'no supervisor'})`);
  }
  if (failures.length > 0) {
    line(`FAILED: ${failures.length} problem(s):`);
    for (const f of failures.slice(0, 20)) line(`  ${f}`);
    return 1;
  }
  line('PASSED: no wrong bytes, no read blocked past the limit, the service came back after every kill');
  return 0;
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => {
  say(`error: ${(err as Error).stack ?? String(err)}`);
  for (const r of readers) if (!r.exited) r.child.kill('SIGKILL');
  process.exitCode = 2;
});
