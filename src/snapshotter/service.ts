// `ondine snapshotter` as a service: check that the daemon runs and mounts in our mount
// namespace, open the metadata, serve the gRPC API; stop on request. The CLI only parses
// flags and calls this.
import type { Logger } from 'pino';
import { DEFAULT_SOCKET as DAEMON_SOCKET } from '../daemon/defaults.js';
import { DaemonLink } from './daemon-link.js';
import { SnapshotsServer } from './server.js';
import { Snapshotter } from './snapshotter.js';

export const DEFAULT_SNAPSHOTTER_SOCKET = '/run/containerd-nydus/containerd-nydus-grpc.sock';
export const DEFAULT_ROOT = '/var/lib/ondine-snapshotter';
export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';
export { DAEMON_SOCKET };

export interface SnapshotterServiceOptions {
  socket: string;
  root: string;
  daemonSocket: string;
  hostsDir: string;
  log: Logger;
}

export class SnapshotterService {
  private server: SnapshotsServer | undefined;
  snapshotter: Snapshotter | undefined;

  constructor(private readonly o: SnapshotterServiceOptions) {}

  async start(): Promise<void> {
    const daemon = new DaemonLink(this.o.daemonSocket);
    const { pid, modes } = await daemon.checkNamespace(5_000);
    this.snapshotter = new Snapshotter({ root: this.o.root, daemon, hostsDir: this.o.hostsDir, log: this.o.log });
    this.server = new SnapshotsServer(this.snapshotter, this.o.log);
    await this.server.listen(this.o.socket);
    this.o.log.info({ socket: this.o.socket, root: this.o.root, daemon: { socket: this.o.daemonSocket, pid, modes }, hostsDir: this.o.hostsDir, snapshots: this.snapshotter.store.all().length }, 'snapshotter ready');
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.o.log.info('snapshotter stopped');
  }
}
