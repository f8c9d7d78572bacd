// `ondine daemon --cache-dir DIR [--config FILE]`: serve cachefiles on-demand requests.
import type { Command } from 'commander';
import { loadConfig } from '../../daemon/config.js';
import { Daemon } from '../../daemon/daemon.js';
import { makeLogger } from '../logger.js';

export function register(program: Command): void {
  program.command('daemon')
    .description('serve images to the kernel over /dev/cachefiles (on-demand mode); runs in the foreground')
    .option('--cache-dir <dir>', 'cache directory (ext4 or xfs; cache files survive restarts)')
    .option('--config <file>', 'JSON config: cacheDir, socketPath, amplifyBytes, concurrency, readTimeoutMs, decodeThreads, images[]')
    .option('--socket <path>', 'management socket (default /run/ondine/ondine.sock)')
    .option('--device <path>', 'cachefiles device (default /dev/cachefiles)')
    .option('--amplify <bytes>', 'read-ahead window in compressed bytes for sequential readers (default 1 MiB)')
    .option('--concurrency <n>', 'READs served at once')
    .option('--read-timeout <ms>', 'complete a READ unfilled (reader gets EIO) after this long')
    .option('--decode-threads <n>', 'worker threads decompressing and verifying large chunks (default min(4, cores); 0: main thread)')
    .action(async (o: Record<string, string | undefined>) => {
      const log = makeLogger();
      const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      const config = await loadConfig(o.config, {
        ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
        ...(o.socket ? { socketPath: o.socket } : {}),
        ...(o.device ? { devicePath: o.device } : {}),
        amplifyBytes: num(o.amplify), concurrency: num(o.concurrency), readTimeoutMs: num(o.readTimeout), decodeThreads: num(o.decodeThreads),
      } as Record<string, unknown>);
      // A dead daemon turns every uncached read of every mount into EIO: log a stray error
      // and keep serving rather than exit on it.
      process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
      process.on('uncaughtException', (err) => log.fatal({ err }, 'uncaught exception; still serving'));
      const daemon = new Daemon(config, log);
      const stopped = daemon.stopped();
      await daemon.start();
      for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void daemon.stop());
      await stopped;
    });
}
