// `ondine snapshotter`: containerd's snapshots service (a proxy plugin) in the foreground;
// stops cleanly on SIGTERM/SIGINT. Needs `ondine daemon` running in the same mount namespace.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DAEMON_SOCKET, DEFAULT_HOSTS_DIR, DEFAULT_ROOT, DEFAULT_SNAPSHOTTER_SOCKET, SnapshotterService } from '../../snapshotter/service.js';
import { makeLogger } from '../logger.js';

export function register(program: Command): void {
  program.command('snapshotter')
    .description('serve containerd\'s snapshots API (proxy plugin "nydus" or "ondine"): Nydus images run lazily, others as with overlayfs; runs in the foreground')
    .option('--socket <path>', 'gRPC socket containerd connects to', DEFAULT_SNAPSHOTTER_SOCKET)
    .option('--root <dir>', 'snapshot directories and metadata', DEFAULT_ROOT)
    .option('--daemon-socket <path>', "the Ondine daemon's management socket", DAEMON_SOCKET)
    .option('--hosts-dir <dir>', "containerd's registry hosts dir (hosts.toml files)", DEFAULT_HOSTS_DIR)
    .action(async (o: { socket: string; root: string; daemonSocket: string; hostsDir: string }) => {
      const log = makeLogger();
      const service = new SnapshotterService({ socket: resolve(o.socket), root: resolve(o.root), daemonSocket: resolve(o.daemonSocket), hostsDir: resolve(o.hostsDir), log });
      await service.start();
      await new Promise<void>((done) => {
        const stop = () => { void service.stop().then(done); };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      process.exit(0);
    });
}
