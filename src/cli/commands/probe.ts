// `ondine probe`: which lazy-mount paths this kernel and cache directory allow, found by
// trying (a pre-content mark in the cache directory; /dev/cachefiles). Exit 0 when the asked
// mode (or any, for auto) works, 1 otherwise: scripts branch on it.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { chooseModes, isModeChoice, probe, type ModeChoice } from '../../daemon/probe.js';
import { InvalidArgumentError, OndineError } from '../../errors.js';

export function register(program: Command): void {
  program.command('probe')
    .description('say which lazy-mount paths (fanotify, cachefiles) work here')
    .option('--cache-dir <dir>', 'cache directory to try pre-content marks in', '/var/cache/ondine')
    .option('--mode <mode>', 'exit 0 only if this path works: auto, fanotify or cachefiles', 'auto')
    .option('--device <path>', 'cachefiles device', '/dev/cachefiles')
    .action((o: { cacheDir: string; mode: ModeChoice; device: string }) => {
      if (!isModeChoice(o.mode)) throw new InvalidArgumentError(`--mode must be auto, fanotify or cachefiles, not "${String(o.mode)}"`);
      const dir = resolve(o.cacheDir);
      mkdirSync(dir, { recursive: true });
      const found = probe(dir, o.device);
      for (const [path, v] of Object.entries(found)) process.stdout.write(`${path}: ${v === true ? 'yes' : `no (${v})`}\n`);
      try {
        chooseModes(o.mode, found);
      } catch (err) {
        if (!(err instanceof OndineError)) throw err;
        process.stderr.write(`ondine: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
