// A CRI client for tests, speaking to containerd's CRI plugin over its unix socket as kubelet
// does (@grpc/grpc-js with the runtime.v1 subset in cri/api.proto). Every call has a deadline,
// so a stuck containerd fails the test instead of hanging it. `runOnce` is kubelet's sequence
// for a run-to-completion pod: sandbox (host network), pull with the sandbox config, create,
// start, poll status until exited, read the CRI log file, then tear everything down.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import { repoRoot } from './e2e-env.js';

const PROTO = join(repoRoot, 'test/helpers/cri/api.proto');

export const ContainerState = { CREATED: 'CONTAINER_CREATED', RUNNING: 'CONTAINER_RUNNING', EXITED: 'CONTAINER_EXITED', UNKNOWN: 'CONTAINER_UNKNOWN' } as const;

export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  log_directory: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux: { cgroup_parent: string; security_context: { namespace_options: { network: 'NODE' | 'POD'; pid: 'POD' | 'CONTAINER' | 'NODE'; ipc: 'POD' | 'NODE' } } };
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
}

export interface ContainerStatus {
  id: string;
  state: string;
  exit_code: number;
  started_at: string;
  finished_at: string;
  reason: string;
  message: string;
  log_path: string;
  image_ref: string;
}

export interface RunOnceResult {
  imageRef: string;
  status: ContainerStatus;
  /** stdout then stderr lines, in the order the CRI log has them. */
  stdout: string;
  stderr: string;
  /** ms from PullImage's start: pull answered, container first logged a line, container exited. */
  timings: { pullMs: number; firstOutputMs: number | undefined; exitedMs: number };
}

/** One line of a CRI log file: `<RFC3339Nano> <stdout|stderr> <F|P> <text>`. */
export interface CriLogLine { time: string; stream: 'stdout' | 'stderr'; partial: boolean; text: string }

export function parseCriLog(text: string): CriLogLine[] {
  const out: CriLogLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(line);
    if (m) out.push({ time: m[1]!, stream: m[2] as 'stdout' | 'stderr', partial: m[3] === 'P', text: m[4]! });
  }
  return out;
}

/** Milliseconds since the epoch of a CRI log stamp (RFC 3339 with up to nanoseconds). */
export function logTimeMs(stamp: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(stamp);
  if (!m) throw new Error(`not an RFC 3339 time: ${stamp}`);
  const frac = (m[2] ?? '').padEnd(9, '0');
  return Date.parse(`${m[1]}${m[3]}`) + Number(frac) / 1e6;
}

/** Joins partial lines and splits by stream. */
export function criLogStreams(lines: readonly CriLogLine[]): { stdout: string; stderr: string } {
  const acc = { stdout: '', stderr: '' };
  for (const l of lines) acc[l.stream] += l.text + (l.partial ? '' : '\n');
  return acc;
}

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

let seq = 0;

export class CriClient {
  readonly #runtime: grpc.Client;
  readonly #image: grpc.Client;

  constructor(readonly socket: string, readonly defaultDeadlineMs = 120_000) {
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: Record<string, grpc.ServiceClientConstructor> } };
    const target = `unix://${socket}`;
    const opts = { 'grpc.max_receive_message_length': 16 << 20 };
    this.#runtime = new pkg.runtime.v1.RuntimeService!(target, grpc.credentials.createInsecure(), opts);
    this.#image = new pkg.runtime.v1.ImageService!(target, grpc.credentials.createInsecure(), opts);
  }

  close(): void {
    this.#runtime.close();
    this.#image.close();
  }

  /** One unary call with a deadline (ms). */
  call<T>(service: 'runtime' | 'image', method: string, req: object, deadlineMs = this.defaultDeadlineMs): Promise<T> {
    const client = service === 'runtime' ? this.#runtime : this.#image;
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (typeof fn !== 'function') throw new Error(`CRI ${service} has no method ${method} in test/helpers/cri/api.proto`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err) reject(Object.assign(new Error(`CRI ${method}: ${err.details || err.message} (code ${err.code})`), { code: err.code }));
        else resolve(res as T);
      });
    });
  }

  async version(deadlineMs?: number): Promise<{ runtime_name: string; runtime_version: string }> {
    return this.call('runtime', 'Version', { version: 'v1' }, deadlineMs);
  }

  /** A pod config as kubelet makes it for a hostNetwork pod (no hostname: the node's). */
  podConfig(name: string, logDirectory: string, cgroupParent: string): PodSandboxConfig {
    const uid = `ondine-${process.pid}-${++seq}-${Date.now().toString(36)}`;
    return {
      metadata: { name, uid, namespace: 'ondine-test', attempt: 0 },
      log_directory: logDirectory,
      labels: { 'io.kubernetes.pod.name': name },
      linux: { cgroup_parent: cgroupParent, security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
    };
  }

  async runPodSandbox(config: PodSandboxConfig, deadlineMs?: number): Promise<string> {
    const r = await this.call<{ pod_sandbox_id: string }>('runtime', 'RunPodSandbox', { config }, deadlineMs);
    return r.pod_sandbox_id;
  }

  async pullImage(image: string, sandboxConfig: PodSandboxConfig | undefined, deadlineMs?: number): Promise<string> {
    const r = await this.call<{ image_ref: string }>('image', 'PullImage', { image: { image }, ...(sandboxConfig ? { sandbox_config: sandboxConfig } : {}) }, deadlineMs);
    return r.image_ref;
  }

  async imageStatus(image: string, deadlineMs?: number): Promise<{ id: string; size: string } | null> {
    const r = await this.call<{ image: { id: string; size: string } | null }>('image', 'ImageStatus', { image: { image } }, deadlineMs);
    return r.image ?? null;
  }

  async listImages(deadlineMs?: number): Promise<Array<{ id: string; repo_tags: string[] }>> {
    const r = await this.call<{ images: Array<{ id: string; repo_tags: string[] }> }>('image', 'ListImages', {}, deadlineMs);
    return r.images;
  }

  async removeImage(image: string, deadlineMs?: number): Promise<void> {
    await this.call('image', 'RemoveImage', { image: { image } }, deadlineMs);
  }

  async createContainer(podId: string, sandboxConfig: PodSandboxConfig, spec: ContainerSpec, deadlineMs?: number): Promise<string> {
    const config = {
      metadata: { name: spec.name, attempt: 0 },
      image: { image: spec.image },
      command: spec.command ?? [],
      args: spec.args ?? [],
      envs: Object.entries(spec.env ?? {}).map(([key, value]) => ({ key, value })),
      labels: { 'io.kubernetes.container.name': spec.name },
      log_path: `${spec.name}/0.log`,
      linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
    };
    const r = await this.call<{ container_id: string }>('runtime', 'CreateContainer', { pod_sandbox_id: podId, config, sandbox_config: sandboxConfig }, deadlineMs);
    return r.container_id;
  }

  async startContainer(id: string, deadlineMs?: number): Promise<void> {
    await this.call('runtime', 'StartContainer', { container_id: id }, deadlineMs);
  }

  async containerStatus(id: string, deadlineMs?: number): Promise<ContainerStatus> {
    const r = await this.call<{ status: ContainerStatus }>('runtime', 'ContainerStatus', { container_id: id }, deadlineMs);
    return r.status;
  }

  async listContainers(deadlineMs?: number): Promise<Array<{ id: string; state: string }>> {
    const r = await this.call<{ containers: Array<{ id: string; state: string }> }>('runtime', 'ListContainers', {}, deadlineMs);
    return r.containers;
  }

  async stopContainer(id: string, timeoutS = 0, deadlineMs?: number): Promise<void> {
    await this.call('runtime', 'StopContainer', { container_id: id, timeout: timeoutS }, deadlineMs);
  }

  async removeContainer(id: string, deadlineMs?: number): Promise<void> {
    await this.call('runtime', 'RemoveContainer', { container_id: id }, deadlineMs);
  }

  async stopPodSandbox(id: string, deadlineMs?: number): Promise<void> {
    await this.call('runtime', 'StopPodSandbox', { pod_sandbox_id: id }, deadlineMs);
  }

  async removePodSandbox(id: string, deadlineMs?: number): Promise<void> {
    await this.call('runtime', 'RemovePodSandbox', { pod_sandbox_id: id }, deadlineMs);
  }

  /** Polls ContainerStatus until the container has exited (deadline: `timeoutMs`). */
  async waitExited(id: string, timeoutMs = 120_000, onPoll?: () => void): Promise<ContainerStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.containerStatus(id, 10_000);
      onPoll?.();
      if (s.state === ContainerState.EXITED) return s;
      if (Date.now() > deadline) throw new Error(`container ${id} still ${s.state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The container's CRI log as kubelet reads it (log_directory/log_path). */
  readLog(logPath: string): { lines: CriLogLine[]; stdout: string; stderr: string } {
    let text = '';
    try {
      text = readFileSync(logPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const lines = parseCriLog(text);
    return { lines, ...criLogStreams(lines) };
  }
}

/**
 * kubelet's sequence for one run-to-completion pod: RunPodSandbox, PullImage (with the sandbox
 * config), CreateContainer, StartContainer, ContainerStatus until exited, the log file, then
 * RemoveContainer, StopPodSandbox, RemovePodSandbox (always, also when a step failed).
 */
export async function runOnce(cri: CriClient, opts: { name: string; image: string; logDir: string; cgroupParent: string; command?: string[]; args?: string[]; env?: Record<string, string>; timeoutMs?: number; afterPull?: () => void; beforeTeardown?: (containerId: string) => Promise<void> }): Promise<RunOnceResult> {
  const pod = cri.podConfig(opts.name, join(opts.logDir, opts.name), opts.cgroupParent);
  const podId = await cri.runPodSandbox(pod);
  let containerId: string | undefined;
  try {
    const t0 = performance.now();
    const t0Wall = Date.now();
    const imageRef = await cri.pullImage(opts.image, pod);
    const pullMs = performance.now() - t0;
    opts.afterPull?.();
    const spec: ContainerSpec = { name: opts.name, image: opts.image };
    if (opts.command) spec.command = opts.command;
    if (opts.args) spec.args = opts.args;
    if (opts.env) spec.env = opts.env;
    containerId = await cri.createContainer(podId, pod, spec);
    await cri.startContainer(containerId);
    const logPath = join(pod.log_directory, `${opts.name}/0.log`);
    const status = await cri.waitExited(containerId, opts.timeoutMs ?? 120_000);
    const exitedMs = performance.now() - t0;
    const log = cri.readLog(logPath);
    // The shim stamps each line when it reads it from the container: the first line's stamp
    // is when the container first wrote, on the same clock as t0Wall.
    const firstOutputMs = log.lines.length > 0 ? logTimeMs(log.lines[0]!.time) - t0Wall : undefined;
    if (opts.beforeTeardown) await opts.beforeTeardown(containerId);
    return { imageRef, status, stdout: log.stdout, stderr: log.stderr, timings: { pullMs, firstOutputMs, exitedMs } };
  } finally {
    if (containerId !== undefined) await cri.removeContainer(containerId).catch(() => undefined);
    await cri.stopPodSandbox(podId).catch(() => undefined);
    await cri.removePodSandbox(podId).catch(() => undefined);
  }
}
