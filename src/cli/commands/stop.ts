// `ondine stop [--force]`: stop the daemon. Refused while mounts are live (their uncached
// reads would fail), unless forced: then its fanotify mounts are unmounted first.
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/config.js';
import { DaemonClient } from '../../daemon/client.js';

export function register(program: Command): void {
  program.command('stop')
    .description('stop the daemon (refused while images are mounted, unless --force)')
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .option('--force', 'stop even with live mounts (fanotify mounts are unmounted, detached)')
    .action(async (o: { socket: string; force?: boolean }) => {
      const client = new DaemonClient(o.socket);
      await client.shutdown(o.force === true);
      process.stdout.write('daemon stopping\n');
    });
}
