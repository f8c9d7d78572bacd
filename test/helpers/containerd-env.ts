// A private containerd (Debian's 1.6) for CRI end-to-end tests, never the system's: its own
// mount namespace (unshare --mount --propagation private) with a tmpfs on /run, so the shims'
// sockets (/run/containerd/s, whatever the config says) and every mount containerd, the Ondine
// daemon and the snapshotter make stay inside it and can be counted; its own root, state,
// sockets and config.toml (CRI on, snapshot annotations passed, runc v2 with cgroupfs, the
// test registry through certs.d hosts.toml, the ondine snapshotter as proxy plugin `nydus`).
// Daemons are entered into the namespace with nsenter. Sockets live in the scratch dir (a
// plain directory on /var/tmp, the same in both namespaces) so the test process reaches them.
// stop() tears everything down and checks that no process, cgroup or directory is left.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { DaemonClient } from '../../src/daemon/client.js';
import { CriClient } from './cri-client.js';
import { cliPath } from './e2e-env.js';

/** The proxy plugin name the tests use: nydus-snapshotter's, so a nydus node config works unchanged. */
export const SNAPSHOTTER_PLUGIN = 'nydus';

export interface ContainerdEnvOptions {
  /** `overlayfs` (containerd's own; the baseline) or `ondine` (the proxy snapshotter plus the Ondine daemon). */
  snapshotter: 'overlayfs' | 'ondine';
  /**
   * Registries (plain http) by the host:port image references name, each written to
   * certs.d/<host>/hosts.toml with `server` = the given URL (default http://<host>): a proxy
   * in front of the registry sees every request of containerd and of Ondine.
   */
  registryHosts: Array<{ host: string; server?: string }>;
  /** The pod sandbox image (the tests' pause image in the test registry). */
  sandboxImage: string;
  /** Extra `ondine daemon` flags. */
  daemonArgs?: string[];
  label?: string;
}

export interface ManagedProcess {
  name: string;
  proc: ChildProcess;
  logPath: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  logTail(lines?: number): string;
}

function manage(name: string, proc: ChildProcess, logPath: string): ManagedProcess {
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  return {
    name, proc, logPath, exited,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    logTail: (lines = 40) => (existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').slice(-lines).join('\n') : ''),
  };
}

/** Sends `signal`, then SIGKILL after `graceMs`; resolves with how it exited. */
async function terminate(p: ManagedProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (!p.alive()) return p.exited;
  p.proc.kill(signal);
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), graceMs);
  const r = await p.exited;
  clearTimeout(timer);
  return r;
}

const live = new Set<() => void>();
let exitHook = false;
function onExitKill(fn: () => void): () => void {
  live.add(fn);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const f of live) f();
    });
  }
  return () => live.delete(fn);
}

function mntNs(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Pids (other than `except`) whose mount namespace is `ns`. */
export function pidsInMountNs(ns: string, except: readonly number[] = []): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (except.includes(pid)) continue;
    if (mntNs(pid) === ns) out.push(pid);
  }
  return out;
}

/** The cgroup v1 hierarchies (or the v2 root) mounted here. */
function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep > 0 && (f[sep + 1] === 'cgroup' || f[sep + 1] === 'cgroup2')) roots.push(f[4]!);
  }
  return roots;
}

/** Every directory at or below `dir`, deepest first. */
function dirsDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  walk(dir);
  return out;
}

/** Processes in any cgroup below `parent` (all hierarchies). */
function pidsInCgroup(parent: string): number[] {
  const pids = new Set<number>();
  for (const root of cgroupRoots()) {
    for (const d of dirsDeepestFirst(join(root, parent))) {
      try {
        for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
      } catch {
        // gone meanwhile
      }
    }
  }
  return [...pids];
}

/** Removes the cgroup dirs below `parent` that runc leaves behind; returns the ones that would not go. */
function removeCgroups(parent: string): string[] {
  const stuck: string[] = [];
  for (const root of cgroupRoots()) {
    if (!existsSync(join(root, parent))) continue;
    for (const d of dirsDeepestFirst(join(root, parent))) {
      try {
        rmdirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') stuck.push(d);
      }
    }
  }
  return stuck;
}

function toml(s: string): string {
  return JSON.stringify(s);
}

export interface NsMount { point: string; fstype: string; source: string; options: string }

export interface ContainerdEnv {
  dir: string;
  /** containerd's root (content store, snapshots, metadata). */
  root: string;
  containerdSocket: string;
  snapshotterSocket: string;
  daemonSocket: string;
  snapshotterRoot: string;
  cacheDir: string;
  hostsDir: string;
  /** log_directory parent for pods. */
  logDir: string;
  /** cgroup_parent for the pods of this run (removed at stop). */
  cgroupParent: string;
  cri: CriClient;
  containerd: ManagedProcess;
  daemon?: ManagedProcess;
  snapshotter?: ManagedProcess;
  daemonClient?: DaemonClient;
  /** The holder process of the private mount namespace. */
  nsPid: number;
  /** `mnt:[inode]` of the private namespace. */
  ns: string;
  /**
   * Mounts made in the private namespace since it was created (the copies of the host's mounts
   * it started with, other tests' among them, are left out), at or below `prefix`.
   */
  mountsInNs(prefix?: string): NsMount[];
  /**
   * Containers' rootfs mounts whose options name this environment's dir. The runc shim runs in
   * a mount namespace of its own (a child of the private one), so they are looked for in every
   * mount namespace on the host, each read once.
   */
  rootfsMounts(): NsMount[];
  /** Runs a command inside the private mount namespace (nsenter -m). */
  nsenter(args: string[]): { code: number | null; stdout: string; stderr: string };
  /** Stops the snapshotter with SIGTERM and starts it again (same root and socket). */
  restartSnapshotter(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Logs of every daemon, for failure messages. */
  logs(): string;
  /** Tears down; returns what was left behind (empty when clean). */
  stop(): Promise<string[]>;
}

async function waitForSocket(path: string, p: ManagedProcess, timeoutMs: number, ready?: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Liveness first, readiness second: `ondine daemon` (no --foreground) exits 0 once its
    // daemon answers, so a process gone by now may have left a serving socket behind.
    const alive = p.alive();
    if (existsSync(path) && (ready === undefined || (await ready().catch(() => false)))) return;
    if (!alive) throw new Error(`${p.name} exited (${JSON.stringify(await p.exited)}) before serving ${path}; log:\n${p.logTail()}`);
    await sleep(50);
  }
  throw new Error(`${p.name} did not serve ${path} within ${timeoutMs} ms; log:\n${p.logTail()}`);
}

/** `ondine snapshotter` is a command of this build (the CLI's help lists it). */
export function hasSnapshotterCommand(): boolean {
  const r = spawnSync(process.execPath, [cliPath, '--help'], { encoding: 'utf8' });
  return r.status === 0 && /^ +snapshotter /m.test(r.stdout);
}

/** Starts the private namespace and containerd (and, for `ondine`, the daemon and snapshotter in it). */
export async function startContainerd(opts: ContainerdEnvOptions): Promise<ContainerdEnv> {
  const dir = mkdtempSync(`/var/tmp/ondine-cri-${opts.label ?? 'run'}-`);
  const runDir = join(dir, 'run');
  const root = join(dir, 'root');
  const hostsDir = join(dir, 'certs.d');
  const logDir = join(dir, 'pods');
  const cacheDir = join(dir, 'cache');
  const snapshotterRoot = join(dir, 'snapshotter');
  for (const d of [runDir, root, hostsDir, logDir, cacheDir, snapshotterRoot, join(dir, 'opt'), join(dir, 'cni-bin'), join(dir, 'cni-conf')]) mkdirSync(d, { recursive: true });
  const containerdSocket = join(runDir, 'containerd.sock');
  const snapshotterSocket = join(runDir, 'snapshotter.sock');
  const daemonSocket = join(runDir, 'ondine.sock');
  const cgroupParent = `/ondine-cri-${process.pid}-${Date.now().toString(36)}`;

  for (const { host, server } of opts.registryHosts) {
    mkdirSync(join(hostsDir, host), { recursive: true });
    // containerd 1.6 refuses a hosts.toml without a [host] table ("invalid `host` tree") and
    // then silently goes to the registry itself: name the server as its one host too.
    const url = server ?? `http://${host}`;
    writeFileSync(join(hostsDir, host, 'hosts.toml'), `server = ${toml(url)}\n\n[host.${toml(url)}]\n  capabilities = ["pull", "resolve"]\n`);
  }

  const snapshotter = opts.snapshotter === 'ondine' ? SNAPSHOTTER_PLUGIN : 'overlayfs';
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  writeFileSync(join(dir, 'config.toml'), `version = 2
root = ${toml(root)}
state = "/run/containerd-test/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${toml(containerdSocket)}

[ttrpc]
  address = ${toml(`${containerdSocket}.ttrpc`)}

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = ${toml(join(dir, 'opt'))}

[${cri}]
  sandbox_image = ${toml(opts.sandboxImage)}
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[${cri}.containerd]
  snapshotter = ${toml(snapshotter)}
  disable_snapshot_annotations = false
  default_runtime_name = "runc"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[${cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[${cri}.cni]
  bin_dir = ${toml(join(dir, 'cni-bin'))}
  conf_dir = ${toml(join(dir, 'cni-conf'))}

[${cri}.registry]
  config_path = ${toml(hostsDir)}

[proxy_plugins]
  [proxy_plugins.${SNAPSHOTTER_PLUGIN}]
    type = "snapshot"
    address = ${toml(snapshotterSocket)}
`);

  // The namespace holder: unshare (no fork) execs sh, which mounts the tmpfs and execs sleep,
  // so the holder's pid is the child's pid.
  const holder = spawn('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', 'mount -t tmpfs -o mode=0755 ondine-cri-run /run && echo ready && exec sleep 2147483647'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const holderPid = holder.pid!;
  const cleanups: Array<() => void> = [];
  const unhook = onExitKill(() => {
    for (const c of cleanups) c();
    holder.kill('SIGKILL');
  });
  const ready = await new Promise<boolean>((resolve) => {
    let out = '';
    holder.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve(true);
    });
    holder.once('exit', () => resolve(false));
  });
  if (!ready) throw new Error('unshare --mount --propagation private failed to make the private namespace');
  const ns = mntNs(holderPid)!;
  // Mount ids the namespace started with (copies of the host's, and our /run tmpfs).
  const inheritedMounts = new Set(readFileSync(`/proc/${holderPid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));

  const enter = (name: string, args: string[]): ManagedProcess => {
    const logPath = join(dir, `${name}.log`);
    const fd = openSync(logPath, 'a');
    const proc = spawn('nsenter', [`--target=${holderPid}`, '--mount', '--', ...args], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    cleanups.push(() => proc.kill('SIGKILL'));
    return manage(name, proc, logPath);
  };

  const env: Partial<ContainerdEnv> & { stop?: ContainerdEnv['stop'] } = {};
  let daemon: ManagedProcess | undefined;
  let snap: ManagedProcess | undefined;
  let daemonClient: DaemonClient | undefined;
  const startSnapshotter = async () => {
    snap = enter('snapshotter', [process.execPath, cliPath, 'snapshotter', '--socket', snapshotterSocket, '--root', snapshotterRoot, '--daemon-socket', daemonSocket, '--hosts-dir', hostsDir]);
    await waitForSocket(snapshotterSocket, snap, 30_000);
    return snap;
  };
  let containerd: ManagedProcess | undefined;
  let criClient: CriClient | undefined;

  const teardown = async (): Promise<string[]> => {
    const left: string[] = [];
    criClient?.close();
    if (containerd) await terminate(containerd, 'SIGTERM', 15_000);
    if (snap) {
      const alive = snap.alive();
      const r = await terminate(snap, 'SIGTERM', 10_000);
      if (alive && r.code !== 0) left.push(`ondine snapshotter exited ${JSON.stringify(r)} on SIGTERM (the contract: 0)`);
    }
    if (daemon) {
      if (daemon.alive()) {
        spawnSync(process.execPath, [cliPath, 'stop', '--force', '--socket', daemonSocket], { timeout: 20_000 });
      }
      await terminate(daemon, 'SIGTERM', 15_000);
    }
    // Containers whose shim is gone are orphans in our cgroups; shims are in our namespace.
    for (let round = 0; round < 50; round++) {
      const pids = [...pidsInCgroup(cgroupParent), ...pidsInMountNs(ns, [holderPid])];
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await sleep(100);
    }
    const stragglers = pidsInMountNs(ns, [holderPid]);
    if (stragglers.length) left.push(`processes still in the namespace: ${stragglers.join(' ')}`);
    const holderExit = new Promise((r) => holder.once('exit', r));
    if (holder.exitCode === null && holder.signalCode === null) {
      holder.kill('SIGKILL');
      await holderExit;
    }
    unhook();
    const stuck = removeCgroups(cgroupParent);
    if (stuck.length) left.push(`cgroups left: ${stuck.join(' ')}`);
    // The namespace is gone with its last process, and its mounts with it; nothing of ours may
    // show in the host's namespace either.
    const hostMounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(dir));
    if (hostMounts.length) left.push(`mounts in the host namespace: ${hostMounts.join('; ')}`);
    rmSync(dir, { recursive: true, force: true });
    if (existsSync(dir)) left.push(`${dir} still exists`);
    return left;
  };

  try {
    if (opts.snapshotter === 'ondine') {
      daemon = enter('daemon', [process.execPath, cliPath, 'daemon', '--cache-dir', cacheDir, '--socket', daemonSocket, '--mode', 'fanotify', '--hosts-dir', hostsDir, ...(opts.daemonArgs ?? [])]);
      daemonClient = new DaemonClient(daemonSocket);
      const dc = daemonClient;
      await waitForSocket(daemonSocket, daemon, 60_000, async () => {
        await dc.health();
        return true;
      });
      await startSnapshotter();
    }
    containerd = enter('containerd', ['containerd', '--config', join(dir, 'config.toml')]);
    criClient = new CriClient(containerdSocket);
    const c = criClient;
    await waitForSocket(containerdSocket, containerd, 60_000, async () => {
      await c.version(2_000);
      return true;
    });
  } catch (err) {
    const logs = [containerd, daemon, snap].filter((p): p is ManagedProcess => p !== undefined).map((p) => `--- ${p.name}\n${p.logTail()}`).join('\n');
    await teardown().catch(() => undefined);
    throw new Error(`${(err as Error).message}\n${logs}`);
  }

  const mountsInNs = (prefix = '/') => {
    const text = readFileSync(`/proc/${holderPid}/mountinfo`, 'utf8');
    const out: NsMount[] = [];
    for (const line of text.split('\n')) {
      const f = line.split(' ');
      const sep = f.indexOf('-');
      if (sep < 0 || inheritedMounts.has(f[0]!)) continue;
      const point = f[4]!;
      if (point === prefix || point.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)) out.push({ point, fstype: f[sep + 1]!, source: f[sep + 2]!, options: f[sep + 3] ?? '' });
    }
    return out;
  };

  const rootfsMounts = () => {
    const seen = new Set<string>();
    const out: NsMount[] = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const n = mntNs(Number(name));
      if (n === undefined || seen.has(n)) continue;
      seen.add(n);
      let text = '';
      try {
        text = readFileSync(`/proc/${name}/mountinfo`, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        const f = line.split(' ');
        const sep = f.indexOf('-');
        if (sep < 0 || !/\/io\.containerd\.runtime\.v2\.task\/k8s\.io\/[0-9a-f]{64}\/rootfs$/.test(f[4]!)) continue;
        const options = f[sep + 3] ?? '';
        if (options.includes(dir)) out.push({ point: f[4]!, fstype: f[sep + 1]!, source: f[sep + 2]!, options });
      }
    }
    return out;
  };

  Object.assign(env, {
    rootfsMounts,
    dir, root, containerdSocket, snapshotterSocket, daemonSocket, snapshotterRoot, cacheDir, hostsDir, logDir, cgroupParent,
    cri: criClient, containerd, nsPid: holderPid, ns, mountsInNs,
    nsenter: (args: string[]) => {
      const r = spawnSync('nsenter', [`--target=${holderPid}`, '--mount', '--', ...args], { encoding: 'utf8' });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    restartSnapshotter: async () => {
      if (!snap) throw new Error('no snapshotter in an overlayfs environment');
      const r = await terminate(snap, 'SIGTERM', 10_000);
      await startSnapshotter();
      (env as ContainerdEnv).snapshotter = snap;
      return r;
    },
    logs: () => [containerd, daemon, snap].filter((p): p is ManagedProcess => p !== undefined).map((p) => `--- ${p.name} (${p.logPath})\n${p.logTail()}`).join('\n'),
    stop: teardown,
  });
  if (daemon) env.daemon = daemon;
  if (snap) env.snapshotter = snap;
  if (daemonClient) env.daemonClient = daemonClient;
  return env as ContainerdEnv;
}
