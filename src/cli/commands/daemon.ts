// `ondine daemon`: serve images to the kernel. Where fanotify pre-content events work, it
// starts the native supervisor, which holds the fanotify group and runs this same command as
// its worker (a crash of the worker then never lets a reader see zeros); where only
// /dev/cachefiles works, it serves that in this process. The choice is made by trying.
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadConfig, parseMirrorFlags } from '../../daemon/config.js';
import { Daemon, type Mode } from '../../daemon/daemon.js';
import { chooseModes, probe } from '../../daemon/probe.js';
import { OndineError } from '../../errors.js';
import { timeLadder } from '../../registry/time-ladder.js';
import { SupervisorLink } from '../../kernel/fanotify/supervisor-link.js';
import { makeLogger } from '../logger.js';

/** The supervisor binary node-gyp builds beside the addon. */
export const SUPERVISOR = fileURLToPath(new URL('../../../../build/Release/ondine-supervisor', import.meta.url));
const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));


export function register(program: Command): void {
  program.command('daemon')
    .description('serve images to the kernel (fanotify pre-content events and/or /dev/cachefiles on-demand mode); runs in the foreground')
    .option('--cache-dir <dir>', 'cache directory (ext4, xfs or btrfs; cache files survive restarts)')
    .option('--config <file>', 'JSON config: cacheDir, socketPath, mode, amplifyBytes, concurrency, readTimeoutMs, decodeThreads, images[], mirrors {host: [url…]}, hostsDir')
    .option('--mode <mode>', 'auto (every path this kernel allows), fanotify or cachefiles')
    .option('--socket <path>', 'management socket (default /run/ondine/ondine.sock)')
    .option('--device <path>', 'cachefiles device (default /dev/cachefiles)')
    .option('--amplify <bytes>', 'read-ahead window in compressed bytes for sequential readers (default 1 MiB)')
    .option('--concurrency <n>', 'kernel requests served at once')
    .option('--read-timeout <ms>', 'answer a request unfilled (reader gets EIO) after this long')
    .option('--mirror <host=url...>', 'registry mirror tried before that registry (repeat for several, in order), e.g. docker.io=http://127.0.0.1:8080')
    .option('--hosts-dir <dir>', "containerd's certs.d directory of hosts.toml files (default /etc/containerd/certs.d)")
    .option('--failed-chunk <ms>', 'how long a chunk whose fill timed out is refused at once, before it is fetched again (default 5000)')
    .option('--failure-memo <ms>', 'how long a registry range that failed for good is failed again without a request (default 30000)')
    .option('--decode-threads <n>', 'worker threads decompressing and verifying large chunks (default min(4, cores); 0: main thread)')
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
        amplifyBytes: num(o.amplify), concurrency: num(o.concurrency), readTimeoutMs: num(o.readTimeout), decodeThreads: num(o.decodeThreads), failureMemoMs: num(o.failureMemo), failedChunkMs: num(o.failedChunk),
      } as Record<string, unknown>);
      if (!statSync(config.cacheDir, { throwIfNoEntry: false })?.isDirectory()) {
        throw new OndineError('ONDINE_ERR_CACHE_DIR', 2, `cache directory ${config.cacheDir} does not exist`);
      }
      const link = SupervisorLink.fromEnv();
      let modes: Mode[];
      if (link) {
        // The supervisor made the group; cachefiles as well where this kernel has it.
        modes = ['fanotify', ...(config.mode === 'auto' && existsSync(config.devicePath) ? ['cachefiles' as const] : [])];
      } else {
        modes = chooseModes(config.mode, probe(config.cacheDir, config.devicePath));
        if (modes.includes('fanotify') && o.supervisor !== false) {
          process.exitCode = await runSupervised(timeLadder(config.readTimeoutMs).supervisorDeadlineMs);
          return;
        }
      }
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
    });
}

/** Runs the supervisor with this command as its worker; resolves to its exit code. */
function runSupervised(deadlineMs: number): Promise<number> {
  if (!existsSync(SUPERVISOR)) {
    throw new OndineError('ONDINE_ERR_INSTALL', 2, `${SUPERVISOR} is missing: build the native parts (npm run build:native)`);
  }
  const child = spawn(SUPERVISOR, ['--deadline-ms', String(deadlineMs), '--', process.execPath, MAIN, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => {
    child.on('error', () => resolve(1));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}
