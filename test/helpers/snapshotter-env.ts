// A real `ondine snapshotter` for tests, started as containerd would find it (its own root,
// socket and hosts dir, next to a real daemon), and a gRPC client of our own speaking
// containerd's Snapshots API from the same .proto files. Cleanup always runs: SIGTERM, then
// SIGKILL, then every mount under the root detached.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSnapshotsService } from '../../src/snapshotter/proto.js';
import { cliPath, detachAllUnder } from './e2e-env.js';

export interface GrpcMount { type: string; source: string; target: string; options: string[] }
export interface GrpcInfo { name: string; parent: string; kind: string; labels: Record<string, string>; created_at: { seconds: string; nanos: number } }

type After = { after(fn: () => unknown): void };

export class SnapshotsClient {
  private readonly client: Client & Record<string, (...a: unknown[]) => unknown>;

  constructor(socket: string) {
    const Ctor = loadSnapshotsService();
    // A pool of its own: a shared subchannel would carry a dead process's reconnect backoff.
    this.client = new Ctor(`unix:${socket}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as Client & Record<string, (...a: unknown[]) => unknown>;
  }

  private unary<T>(method: string, req: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      this.client[method]!(req, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
    });
  }

  prepare(key: string, parent = '', labels: Record<string, string> = {}): Promise<GrpcMount[]> {
    return this.unary<{ mounts: GrpcMount[] }>('Prepare', { snapshotter: 'ondine', key, parent, labels }).then((r) => r.mounts);
  }
  view(key: string, parent = '', labels: Record<string, string> = {}): Promise<GrpcMount[]> {
    return this.unary<{ mounts: GrpcMount[] }>('View', { snapshotter: 'ondine', key, parent, labels }).then((r) => r.mounts);
  }
  mounts(key: string): Promise<GrpcMount[]> {
    return this.unary<{ mounts: GrpcMount[] }>('Mounts', { snapshotter: 'ondine', key }).then((r) => r.mounts);
  }
  commit(name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
    return this.unary('Commit', { snapshotter: 'ondine', name, key, labels });
  }
  remove(key: string, timeoutMs?: number): Promise<void> {
    return this.unary('Remove', { snapshotter: 'ondine', key }, timeoutMs);
  }
  stat(key: string, timeoutMs?: number): Promise<GrpcInfo> {
    return this.unary<{ info: GrpcInfo }>('Stat', { snapshotter: 'ondine', key }, timeoutMs).then((r) => r.info);
  }
  update(info: { name: string; labels: Record<string, string> }, paths: string[] = []): Promise<GrpcInfo> {
    return this.unary<{ info: GrpcInfo }>('Update', { snapshotter: 'ondine', info, update_mask: paths.length ? { paths } : null }).then((r) => r.info);
  }
  usage(key: string): Promise<{ size: number; inodes: number }> {
    return this.unary<{ size: string; inodes: string }>('Usage', { snapshotter: 'ondine', key }).then((r) => ({ size: Number(r.size), inodes: Number(r.inodes) }));
  }
  cleanup(): Promise<void> {
    return this.unary('Cleanup', { snapshotter: 'ondine' });
  }
  list(filters: string[] = [], timeoutMs = 60_000): Promise<GrpcInfo[]> {
    return new Promise((resolve, reject) => {
      const out: GrpcInfo[] = [];
      const call = this.client.List!({ snapshotter: 'ondine', filters }, { deadline: Date.now() + timeoutMs }) as NodeJS.EventEmitter;
      call.on('data', (m: { info: GrpcInfo[] }) => out.push(...m.info));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
  }
  close(): void {
    this.client.close();
  }
}

export class SnapshotterProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly client: SnapshotsClient;

  constructor(readonly proc: ChildProcess, readonly socket: string, readonly root: string, readonly logPath: string) {
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    this.client = new SnapshotsClient(socket);
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  logTail(lines = 30): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n') : '';
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.client.close();
    if (this.alive) this.proc.kill(signal);
    const timer = new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000).unref());
    if ((await Promise.race([this.exited, timer])) === undefined && this.alive) this.proc.kill('SIGKILL');
    return this.exited;
  }
}

let seq = 0;

export interface SnapshotterStart {
  root: string;
  daemonSocket: string;
  hostsDir?: string;
  /** Stdout is checked empty by the caller when given. */
  stdout?: string[];
}

/** Starts `ondine snapshotter` and waits until its socket answers a List. */
export async function startSnapshotter(t: After, o: SnapshotterStart): Promise<SnapshotterProcess> {
  const n = seq++;
  const socket = join(o.root, `sock-${n}`, 'snapshotter.sock');
  mkdirSync(join(o.root, 'snap'), { recursive: true });
  const logPath = join(o.root, `snapshotter-${n}.log`);
  const logFd = openSync(logPath, 'a');
  const args = [cliPath, 'snapshotter', '--socket', socket, '--root', join(o.root, 'snap'), '--daemon-socket', o.daemonSocket, '--hosts-dir', o.hostsDir ?? join(o.root, 'certs.d')];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', logFd], env: { ...process.env, ONDINE_LOG: 'debug' } });
  closeSync(logFd);
  proc.stdout!.on('data', (c: Buffer) => o.stdout?.push(c.toString()));
  const s = new SnapshotterProcess(proc, socket, join(o.root, 'snap'), logPath);
  t.after(async () => {
    await s.stop('SIGKILL');
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!s.alive) throw new Error(`the snapshotter exited: ${s.logTail()}`);
    try {
      await s.client.list([], 1000);
      return s;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the snapshotter did not answer in 30 s (${String(err)}): ${s.logTail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Mounts what a Snapshots answer says, as containerd would (mount(8) with its options). */
export { detachAllUnder };

/** Mounts a Snapshots answer the way containerd does (bind with its flags, or overlay). */
export function mountAll(mounts: readonly GrpcMount[], target: string): void {
  mkdirSync(target, { recursive: true });
  for (const m of mounts) {
    const args = m.type === 'bind' ? ['-o', m.options.join(','), m.source, target] : ['-t', m.type, '-o', m.options.join(','), m.source, target];
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

export function umountAll(target: string): void {
  execFileSync('umount', [target], { stdio: ['ignore', 'ignore', 'pipe'] });
}
