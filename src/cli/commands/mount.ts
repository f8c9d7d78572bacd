// `ondine mount <image> <mountpoint>`: register the image with the daemon (starting one if
// none runs) and mount it in fscache mode. State lives in the daemon, not here.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/config.js';
import { DaemonClient, DaemonUnavailableError } from '../../daemon/client.js';
import { mountFscache } from '../../daemon/mounts.js';
import { InvalidArgumentError } from '../../errors.js';

async function imagePaths(image: string, blobs?: string): Promise<{ bootstrap: string; blobDir: string }> {
  const st = await stat(image).catch(() => undefined);
  if (!st) throw new InvalidArgumentError(`image "${image}" does not exist`);
  const bootstrap = resolve(st.isDirectory() ? join(image, 'bootstrap') : image);
  return { bootstrap, blobDir: resolve(blobs ?? join(dirname(bootstrap), 'blobs')) };
}

async function ensureDaemon(client: DaemonClient, cacheDir: string): Promise<void> {
  try {
    await client.health();
    return;
  } catch (err) {
    if (!(err instanceof DaemonUnavailableError)) throw err;
  }
  await mkdir(cacheDir, { recursive: true });
  await mkdir(dirname(client.socketPath), { recursive: true, mode: 0o700 });
  const logPath = join(dirname(client.socketPath), 'daemon.log');
  const logFd = await open(logPath, 'a');
  const main = fileURLToPath(new URL('../main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'daemon', '--cache-dir', cacheDir, '--socket', client.socketPath], {
    detached: true, stdio: ['ignore', logFd.fd, logFd.fd],
  });
  child.unref();
  await logFd.close();
  // A daemon killed by a signal has no exit code: report it as -1.
  await client.waitUntilUp(() => child.exitCode ?? (child.signalCode ? -1 : null), 10_000, `see ${logPath}`);
}

export function register(program: Command): void {
  program.command('mount')
    .description('mount an image lazily: EROFS over fscache, data fetched on first read')
    .argument('<image>', 'a bootstrap file, or an image directory (bootstrap + blobs/)')
    .argument('<mountpoint>', 'directory to mount on')
    .option('--fsid <id>', 'fscache id (default: derived from the bootstrap digest)')
    .option('--domain <id>', 'share blobs with other images mounted in this domain')
    .option('--blobs <dir>', 'blob directory (default: blobs/ beside the bootstrap)')
    .option('--device <tag=path...>', 'flat device image for a device tag (mkfs.erofs images)')
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .option('--cache-dir <dir>', 'cache directory if a daemon must be started', '/var/cache/ondine')
    .action(async (image: string, mountpoint: string, o: { fsid?: string; domain?: string; blobs?: string; device?: string[]; socket: string; cacheDir: string }) => {
      const { bootstrap, blobDir } = await imagePaths(image, o.blobs);
      const fsid = o.fsid ?? `ondine-${createHash('sha256').update(await readFile(bootstrap)).digest('hex').slice(0, 16)}`;
      const devices: Record<string, string> = {};
      for (const d of o.device ?? []) {
        const i = d.indexOf('=');
        if (i <= 0) throw new InvalidArgumentError(`--device ${d}: expected tag=path`);
        devices[d.slice(0, i)] = resolve(d.slice(i + 1));
      }
      const client = new DaemonClient(o.socket);
      await ensureDaemon(client, o.cacheDir);
      await client.register({ fsid, bootstrap, blobDir, ...(o.domain ? { domain: o.domain } : {}), ...(o.device ? { devices } : {}) });
      try {
        await mountFscache(mountpoint, fsid, o.domain, Object.keys(devices));
      } catch (err) {
        await client.unregister(fsid, o.domain).catch(() => undefined);
        throw err;
      }
      process.stdout.write(`mounted ${bootstrap} on ${mountpoint} (fsid ${fsid}${o.domain ? `, domain ${o.domain}` : ''})\n`);
    });
}
