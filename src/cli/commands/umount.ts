// `ondine umount <mountpoint>`: unmount and tell the daemon the image is no longer needed.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/config.js';
import { DaemonClient } from '../../daemon/client.js';
import { listFscacheMounts, umount } from '../../daemon/mounts.js';
import { NotFoundError } from '../../errors.js';

export function register(program: Command): void {
  program.command('umount')
    .description('unmount an image mounted with `ondine mount`')
    .argument('<mountpoint>')
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .action(async (mountpoint: string, o: { socket: string }) => {
      const target = resolve(mountpoint);
      const m = (await listFscacheMounts()).find((x) => x.mountpoint === target);
      if (!m) throw new NotFoundError(`an EROFS fscache mount at ${target}`);
      await umount(target);
      const stillMounted = (await listFscacheMounts()).some((x) => x.fsid === m.fsid && x.domain === m.domain);
      if (!stillMounted) await new DaemonClient(o.socket).unregister(m.fsid, m.domain).catch(() => undefined);
      process.stdout.write(`unmounted ${target}\n`);
    });
}
