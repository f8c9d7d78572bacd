// `ondine stop [--force]`: stop the daemon, and answer once every process of it (supervisor,
// worker) is gone: the socket's lock is free then. Refused while mounts are live (their
// uncached reads would fail), unless forced: then its fanotify mounts are unmounted first.
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/defaults.js';
import { DaemonClient, DaemonUnavailableError } from '../../daemon/client.js';
import { lockHeld, readHolder } from '../../daemon/socket-lock.js';
import { OndineError } from '../../errors.js';

/** A stop waits this long for the daemon's processes to end (its own stop takes a few seconds). */
const STOP_WAIT_MS = 30_000;

export function register(program: Command): void {
  program.command('stop')
    .description('stop the daemon and wait until its processes are gone (refused while images are mounted, unless --force)')
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .option('--force', 'stop even with live mounts (fanotify mounts are unmounted, detached)')
    .action(async (o: { socket: string; force?: boolean }) => {
      const client = new DaemonClient(o.socket);
      const holder = readHolder(o.socket);
      await client.shutdown(o.force === true);
      const deadline = Date.now() + STOP_WAIT_MS;
      while (await running(client, o.socket)) {
        if (Date.now() > deadline) {
          throw new OndineError('ONDINE_ERR_DAEMON', undefined, `the daemon${holder ? ` (pid ${holder.pid})` : ''} accepted the stop but still runs after ${STOP_WAIT_MS / 1000} s`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      process.stdout.write('daemon stopped\n');
    });
}

/** The lock says while any process of the daemon lives; without one, the socket answering. */
async function running(client: DaemonClient, socket: string): Promise<boolean> {
  if (lockHeld(socket)) return true;
  if (readHolder(socket)) return false;
  return client.health().then(() => true, (err: unknown) => !(err instanceof DaemonUnavailableError));
}
