// `ondine umount <mountpoint>`: unmount, and release what the daemon held for it (fanotify:
// marks and fds; cachefiles: the image registration once no mount uses it).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/defaults.js';
import { DaemonClient, DaemonUnavailableError } from '../../daemon/client.js';
import { listFscacheMounts, umount } from '../../kernel/mounts.js';
import { NotFoundError } from '../../errors.js';

export function register(program: Command): void {
  program.command('umount')
    .description('unmount an image mounted with `ondine mount`')
    .argument('<mountpoint>')
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .action(async (mountpoint: string, o: { socket: string }) => {
      const target = resolve(mountpoint);
      const client = new DaemonClient(o.socket);
      const served = await client.mounts().catch((err: unknown) => {
        if (err instanceof DaemonUnavailableError) return [];
        throw err;
      });
      if (served.some((m) => m.mode === 'fanotify' && m.mountpoint === target)) {
        await client.umount(target);
        process.stdout.write(`unmounted ${target}\n`);
        return;
      }
      const m = (await listFscacheMounts()).find((x) => x.mountpoint === target);
      if (!m) throw new NotFoundError(`an Ondine mount at ${target}`);
      await umount(target);
      const stillMounted = (await listFscacheMounts()).some((x) => x.fsid === m.fsid && x.domain === m.domain);
      if (!stillMounted) await client.unregister(m.fsid, m.domain).catch(() => undefined);
      process.stdout.write(`unmounted ${target}\n`);
    });
}
