// The daemon: wires the front ends (cachefiles where /dev/cachefiles serves, fanotify where
// the cache directory takes pre-content marks), the image catalog and the management API,
// and owns start/stop. Under the supervisor this process is the worker: the supervisor holds
// the fanotify group and hands it the events it cannot answer itself.
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { OndineError } from '../errors.js';
import { CachefilesDevice } from '../kernel/cachefiles/device.js';
import { CachefilesFrontend } from '../kernel/cachefiles/frontend.js';
import { NativeKernelIo } from '../kernel/cachefiles/kernel-io.js';
import { FanotifyFrontend } from '../kernel/fanotify/frontend.js';
import { GroupReader } from '../kernel/fanotify/group-reader.js';
import { AccessReply } from '../kernel/fanotify/replies.js';
import { SupervisorLink } from '../kernel/fanotify/supervisor-link.js';
import { closeFd } from '../native/index.js';
import { CacheFileIo } from '../storage/cache-file.js';
import { DecodePool } from '../storage/decode-pool.js';
import { CacheDir } from '../storage/cache-dir.js';
import type { SourceDeps } from '../storage/source-spec.js';
import { pullBootstrap } from './image-pull.js';
import { timeLadder } from '../registry/time-ladder.js';
import { startApi } from './api.js';
import { CachefilesTargets } from './cachefiles-targets.js';
import { ImageCatalog } from './catalog.js';
import type { DaemonConfig } from './config.js';
import { FanotifyMounts } from './fanotify-mounts.js';
import { openFanotifyGroup } from './probe.js';
import { listFscacheMounts } from './mounts.js';

export type Mode = 'cachefiles' | 'fanotify';

interface CachefilesSide {
  device: CachefilesDevice;
  frontend: CachefilesFrontend;
  targets: CachefilesTargets;
}

interface FanotifySide {
  group: number;
  frontend: FanotifyFrontend;
  mounts: FanotifyMounts;
  link: SupervisorLink | undefined;
  reader: GroupReader | undefined;
  /** Events the supervisor handed over and this worker has not answered: id → its fd number there. */
  handedOver: Map<number, number>;
}

export class Daemon {
  readonly catalog: ImageCatalog;
  /** One pool of decode threads for all blobs; absent with decodeThreads 0. */
  private readonly decodePool: DecodePool | undefined;
  private readonly files = new CacheFileIo();
  private cachefiles: CachefilesSide | undefined;
  private fanotify: FanotifySide | undefined;
  private api: Server | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stoppedWaiters: Array<() => void> = [];
  private failure: string | undefined;
  /** What registry sources and pulls are made with: mirrors, hosts.toml, the log. */
  private readonly sourceDeps: SourceDeps;

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
    this.catalog = new ImageCatalog({ amplifyBytes: config.amplifyBytes, failedChunkMs: config.failedChunkMs, sourceDeps: this.sourceDeps, ...(this.decodePool ? { decodePool: this.decodePool } : {}) });
  }

  async start(): Promise<void> {
    const st = await stat(this.config.cacheDir).catch(() => undefined);
    if (!st?.isDirectory()) throw new OndineError('ONDINE_ERR_CACHE_DIR', 2, `cache directory ${this.config.cacheDir} does not exist`);
    for (const spec of this.config.images) await this.catalog.add(spec);
    if (this.modes.includes('cachefiles')) this.startCachefiles();
    if (this.modes.includes('fanotify')) await this.startFanotify();
    this.api = await startApi(this.config.socketPath, {
      catalog: this.catalog,
      fanotify: this.fanotify?.mounts,
      health: () => this.health(),
      stats: () => this.stats(),
      shutdown: (force) => this.requestStop(force),
      pull: (req, signal) => pullBootstrap(req, new CacheDir(this.config.cacheDir), this.sourceDeps, signal),
      pullDeadlineMs: timeLadder(this.config.readTimeoutMs).mountDeadlineMs,
      log: this.log,
    });
    this.link?.ready();
    this.log.info({ cacheDir: this.config.cacheDir, socket: this.config.socketPath, modes: this.modes, images: this.catalog.list().length, generation: this.generation }, 'daemon ready');
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
    const group = this.link?.groupFd ?? openFanotifyGroup();
    const statePath = join(dirname(this.config.socketPath), 'fanotify-state.json');
    const mounts = new FanotifyMounts(this.catalog, this.config.cacheDir, group, statePath, this.log);
    // A restarted worker serves what its predecessor mounted; a fresh daemon starts empty.
    if (this.link && this.generation > 0) await mounts.restore();
    const frontend = new FanotifyFrontend(this.files, mounts, (fd) => closeFd(fd), {
      concurrency: this.config.concurrency, fillTimeoutMs: this.config.readTimeoutMs, log: this.log,
    });
    const side: FanotifySide = { group, frontend, mounts, link: this.link, reader: undefined, handedOver: new Map() };
    this.fanotify = side;
    if (this.link) {
      const link = this.link;
      link.start((ev) => {
        side.handedOver.set(ev.id, ev.groupFd);
        const reply = new AccessReply((err) => {
          side.handedOver.delete(ev.id);
          link.answer(ev.id, err);
        }, `event ${ev.id}`);
        frontend.handle({ offset: ev.offset, count: ev.count, dev: ev.dev, ino: ev.ino, fd: ev.fd }, reply);
      }, () => this.takeOver(side), (err) => this.log.error({ err }, 'malformed message from the supervisor'));
    } else {
      side.reader = new GroupReader(group, frontend, this.log);
      side.reader.start();
    }
  }

  /**
   * The supervisor is gone: this process holds the only other copy of the group, so it reads
   * the group itself from now on rather than let the group close (which would allow every
   * pending event: zeros). Events the supervisor had handed over are answered by the front
   * end through the link, which is closed: they are denied by their supervisor fd number
   * first, so no number of ours can ever collide with one of theirs.
   */
  private takeOver(side: FanotifySide): void {
    if (this.stopping) return;
    this.log.error('the supervisor is gone: reading the fanotify group directly');
    this.failure = 'supervisor lost; worker serving the group directly';
    side.reader = new GroupReader(side.group, side.frontend, this.log);
    for (const n of side.handedOver.values()) side.reader.respond(n, 5);
    side.handedOver.clear();
    side.reader.start();
  }

  /** The supervisor's pid while it holds the group with this worker; null without one. */
  private get supervisorPid(): number | null {
    return this.link && !this.fanotify?.reader ? process.ppid : null;
  }

  health(): Record<string, unknown> {
    const problems: string[] = [];
    if (this.failure) problems.push(this.failure);
    const cfFailure = this.cachefiles?.device.failure;
    if (cfFailure) problems.push(`cachefiles: ${cfFailure.message}`);
    if (this.fanotify?.reader?.failure) problems.push(`fanotify: ${this.fanotify.reader.failure.message}`);
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
    const decode = { threads: this.decodePool?.size ?? 0, usable: this.decodePool?.usable ?? false };
    const supervisor = this.link ? await this.link.stats().catch(() => undefined) : undefined;
    return {
      pid: process.pid,
      workerPid: process.pid,
      supervisorPid: this.supervisorPid,
      modes: this.modes,
      frontend: this.cachefiles?.frontend.stats,
      fanotify: this.fanotify ? { ...this.fanotify.frontend.stats, allowedAtOnce: this.fanotify.reader?.allowedAtOnce ?? 0, supervisor } : undefined,
      sources: this.catalog.sourceCounters(),
      decode,
      images: this.catalog.list(),
      mounts: this.fanotify?.mounts.list() ?? [],
    };
  }

  /** Live mounts this daemon serves (a stop would fail their uncached reads). */
  async liveMounts(): Promise<string[]> {
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
      throw new OndineError('ONDINE_ERR_BUSY', 16, `${live.length} live mount${live.length > 1 ? 's' : ''} (${live.join(', ')}): unmount ${live.length > 1 ? 'them' : 'it'} first, or stop with --force`);
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
      await new Promise<void>((r) => (this.api ? this.api.close(() => r()) : r()));
      if (this.fanotify) {
        await this.fanotify.mounts.umountAll();
        await this.fanotify.frontend.idle();
        this.fanotify.reader?.close();
        this.fanotify.link?.close();
        this.fanotify.mounts.close();
        if (!this.link) closeFd(this.fanotify.group);
      }
      await this.cachefiles?.frontend.idle();
      this.cachefiles?.frontend.closeAll();
      this.cachefiles?.device.close();
      await this.catalog.close();
      await this.decodePool?.close();
      this.log.info('daemon stopped');
      for (const w of this.stoppedWaiters) w();
    })();
    return this.stopping;
  }

  /** Resolves once stop() has finished. */
  stopped(): Promise<void> {
    return new Promise((r) => this.stoppedWaiters.push(r));
  }
}
