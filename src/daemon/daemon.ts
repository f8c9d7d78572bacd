// The daemon: wires the front ends (cachefiles where /dev/cachefiles serves, fanotify where
// the cache directory takes pre-content marks), the image catalog and the management API,
// and owns start/stop. Under the supervisor this process is the worker: the supervisor holds
// the fanotify group and hands it the events it cannot answer itself.
import { FillScheduler } from '../storage/fill-scheduler.js';
import type { Server } from 'node:http';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { OndineError } from '../errors.js';
import { CachefilesDevice } from '../kernel/cachefiles/device.js';
import { CachefilesFrontend } from '../kernel/cachefiles/frontend.js';
import { NativeKernelIo } from '../kernel/cachefiles/kernel-io.js';
import { FanotifyService } from '../kernel/fanotify/service.js';
import type { SupervisorLink } from '../kernel/fanotify/supervisor-link.js';
import { CacheFileIo } from '../storage/cache-file.js';
import { DecodePool } from '../storage/decode-pool.js';
import { CacheDir } from '../storage/cache-dir.js';
import type { SourceDeps } from '../storage/source-spec.js';
import { pullBootstrap } from './image-pull.js';
import { timeLadder } from '../registry/time-ladder.js';
import { preloadHttp } from '../registry/transport.js';
import { startApi } from './api.js';
import { CachefilesTargets } from './cachefiles-targets.js';
import { ImageCatalog } from './catalog.js';
import type { DaemonConfig } from './config.js';
import { listFscacheMounts } from '../kernel/mounts.js';
import type { Mode } from './probe.js';

export type { Mode };

interface CachefilesSide {
  device: CachefilesDevice;
  frontend: CachefilesFrontend;
  targets: CachefilesTargets;
}

/** How long a stop waits for each kind of work in flight (fills, source pools) before going on. */
const STOP_GRACE_MS = 2_000;
/** How long the API's open requests get to finish once a stop began. */
const API_CLOSE_GRACE_MS = 500;

export class Daemon {
  readonly catalog: ImageCatalog;
  /** One pool of decode threads for all blobs; absent with decodeThreads 0. */
  private readonly decodePool: DecodePool | undefined;
  private readonly files = new CacheFileIo();
  private cachefiles: CachefilesSide | undefined;
  private fanotify: FanotifyService | undefined;
  private api: Server | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stoppedWaiters: Array<() => void> = [];
  /** What registry sources and pulls are made with: mirrors, hosts.toml, the log. */
  private readonly sourceDeps: SourceDeps;
  /** Every source read of every blob and front end: one connection budget per source, demand first. */
  private readonly scheduler: FillScheduler;

  constructor(readonly config: DaemonConfig, private readonly log: Logger, private readonly modes: readonly Mode[], private readonly link?: SupervisorLink) {
    // Workers start on first use: a daemon whose chunks are all small never starts one.
    this.decodePool = config.decodeThreads > 0
      ? new DecodePool({ size: config.decodeThreads, onWorkerExit: (err) => this.log.error({ err }, 'decode worker died') })
      : undefined;
    this.sourceDeps = {
      log: this.log,
      failureMemoMs: config.failureMemoMs,
      readTimeoutMs: config.readTimeoutMs,
      ...(config.mirrors ? { mirrors: config.mirrors } : {}),
      ...(config.hostsDir ? { hostsDir: config.hostsDir } : {}),
    };
    this.scheduler = new FillScheduler({ budget: config.fetchBudget ?? 8 });
    this.catalog = new ImageCatalog({ amplifyBytes: config.amplifyBytes, failedChunkMs: config.failedChunkMs, sourceDeps: this.sourceDeps, scheduler: this.scheduler, ...(this.decodePool ? { decodePool: this.decodePool } : {}) });
  }

  async start(): Promise<void> {
    const st = await stat(this.config.cacheDir).catch(() => undefined);
    if (!st?.isDirectory()) throw new OndineError('ONDINE_ERR_CACHE_DIR', undefined, `cache directory ${this.config.cacheDir} does not exist`);
    for (const spec of this.config.images) await this.catalog.add(spec);
    if (this.modes.includes('cachefiles')) this.startCachefiles();
    if (this.modes.includes('fanotify')) await this.startFanotify();
    this.api = await startApi(this.config.socketPath, {
      catalog: this.catalog,
      fanotify: this.fanotify?.mounts,
      health: () => this.health(),
      stats: () => this.stats(),
      shutdown: (force) => this.requestStop(force),
      pull: (req, signal) => pullBootstrap(req, new CacheDir(this.config.cacheDir), this.sourceDeps, signal,
        this.config.maxBootstrapBytes !== undefined ? { maxBootstrapBytes: this.config.maxBootstrapBytes } : {}),
      pullDeadlineMs: timeLadder(this.config.readTimeoutMs).mountDeadlineMs,
      log: this.log,
    });
    this.link?.ready();
    this.log.info({ cacheDir: this.config.cacheDir, socket: this.config.socketPath, modes: this.modes, images: this.catalog.list().length, generation: this.generation }, 'daemon ready');
    // The registry's HTTP client loads lazily (the CLI never needs it for most verbs); the
    // daemon loads it once it answers, so its first mount or first cold read does not wait
    // for it. About 7 MB of the worker's idle RSS (BENCHMARKS.md, Memory).
    void preloadHttp().catch((err: unknown) => this.log.error({ err }, 'loading the HTTP client failed'));
  }

  private get generation(): number {
    return Number(process.env.ONDINE_WORKER_GENERATION ?? 0);
  }

  private startCachefiles(): void {
    const device = CachefilesDevice.open({ devicePath: this.config.devicePath, cacheDir: this.config.cacheDir, log: this.log, ...(this.config.tag ? { tag: this.config.tag } : {}) });
    const targets = new CachefilesTargets(this.catalog);
    const frontend = new CachefilesFrontend(new NativeKernelIo(device.fd, this.files), targets, { concurrency: this.config.concurrency, readTimeoutMs: this.config.readTimeoutMs, log: this.log });
    device.start((m) => frontend.handle(m));
    this.cachefiles = { device, frontend, targets };
  }

  private async startFanotify(): Promise<void> {
    this.fanotify = new FanotifyService(this.catalog, this.files, {
      cacheDir: this.config.cacheDir, socketPath: this.config.socketPath, concurrency: this.config.concurrency,
      readTimeoutMs: this.config.readTimeoutMs, generation: this.generation, log: this.log,
    }, this.link);
    await this.fanotify.start();
  }

  /** The supervisor's pid while it holds the group with this worker; null without one. */
  private get supervisorPid(): number | null {
    return this.fanotify?.supervised ? process.ppid : null;
  }

  health(): Record<string, unknown> {
    const problems: string[] = [];
    const cfFailure = this.cachefiles?.device.failure;
    if (cfFailure) problems.push(`cachefiles: ${cfFailure.message}`);
    if (this.fanotify) problems.push(...this.fanotify.problems);
    return {
      ok: problems.length === 0,
      ...(problems.length ? { problems } : {}),
      pid: process.pid,
      workerPid: process.pid,
      supervisorPid: this.supervisorPid,
      modes: this.modes,
      cacheDir: this.config.cacheDir,
    };
  }

  async stats(): Promise<unknown> {
    await this.fanotify?.mounts.refresh();
    const decode = { threads: this.decodePool?.size ?? 0, usable: this.decodePool?.usable ?? false };
    return {
      pid: process.pid,
      workerPid: process.pid,
      supervisorPid: this.supervisorPid,
      modes: this.modes,
      frontend: this.cachefiles?.frontend.stats,
      fanotify: this.fanotify ? await this.fanotify.stats() : undefined,
      sources: this.catalog.sourceCounters(),
      decode,
      fills: this.scheduler.stats(),
      images: this.catalog.list(),
      mounts: this.fanotify?.mounts.list() ?? [],
    };
  }

  /** Live mounts this daemon serves (a stop would fail their uncached reads). */
  async liveMounts(): Promise<string[]> {
    await this.fanotify?.mounts.refresh();
    const out = this.fanotify?.mounts.list().map((m) => m.mountpoint) ?? [];
    if (this.cachefiles) {
      const known = new Set(this.catalog.list().map((i) => `${i.domain ?? ''}\0${i.fsid}`));
      for (const m of await listFscacheMounts()) if (known.has(`${m.domain ?? ''}\0${m.fsid}`)) out.push(m.mountpoint);
    }
    return out;
  }

  /** A stop asked for over the API: refused while mounts are live, unless forced. */
  private async requestStop(force: boolean): Promise<void> {
    const live = await this.liveMounts();
    if (live.length && !force) {
      throw new OndineError('ONDINE_ERR_BUSY', undefined, `${live.length} live mount${live.length > 1 ? 's' : ''} (${live.join(', ')}): unmount ${live.length > 1 ? 'them' : 'it'} first, or stop with --force`);
    }
    void this.stop();
  }

  /**
   * Stops: the fanotify mounts are unmounted (detached) first, because once the group closes
   * the kernel would let their unfilled ranges read as zeros; then queued work finishes and
   * the devices close (cachefiles fails uncached reads with EIO by itself).
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('daemon stopping');
      await this.closeApi();
      await this.fanotify?.stop(STOP_GRACE_MS);
      await this.within(this.cachefiles?.frontend.idle(), 'cachefiles requests in flight');
      this.cachefiles?.frontend.closeAll();
      this.cachefiles?.device.close();
      // A registry that hangs would hold its connection pools' close for minutes.
      await this.within(this.catalog.close(), 'closing blob sources');
      await this.within(this.decodePool?.close(), 'decode workers');
      this.log.info('daemon stopped');
      for (const w of this.stoppedWaiters) w();
    })();
    return this.stopping;
  }

  /**
   * Stops listening and ends the API's connections: the stop's own answer gets out, a request
   * still waiting (a pull from a registry that hangs) is cut after a short grace.
   */
  private closeApi(): Promise<void> {
    const api = this.api;
    if (!api) return Promise.resolve();
    return new Promise<void>((r) => {
      const timer = setTimeout(() => api.closeAllConnections(), API_CLOSE_GRACE_MS);
      api.close(() => {
        clearTimeout(timer);
        r();
      });
    });
  }

  /** Waits for `p` at most the stop grace: a stop must end even while a fetch hangs. */
  private async within(p: Promise<unknown> | undefined, what: string): Promise<void> {
    if (!p) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => { timer = setTimeout(() => r('late'), STOP_GRACE_MS); });
    const r = await Promise.race([p.then(() => 'done' as const, () => 'done' as const), late]);
    clearTimeout(timer);
    if (r === 'late') this.log.warn({ what, graceMs: STOP_GRACE_MS }, 'stopping without waiting longer');
  }

  /** Resolves once stop() has finished. */
  stopped(): Promise<void> {
    return new Promise((r) => this.stoppedWaiters.push(r));
  }
}
