// `ondine status`: what the daemon serves and what it has fetched.
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/config.js';
import { DaemonClient } from '../../daemon/client.js';

export function register(program: Command): void {
  program.command('status')
    .description("show the daemon's images, mounts and per-blob fetch counters")
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .option('--json', 'machine-readable output')
    .action(async (o: { socket: string; json?: boolean }) => {
      const stats = await new DaemonClient(o.socket).stats();
      process.stdout.write(JSON.stringify(stats, null, o.json ? 2 : 1) + '\n');
    });
}
