// A real fanotify daemon for host end-to-end tests, driven through the CLI as a user would:
// `ondine daemon` (which returns once the supervisor + worker answer, in a session of their
// own) on a scratch cache dir and socket under /var/tmp, `ondine mount|umount|status|stop`,
// and reads done in child processes with a stall watchdog (a read the kernel never completes
// must fail the test, not hang it). The daemon lives while its socket lock is held.
// Cleanup always runs: stop --force, then SIGKILL to the daemon's process group (the
// supervisor leads it), then every mount under the scratch dir detached.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DaemonClient } from '../../src/daemon/client.js';
import { lockHeld } from '../../src/daemon/socket-lock.js';
import { cli, cliPath, detachAllUnder, type RunResult } from './e2e-env.js';
import type { ReadJob, ReadOutcome } from './fanotify-reader.js';

const READER = fileURLToPath(new URL('./fanotify-reader.js', import.meta.url));

export interface BlobStatus { id: string; cacheFile: string; complete: boolean }
export interface MountStatus { mountpoint: string; bootstrap: string; bootstrapCache: string; blobs: BlobStatus[] }

/** The parts of `ondine status --json` these tests read. */
export interface DaemonStatus {
  workerPid: number;
  supervisorPid: number | null;
  modes: string[];
  fanotify?: {
    events: number; hints: number; fills: number; denied: number; timeouts: number;
    supervisor?: { events: number; allowedAtOnce: number; forwarded: number; answered: number; deniedByDeadline: number; lateAnswers: number; workerRestarts: number; pending: number };
  };
  sources: Record<string, Record<string, { bytes: number; requests: number }>>;
  mounts: MountStatus[];
}

export interface DaemonOptions {
  /** Worker fill timeout (--read-timeout); the supervisor's deadline is 5 s more. */
  readTimeoutMs?: number;
  /** Cache directory to reuse (default: <root>/cache). */
  cacheDir?: string;
  /** Socket (default: <root>/run-<n>/ondine.sock). */
  socket?: string;
  extraArgs?: string[];
}

type After = { after(fn: () => unknown): void };

let seq = 0;

export class FanotifyDaemon {
  readonly client: DaemonClient;
  private readonly mountpoints = new Set<string>();
  private exitSeen: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;

  /** `supervisorPid`: the daemon's first process (its session and process group leader). */
  constructor(readonly supervisorPid: number, readonly socket: string, readonly cacheDir: string, readonly logPath: string) {
    this.client = new DaemonClient(socket);
  }

  /** Whether any process of the daemon still lives (they hold the socket's lock). */
  get alive(): boolean {
    return lockHeld(this.socket);
  }

  /**
   * Resolves once every process of the daemon is gone, with the supervisor's exit code as it
   * logged it (null when it died without a word: a signal).
   */
  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.exitSeen ??= (async () => {
      while (this.alive) await new Promise((r) => setTimeout(r, 50));
      const exits = [...this.logText().matchAll(/"msg":"supervisor exits".*?"code":(-?\d+)|"code":(-?\d+).*?"msg":"supervisor exits"/g)];
      const last = exits.at(-1);
      return { code: last ? Number(last[1] ?? last[2]) : null, signal: null };
    })();
    return this.exitSeen;
  }

  private logText(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }

  /** The last lines of the daemon's log, for failure messages. */
  logTail(lines = 30): string {
    return this.logText().split('\n').slice(-lines).join('\n');
  }

  /** `ondine <verb> … --socket <ours>`. */
  cli(args: readonly string[]): Promise<RunResult> {
    return cli([...args, '--socket', this.socket]);
  }

  async status(): Promise<DaemonStatus> {
    return (await this.client.stats()) as unknown as DaemonStatus;
  }

  /** `ondine mount` that must succeed; the mount point is made and remembered for cleanup. */
  async mount(image: string, mountpoint: string, extra: readonly string[] = []): Promise<void> {
    mkdirSync(mountpoint, { recursive: true });
    this.mountpoints.add(mountpoint);
    const r = await cli(['mount', image, mountpoint, '--mode', 'fanotify', '--socket', this.socket, '--cache-dir', this.cacheDir, ...extra]);
    if (r.code !== 0) throw new Error(`ondine mount ${image} ${mountpoint} exited ${r.code}: ${r.stderr.trim()}\ndaemon log:\n${this.logTail()}`);
  }

  async umount(mountpoint: string): Promise<void> {
    const r = await this.cli(['umount', mountpoint]);
    if (r.code !== 0) throw new Error(`ondine umount ${mountpoint} exited ${r.code}: ${r.stderr.trim()}`);
  }

  /** `ondine stop` and waits for the daemon to exit; returns its exit code. */
  async stop(force = false): Promise<number | null> {
    const r = await this.cli(['stop', ...(force ? ['--force'] : [])]);
    if (r.code !== 0) throw new Error(`ondine stop exited ${r.code}: ${r.stderr.trim()}`);
    return (await this.exited).code;
  }

  /** Stop --force, then SIGKILL the process group if it is still alive after 15 s; detach mounts. */
  async cleanup(): Promise<void> {
    if (this.alive) {
      await this.cli(['stop', '--force']).catch(() => undefined);
      const timer = new Promise((r) => setTimeout(r, 15_000).unref());
      await Promise.race([this.exited, timer]);
    }
    if (this.alive) {
      try {
        process.kill(-this.supervisorPid, 'SIGKILL');
      } catch {
        // the group is gone
      }
      await this.exited;
    }
    for (const m of this.mountpoints) detachAllUnder(m);
  }

  /** Polls status until the daemon answers with a worker other than `oldWorkerPid`. */
  async waitForWorker(oldWorkerPid: number, timeoutMs = 60_000): Promise<DaemonStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const s = await this.status();
        if (s.workerPid !== oldWorkerPid) return s;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no new worker answered within ${timeoutMs / 1000} s (last error: ${String(last)})\ndaemon log:\n${this.logTail()}`);
  }
}

/**
 * Starts `ondine daemon --mode fanotify` in the foreground in its own process group, with its
 * socket and log under `root`, and waits until it answers. Stopped (and mounts detached) in
 * `t.after`.
 */
export async function startFanotifyDaemon(t: After, root: string, opts: DaemonOptions = {}): Promise<FanotifyDaemon> {
  const n = seq++;
  const cacheDir = opts.cacheDir ?? join(root, 'cache');
  const socket = opts.socket ?? join(root, `run-${n}`, 'ondine.sock');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(join(socket, '..'), { recursive: true, mode: 0o700 });
  const logPath = join(root, `daemon-${n}.log`);
  const logFd = openSync(logPath, 'a');
  const args = [cliPath, 'daemon', '--cache-dir', cacheDir, '--socket', socket, '--mode', 'fanotify',
    ...(opts.readTimeoutMs !== undefined ? ['--read-timeout', String(opts.readTimeoutMs)] : []), ...(opts.extraArgs ?? [])];
  // `ondine daemon` returns once the daemon answers; what it printed goes to the log too.
  const launcher = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const code = await new Promise<number | null>((r) => { launcher.once('exit', (c) => r(c)); launcher.once('error', () => r(-1)); });
  const tail = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '').split('\n').slice(-30).join('\n');
  if (code !== 0) throw new Error(`ondine daemon exited ${code}\n${tail()}`);
  const health = await new DaemonClient(socket).health();
  const pid = health.supervisorPid ?? health.pid;
  if (typeof pid !== 'number') throw new Error(`the daemon's health names no pid: ${JSON.stringify(health)}`);
  const d = new FanotifyDaemon(pid, socket, cacheDir, logPath);
  t.after(() => d.cleanup());
  return d;
}

/** Drops clean page cache, dentries and inodes: the next reads go to the filesystem. */
export function dropCaches(): void {
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** Bytes each blob cost at its source, summed over blob directories. */
export function sourceBytes(s: DaemonStatus): Map<string, number> {
  const out = new Map<string, number>();
  for (const dir of Object.values(s.sources)) for (const [id, v] of Object.entries(dir)) out.set(id, (out.get(id) ?? 0) + v.bytes);
  return out;
}

export function totalSourceBytes(s: DaemonStatus): number {
  let n = 0;
  for (const v of sourceBytes(s).values()) n += v;
  return n;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * `n` incompressible bytes, the same for the same seed: AES-128-CTR of zeros (hundreds of
 * MB per second, where a JS PRNG makes a 200 MB file in seconds).
 */
export function pseudoRandomBytes(seed: number, n: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0, 0);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

export interface ReaderRun {
  outcomes: ReadOutcome[];
  /** The reader made no progress for `stallMs` and was killed. */
  hung: boolean;
  exit: number | null;
  stderr: string;
}

/**
 * Runs the jobs in a child reader; kills it if no job completes for `stallMs` (a hung read).
 */
export function readInChild(scratch: string, jobs: readonly ReadJob[], opts: { stallMs?: number; onProgress?: (o: ReadOutcome) => void } = {}): Promise<ReaderRun> {
  const stallMs = opts.stallMs ?? 60_000;
  const jobsFile = join(scratch, `jobs-${process.pid}-${seq++}.json`);
  writeFileSync(jobsFile, JSON.stringify(jobs));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [READER, jobsFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const outcomes: ReadOutcome[] = [];
    let hung = false;
    let partial = '';
    let stderr = '';
    let timer = setTimeout(onStall, stallMs);
    function onStall(): void {
      hung = true;
      child.kill('SIGKILL');
    }
    child.stdout!.on('data', (b: Buffer) => {
      partial += b.toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const o = JSON.parse(partial.slice(0, nl)) as ReadOutcome;
        partial = partial.slice(nl + 1);
        outcomes.push(o);
        opts.onProgress?.(o);
        clearTimeout(timer);
        timer = setTimeout(onStall, stallMs);
      }
    });
    child.stderr!.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ outcomes, hung, exit: code, stderr });
    });
  });
}
