// Measuring half of scripts/bench/host-read.sh: runs on the host as root and reads the same
// images every way the fanotify path is compared with, then writes results.json:
//   native EROFS     mount(2) of the bootstrap with device=<unpacked blob> (file-backed, no loop)
//   erofsfuse        erofs-utils 1.8.6 over the same bootstrap and unpacked blob
//   C listener cold  clistener.c: pre-content marks on fresh sparse cache files, file-backed
//                    mount over them, each event filled by a plain copy from the unpacked blob
//   Ondine           (when the CLI has `mount --mode`) cold from a local-dir source, warm with
//                    the blob complete, warm with the blob half filled
// "Cold" is page cache dropped for native and FUSE, fresh sparse cache files for the C listener
// and Ondine. The repeatable measurements (native, FUSE, C listener, Ondine warm) run
// interleaved round by round, the best of each kept; Ondine cold runs once. Every measurement's
// bytes are checked against the source files: a mismatch fails the run, whatever the timings.
//
//   node dist/scripts/bench/host-read/driver.js <work>/config.json
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { MS_RDONLY } from '../../../src/native/constants.js';
import { mount, umount2 } from '../../../src/native/index.js';
import type { Expected } from '../vm-read/common.js';
import { hashFile, mounted, prime, randomReads, sameBlocks, secs, seqRead, treeHash } from '../lib/reads.js';

export interface Image { dir: string; bootstrap: string; unpacked: string; size: number }
export interface HostConfig {
  repo: string;
  work: string;
  out: string;
  src: string;
  expected: Expected;
  /** Image A (big file + tree) and image B (the big file alone, small chunks). */
  a: Image;
  b: Image;
  erofsfuse: string;
  clistener?: string;
  /** Whether `ondine mount --help` lists --mode (the fanotify front end is there). */
  ondine: boolean;
  reads: number;
  maxRandomSeconds: number;
  reps: number;
  /** /sys/dev/block/<major:minor>/stat of the disk holding the work dir (absent if unknown). */
  diskStat?: string;
  /** Output of decode/driver.js --json over image A, measured by the script beforehand. */
  decode?: unknown;
  /** Only these workloads (default all); the warm Ondine rows need all of them. */
  only?: Work[];
}
export type Work = 'seq' | 'half' | 'walk' | 'random';
export const WORKS: readonly Work[] = ['seq', 'half', 'walk', 'random'];

export interface Measure {
  sec: number;
  bytes?: number;
  reads?: number;
  ok: boolean;
  /** Bytes the disk holding the work dir read during the measurement (all processes). */
  diskBytes?: number;
  /** When repeated: every repetition's headline figure (seconds; reads/s for random reads). */
  all?: number[];
}
/** seq: the whole big file; half: its first half; walk: every small file; random: 4 KiB reads on image B. */
export interface Row { seq?: Measure; half?: Measure; walk?: Measure; random?: Measure }
export interface Results {
  kernel: string;
  started: string;
  cpus: number;
  reps: number;
  reads: number;
  ondine: 'measured' | 'not available';
  /** The workloads measured (absent: all). */
  only?: Work[];
  decode?: unknown;
  rows: Record<string, Row>;
  /** `ondine status --json` after each Ondine step, as printed (its fields are not fixed yet). */
  ondineStatus?: Record<string, unknown>;
  failures: string[];
}

const log = (msg: string) => process.stderr.write(`host-read: ${msg}\n`);

function dropCaches(): void {
  spawnSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** Reads every file of the tree with C programs (find + cat): the file system's cost, not a JS loop's. */
function walk(dir: string): { sec: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/bin/sh', ['-c', 'find "$1" -type f -exec cat {} + >/dev/null', 'walk', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`walk of ${dir} failed (${r.status}): ${r.stderr}`);
  return { sec: secs(t0) };
}

/** Keeps the better of two measurements (shorter time, or more reads/s) and every figure. */
function keep(m: Measure | undefined, fresh: Measure): Measure {
  const figure = (x: Measure) => (x.reads ? x.reads / x.sec : x.sec);
  const better = !m || (fresh.reads ? figure(fresh) > figure(m) : fresh.sec < m.sec);
  const all = [...(m?.all ?? []), figure(fresh)];
  const ok = (m?.ok ?? true) && fresh.ok;
  return better ? { ...fresh, ok, all } : { ...m!, ok, all };
}

/**
 * The helper processes this run starts. A helper that starts processes of its own (the Ondine
 * daemon: supervisor and worker) gets a process group, signalled as a whole.
 */
class Helpers {
  private readonly procs: Array<{ proc: ChildProcess; exited: Promise<void>; group: boolean }> = [];
  constructor(private readonly pidFile: string) {}

  spawn(cmd: string, args: string[], logPath: string, opts: { stdout?: 'pipe' | 'log'; group?: boolean } = {}): ChildProcess {
    const fd = openSync(logPath, 'a');
    const group = opts.group ?? false;
    const proc = spawn(cmd, args, { stdio: ['ignore', opts.stdout === 'pipe' ? 'pipe' : fd, fd], detached: group });
    closeSync(fd);
    // The script's exit trap signals whatever is still listed here if this process dies first
    // (a negative id: the whole group).
    if (proc.pid) appendFileSync(this.pidFile, `${group ? -proc.pid : proc.pid}\n`);
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    this.procs.push({ proc, exited, group });
    return proc;
  }

  async stop(proc: ChildProcess, graceMs = 30_000): Promise<void> {
    const entry = this.procs.find((p) => p.proc === proc);
    if (!entry) return;
    const signal = (sig: NodeJS.Signals) => {
      try { process.kill(entry.group ? -proc.pid! : proc.pid!, sig); } catch { /* gone */ }
    };
    if (proc.exitCode === null && proc.signalCode === null) {
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), graceMs);
      await entry.exited;
      clearTimeout(t);
    }
    // Whatever of its group outlived the leader.
    if (entry.group) signal('SIGKILL');
    this.procs.splice(this.procs.indexOf(entry), 1);
  }

  async stopAll(): Promise<void> {
    for (const { proc } of [...this.procs].reverse()) await this.stop(proc);
  }
}

function umountAll(under: string): void {
  const points = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m): m is string => !!m && m.startsWith(under + '/'));
  for (const m of points.reverse()) {
    try {
      umount2(m);
    } catch {
      try { umount2(m, 2 /* MNT_DETACH */); } catch { /* already gone */ }
    }
  }
}

async function waitFor(what: string, cond: () => boolean, proc: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what}: the process exited (${proc.exitCode ?? proc.signalCode})`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as HostConfig;
  const exp = cfg.expected;
  const results: Results = {
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), started: new Date().toISOString(),
    cpus: Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()), reps: cfg.reps, reads: cfg.reads,
    ondine: cfg.ondine ? 'measured' : 'not available', ...(cfg.only ? { only: cfg.only } : {}), ...(cfg.decode ? { decode: cfg.decode } : {}), rows: {}, failures: [],
  };
  const save = () => writeFileSync(join(cfg.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  const row = (name: string) => (results.rows[name] ??= {});
  const check = (name: string, what: string, ok: boolean) => {
    if (!ok) { results.failures.push(`${name}: ${what} read the wrong bytes`); log(`FAIL ${name}: ${what} read the wrong bytes`); }
    return ok;
  };
  const mntRoot = join(cfg.work, 'mnt');
  const mnt = (n: string) => { const d = join(mntRoot, n); mkdirSync(d, { recursive: true }); return d; };
  const reference = join(cfg.src, exp.big.path);
  const half = Math.floor(exp.big.bytes / 2 / 4096) * 4096;
  const halfSha = hashFile(reference, half);
  if (hashFile(reference) !== exp.big.sha256) throw new Error(`${reference} does not match its expected digest: regenerate the work dir`);
  const helpers = new Helpers(join(cfg.work, 'pids'));
  const only = new Set<Work>(cfg.only ?? WORKS);
  const full = WORKS.every((w) => only.has(w));
  const works = (list: readonly Work[]) => list.filter((w) => only.has(w));

  // One run of a workload with the page cache dropped first, then its bytes checked against
  // the source. The disk counter stops before the check, which reads the source files.
  const diskRead = () => (cfg.diskStat ? Number(readFileSync(cfg.diskStat, 'utf8').trim().split(/\s+/)[2]) * 512 : 0);
  const measure = (name: string, w: Work, dirA: string, dirB: string): Measure => {
    dropCaches();
    const d0 = diskRead();
    const disk = () => (cfg.diskStat ? { diskBytes: diskRead() - d0 } : {});
    const big = join(dirA, exp.big.path);
    if (w === 'seq' || w === 'half') {
      const r = seqRead(big, w === 'half' ? half : Infinity);
      const m = { sec: r.sec, bytes: r.bytes, ...disk() };
      const ok = w === 'half'
        ? check(name, 'first half of the big file', r.bytes === half && hashFile(big, half) === halfSha)
        : check(name, 'big file', r.bytes === exp.big.bytes && hashFile(big) === exp.big.sha256);
      return { ...m, ok };
    }
    if (w === 'walk') {
      const tree = join(dirA, exp.tree.path);
      const r = walk(tree);
      const m = { sec: r.sec, ...disk() };
      return { ...m, ok: check(name, 'small files', treeHash(tree).digest === exp.tree.digest) };
    }
    const r = randomReads(join(dirB, exp.big.path), cfg.reads, cfg.maxRandomSeconds);
    const m = { sec: r.sec, reads: r.reads, ...disk() };
    return { ...m, ok: check(name, '4 KiB random reads', sameBlocks(reference, r.offsets, r.data)) };
  };
  const fmt = (w: Work, m: Measure) => (m.reads ? `${w} ${(m.reads / m.sec).toFixed(0)} reads/s` : m.bytes ? `${w} ${(m.bytes / 1e6 / m.sec).toFixed(1)} MB/s` : `${w} ${m.sec.toFixed(3)} s`);
  const record = (name: string, w: Work, m: Measure) => {
    row(name)[w] = keep(row(name)[w], m);
    return fmt(w, m);
  };
  const fileMount = (bootstrap: string, device: string, dir: string) => mount(bootstrap, dir, 'erofs', MS_RDONLY, `device=${device}`);

  try {
    // ---- Ondine (fanotify): cold runs happen once; they leave the caches the warm runs use ----
    let ondineWarm: { a: string; b: string } | undefined;
    let ondinePartial: string | undefined;
    if (cfg.ondine) {
      const cli = join(cfg.repo, 'dist/src/cli/main.js');
      const status: Record<string, unknown> = {};
      // A daemon that serves both paths is told which one to measure, where it has the choice.
      const daemonHelp = spawnSync(process.execPath, [cli, 'daemon', '--help'], { encoding: 'utf8' }).stdout;
      // Builds that return from `ondine daemon` once it serves need --foreground to be signalled.
      const daemonMode = [...(/--mode\b/.test(daemonHelp) ? ['--mode', 'fanotify'] : []), ...(/--foreground\b/.test(daemonHelp) ? ['--foreground'] : [])];
      results.ondineStatus = status;
      const daemon = async (name: string) => {
        const cacheDir = join(cfg.work, 'ondine', name, 'cache');
        rmSync(cacheDir, { recursive: true, force: true });
        mkdirSync(cacheDir, { recursive: true });
        const socket = join(cfg.work, 'ondine', name, 'sock');
        const proc = helpers.spawn(process.execPath, [cli, 'daemon', '--cache-dir', cacheDir, '--socket', socket, ...daemonMode], join(cfg.out, `ondine-${name}.log`), { group: true });
        const ondine = (args: string[]) => {
          const r = spawnSync(process.execPath, [cli, ...args, '--socket', socket], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`ondine ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
          return r.stdout;
        };
        await waitFor(`ondine daemon ${name}`, () => spawnSync(process.execPath, [cli, 'status', '--json', '--socket', socket]).status === 0, proc);
        return {
          mount: (img: Image, dir: string) => ondine(['mount', img.dir, dir, '--mode', 'fanotify', '--cache-dir', cacheDir]),
          snapshot: (label: string) => {
            const text = ondine(['status', '--json']);
            try { status[label] = JSON.parse(text); } catch { status[label] = text; }
          },
        };
      };
      try {
        const name = 'Ondine cold';
        // d1: cold sequential (image A) and cold random reads (image B, its own blob), then the
        // rest of both blobs read once, unmeasured: the warm-complete rows use these caches.
        const d1 = await daemon('complete');
        const a1 = mnt('ondine-a');
        const b1 = mnt('ondine-b');
        d1.mount(cfg.a, a1);
        d1.mount(cfg.b, b1);
        if (only.has('seq')) {
          log(`${name}: ${record(name, 'seq', measure(name, 'seq', a1, b1))}`);
          d1.snapshot('after cold seq');
        }
        if (only.has('random')) {
          prime(b1, join(b1, exp.big.path));
          log(`${name}: ${record(name, 'random', measure(name, 'random', a1, b1))}`);
          d1.snapshot('after cold random');
        }
        if (full) {
          walk(join(a1, exp.tree.path));
          seqRead(join(b1, exp.big.path));
          d1.snapshot('after filling both blobs');
          ondineWarm = { a: a1, b: b1 };
        }
        // d2: the cold walk on fresh cache files, then the first half of the big file read
        // cold: the warm-partial row reads that half again from a half-filled blob.
        if (only.has('walk') || only.has('half')) {
          const d2 = await daemon('partial');
          const a2 = mnt('ondine-partial');
          d2.mount(cfg.a, a2);
          if (only.has('walk')) log(`${name}: ${record(name, 'walk', measure(name, 'walk', a2, b1))}`);
          if (only.has('half')) log(`${name}: ${record(name, 'half', measure(name, 'half', a2, b1))}`);
          d2.snapshot('partial: after cold walk and half');
          if (full) ondinePartial = a2;
        }
        save();
      } catch (err) {
        results.failures.push(`Ondine: ${(err as Error).message}`);
        log(`FAIL Ondine: ${(err as Error).message}`);
      }
    } else {
      log('ondine fanotify path not available yet (`ondine mount --help` lists no --mode): its rows are skipped');
    }

    // ---- native EROFS and erofsfuse: mounted once, measured each round ------------------------
    const natA = mnt('native-a');
    const natB = mnt('native-b');
    fileMount(cfg.a.bootstrap, cfg.a.unpacked, natA);
    fileMount(cfg.b.bootstrap, cfg.b.unpacked, natB);
    const fuseMount = async (img: Image, dir: string) => {
      const proc = helpers.spawn(cfg.erofsfuse, ['-f', `--device=${img.unpacked}`, img.bootstrap, dir], join(cfg.out, 'erofsfuse.log'));
      await waitFor(`erofsfuse on ${dir}`, () => mounted(dir), proc);
      return proc;
    };
    const fuseA = mnt('fuse-a');
    const fuseB = mnt('fuse-b');
    await fuseMount(cfg.a, fuseA);
    await fuseMount(cfg.b, fuseB);

    // ---- the C listener: fresh sparse cache files and mounts each round -----------------------
    const cRound = async (rep: number) => {
      if (!cfg.clistener) return;
      const name = 'C listener cold';
      const dir = join(cfg.work, 'clistener');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      // One sparse cache file per workload, so each starts empty.
      const caches = { seq: cfg.a, walk: cfg.a, random: cfg.b } as const;
      const pairs: string[] = [];
      for (const [w, img] of Object.entries(caches)) {
        const cache = join(dir, `${w}.cache`);
        closeSync(openSync(cache, 'w'));
        spawnSync('truncate', ['-s', String(img.size), cache]);
        pairs.push(`${img.unpacked}=${cache}`);
      }
      const proc = helpers.spawn(cfg.clistener, pairs, join(cfg.out, 'clistener.log'), { stdout: 'pipe' });
      // The marks are in place once it says so; only then mount (a later mark is never consulted).
      await new Promise<void>((resolve, reject) => {
        const rl = createInterface({ input: proc.stdout! });
        rl.once('line', (l) => (l === 'ready' ? resolve() : reject(new Error(`clistener said ${l}`))));
        proc.once('exit', (code) => reject(new Error(`clistener exited (${code}); see ${cfg.out}/clistener.log`)));
      });
      const dirs: Record<string, string> = {};
      try {
        for (const [w, img] of Object.entries(caches)) {
          dirs[w] = mnt(`c-${w}`);
          fileMount(img.bootstrap, join(dir, `${w}.cache`), dirs[w]!);
        }
        const parts: string[] = [];
        if (only.has('seq')) parts.push(record(name, 'seq', measure(name, 'seq', dirs.seq!, dirs.random!)));
        if (only.has('walk')) parts.push(record(name, 'walk', measure(name, 'walk', dirs.walk!, dirs.random!)));
        if (only.has('random')) {
          prime(dirs.random!, join(dirs.random!, exp.big.path));
          parts.push(record(name, 'random', measure(name, 'random', dirs.seq!, dirs.random!)));
        }
        log(`${name} (round ${rep}): ${parts.join(', ')}`);
      } finally {
        for (const d of Object.values(dirs)) if (mounted(d)) umount2(d);
        await helpers.stop(proc);
      }
    };

    for (let rep = 1; rep <= cfg.reps; rep++) {
      for (const [name, a, b] of [['native EROFS', natA, natB], ['erofsfuse', fuseA, fuseB]] as const) {
        const parts = works(WORKS).map((w) => record(name, w, measure(name, w, a, b)));
        log(`${name} (round ${rep}): ${parts.join(', ')}`);
      }
      await cRound(rep);
      if (ondineWarm) {
        const name = 'Ondine warm, blob complete';
        const parts = WORKS.map((w) => record(name, w, measure(name, w, ondineWarm.a, ondineWarm.b)));
        log(`${name} (round ${rep}): ${parts.join(', ')}`);
      }
      if (ondinePartial) {
        const name = 'Ondine warm, blob half filled';
        log(`${name} (round ${rep}): ${record(name, 'half', measure(name, 'half', ondinePartial, ondinePartial))}`);
      }
      save();
    }
    if (results.ondineStatus && cfg.ondine) {
      // What the daemons did during the warm rounds (should be nothing but answers from the map).
      for (const [label, sock] of [['complete: after warm rounds', 'complete'], ['partial: after warm rounds', 'partial']] as const) {
        const r = spawnSync(process.execPath, [join(cfg.repo, 'dist/src/cli/main.js'), 'status', '--json', '--socket', join(cfg.work, 'ondine', sock, 'sock')], { encoding: 'utf8' });
        if (r.status === 0) { try { results.ondineStatus[label] = JSON.parse(r.stdout); } catch { results.ondineStatus[label] = r.stdout; } }
      }
    }
  } finally {
    if (cfg.ondine) {
      for (const d of ['ondine-a', 'ondine-b', 'ondine-partial']) {
        const dir = join(mntRoot, d);
        if (!mounted(dir)) continue;
        const sock = join(cfg.work, 'ondine', d === 'ondine-partial' ? 'partial' : 'complete', 'sock');
        spawnSync(process.execPath, [join(cfg.repo, 'dist/src/cli/main.js'), 'umount', dir, '--socket', sock], { encoding: 'utf8' });
      }
    }
    umountAll(mntRoot);
    await helpers.stopAll();
    save();
  }
  log(results.failures.length ? `${results.failures.length} failure(s)` : 'every path read the right bytes');
  process.exitCode = results.failures.length ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`host-read driver: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 3;
});
