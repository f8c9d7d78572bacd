// `ondine daemon`: serve images to the kernel. Where fanotify pre-content events work, it
// starts the native supervisor, which holds the fanotify group and runs this same command as
// its worker (a crash of the worker then never lets a reader see zeros); where only
// /dev/cachefiles works, it serves that in one process. The choice is made by trying.
// It first takes the socket's lock (one daemon per socket), then starts the daemon in a
// session of its own and returns once it answers: no launcher stays resident. --foreground
// keeps this process until the daemon stops (scripts that signal it).
import { spawn, type StdioOptions } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { DaemonClient } from '../../daemon/client.js';
import { loadConfig, parseMirrorFlags, type DaemonConfig } from '../../daemon/config.js';
import { chooseModes, probe, type Mode } from '../../daemon/probe.js';
import { INHERITED_LOCK_FD, LOCK_FD_ENV, SocketLock } from '../../daemon/socket-lock.js';
import { OndineError } from '../../errors.js';
import { timeLadder } from '../../registry/time-ladder.js';
import { SupervisorLink } from '../../kernel/fanotify/supervisor-link.js';

/** The supervisor binary node-gyp builds beside the addon. */
export const SUPERVISOR = fileURLToPath(new URL('../../../../build/Release/ondine-supervisor', import.meta.url));
const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/**
 * V8 flags of the serving process (the worker): young-generation semi-spaces of 1 MB instead of
 * 16 MB. Chunk bytes live in Buffers outside the V8 heap, so what the young generation holds
 * is small and short-lived; the smaller spaces cut the worker's resident size after a cold read
 * by a sixth (BENCHMARKS.md, Memory). ONDINE_WORKER_NODE_FLAGS replaces them (empty: none).
 */
export function workerNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.ONDINE_WORKER_NODE_FLAGS;
  if (v === undefined) return ['--max-semi-space-size=1'];
  return v.split(/\s+/).filter(Boolean);
}

/** How long a launcher waits for the daemon it started to answer on the socket. */
const LAUNCH_TIMEOUT_MS = 60_000;

export function register(program: Command): void {
  program.command('daemon')
    .description('serve images to the kernel (fanotify pre-content events and/or /dev/cachefiles on-demand mode); returns once the daemon answers on its socket (one daemon per socket)')
    .option('--cache-dir <dir>', 'cache directory (ext4, xfs or btrfs; cache files survive restarts)')
    .option('--config <file>', 'JSON config: cacheDir, socketPath, mode, amplifyBytes, fetchBudget, concurrency, readTimeoutMs, decodeThreads, images[], mirrors {host: [url…]}, hostsDir')
    .option('--mode <mode>', 'auto (every path this kernel allows), fanotify or cachefiles')
    .option('--socket <path>', 'management socket (default /run/ondine/ondine.sock)')
    .option('--device <path>', 'cachefiles device (default /dev/cachefiles)')
    .option('--amplify <bytes>', 'largest read-ahead window in compressed bytes; a sequential reader\'s window opens small and doubles up to it (default 8 MiB; 0: none)')
    .option('--fetch-budget <n>', 'source reads in flight per source at most (default 8); the last two are kept for reads a reader waits on')
    .option('--concurrency <n>', 'kernel requests served at once')
    .option('--read-timeout <ms>', 'answer a request unfilled (reader gets EIO) after this long')
    .option('--mirror <host=url...>', 'registry mirror tried before that registry (repeat for several, in order), e.g. docker.io=http://127.0.0.1:8080')
    .option('--hosts-dir <dir>', "containerd's certs.d directory of hosts.toml files (default /etc/containerd/certs.d)")
    .option('--failed-chunk <ms>', 'how long a chunk whose fill timed out is refused at once, before it is fetched again (default 5000)')
    .option('--failure-memo <ms>', 'how long a registry range that failed for good is failed again without a request (default 30000)')
    .option('--decode-threads <n>', 'worker threads decompressing and verifying large chunks (default 0 on 2 cores or fewer, else min(4, cores); 0: main thread)')
    .option('--foreground', 'stay in the foreground until the daemon stops (for scripts that signal it; with fanotify this process waits beside the supervisor)')
    .option('--no-supervisor', 'fanotify: hold the group in this process (a crash then lets unfilled ranges read as zeros: for debugging only)')
    .action(async (o: Record<string, string | string[] | boolean | undefined>) => {
      const str = (v: string | string[] | boolean | undefined) => (typeof v === 'string' ? v : undefined);
      const num = (v: string | string[] | boolean | undefined) => (typeof v === 'string' ? Number(v) : undefined);
      const config = await loadConfig(str(o.config), {
        ...(o.cacheDir ? { cacheDir: str(o.cacheDir) } : {}),
        ...(o.socket ? { socketPath: str(o.socket) } : {}),
        ...(o.device ? { devicePath: str(o.device) } : {}),
        ...(o.mode ? { mode: str(o.mode) } : {}),
        ...(Array.isArray(o.mirror) ? { mirrors: parseMirrorFlags(o.mirror) } : {}),
        ...(o.hostsDir ? { hostsDir: str(o.hostsDir) } : {}),
        amplifyBytes: num(o.amplify), fetchBudget: num(o.fetchBudget), concurrency: num(o.concurrency), readTimeoutMs: num(o.readTimeout), decodeThreads: num(o.decodeThreads), failureMemoMs: num(o.failureMemo), failedChunkMs: num(o.failedChunk),
      } as Record<string, unknown>);
      if (!statSync(config.cacheDir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new OndineError('ONDINE_ERR_CACHE_DIR', undefined, `cache directory ${config.cacheDir} does not exist`);
      }
      const link = SupervisorLink.fromEnv();
      if (link) {
        // A worker under the supervisor: the lock came down with the group (absent only when
        // the supervisor was started by hand). The supervisor made the group; cachefiles as
        // well where this kernel has it.
        SocketLock.inherited(config.socketPath);
        await serve(config, ['fanotify', ...(config.mode === 'auto' && existsSync(config.devicePath) ? ['cachefiles' as const] : [])], link);
        return;
      }
      // Before anything else: a second daemon must not probe, spawn or touch the socket.
      const inherited = SocketLock.inherited(config.socketPath);
      const lock = inherited ?? SocketLock.take(config.socketPath);
      const modes = chooseModes(config.mode, probe(config.cacheDir, config.devicePath));
      const supervised = modes.includes('fanotify') && o.supervisor !== false;
      const deadlineMs = timeLadder(config.readTimeoutMs).supervisorDeadlineMs;
      if (!o.foreground && !inherited) {
        process.exitCode = await launch(config, lock, supervised ? supervisorArgv(deadlineMs) : [process.execPath, ...workerNodeFlags(), MAIN, ...process.argv.slice(2), '--foreground']);
        return;
      }
      if (supervised) {
        process.exitCode = await runSupervised(deadlineMs, lock, config.cacheDir);
        return;
      }
      lock.record({ pid: process.pid, cacheDir: config.cacheDir });
      await serve(config, modes, undefined);
    });
}

/** Serves in this process until stopped, then exits (a pull still in flight must not keep it). */
async function serve(config: DaemonConfig, modes: Mode[], link: SupervisorLink | undefined): Promise<void> {
  // The daemon itself (kernel front ends, storage, the registry client, pino) loads only in
  // the process that serves: a launcher that spawns it and returns never pays for it.
  const [{ Daemon }, { makeLogger }] = await Promise.all([import('../../daemon/daemon.js'), import('../logger.js')]);
  const log = makeLogger();
  // A dead daemon turns every uncached read of every mount into EIO: log a stray error
  // and keep serving rather than exit on it.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => log.fatal({ err }, 'uncaught exception; still serving'));
  const daemon = new Daemon(config, log, modes, link);
  const stopped = daemon.stopped();
  await daemon.start();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void daemon.stop());
  await stopped;
  // Sockets of a request the stop cut short (a registry that hangs) would keep the event loop
  // alive for minutes; everything that matters is closed by now.
  process.exit(0);
}

/** The supervisor's command line, with this command as its worker. */
function supervisorArgv(deadlineMs: number): string[] {
  if (!existsSync(SUPERVISOR)) {
    throw new OndineError('ONDINE_ERR_INSTALL', undefined, `${SUPERVISOR} is missing: build the native parts (npm run build:native)`);
  }
  return [SUPERVISOR, '--deadline-ms', String(deadlineMs), '--', process.execPath, ...workerNodeFlags(), MAIN, ...process.argv.slice(2)];
}

/** stdio for a daemon process: no stdin, stderr for logs (stdout too), the lock at its fixed fd. */
function daemonStdio(lock: SocketLock, out: 'inherit' | number = 2): StdioOptions {
  const stdio: Array<'ignore' | 'inherit' | number> = ['ignore', out, out];
  while (stdio.length < INHERITED_LOCK_FD) stdio.push('ignore');
  stdio.push(lock.fd);
  return stdio;
}

/**
 * Starts the daemon in a session of its own (the supervisor, or this command in the
 * foreground where there is none), hands it the lock, waits until it answers on the socket,
 * and returns: no launcher stays resident.
 */
async function launch(config: DaemonConfig, lock: SocketLock, argv: string[]): Promise<number> {
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true, stdio: daemonStdio(lock), env: { ...process.env, [LOCK_FD_ENV]: String(INHERITED_LOCK_FD) },
  });
  const spawned = await new Promise<Error | undefined>((r) => { child.once('spawn', () => r(undefined)); child.once('error', r); });
  if (spawned || child.pid === undefined) throw new OndineError('ONDINE_ERR_INSTALL', undefined, `cannot start ${argv[0]}: ${spawned?.message ?? 'no pid'}`);
  lock.record({ pid: child.pid, cacheDir: config.cacheDir });
  try {
    await new DaemonClient(config.socketPath).waitUntilUp(() => child.exitCode ?? (child.signalCode ? -1 : null), LAUNCH_TIMEOUT_MS, 'see its log (the stderr of `ondine daemon`)');
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    throw err;
  }
  child.unref();
  lock.close();
  process.stdout.write(`daemon serving ${config.socketPath} (pid ${child.pid})\n`);
  return 0;
}

/** Runs the supervisor with this command as its worker; resolves to its exit code. */
function runSupervised(deadlineMs: number, lock: SocketLock, cacheDir: string): Promise<number> {
  const argv = supervisorArgv(deadlineMs);
  const stdio = daemonStdio(lock, 'inherit');
  const child = spawn(argv[0]!, argv.slice(1), { stdio, env: { ...process.env, [LOCK_FD_ENV]: String(INHERITED_LOCK_FD) } });
  if (child.pid !== undefined) lock.record({ pid: child.pid, cacheDir });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => {
    child.on('error', () => resolve(1));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}
