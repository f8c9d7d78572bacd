// The daemon: wires the cachefiles device, the front end, the image registry and the
// management API, and owns start/stop. Stopping finishes queued READs first, then closes the
// device (after which uncached reads of live mounts fail with EIO, by the kernel's design).
import type { Server } from 'node:http';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { OndineError } from '../errors.js';
import { CachefilesDevice } from '../kernel/cachefiles/device.js';
import { CachefilesFrontend } from '../kernel/cachefiles/frontend.js';
import { NativeKernelIo } from '../kernel/cachefiles/kernel-io.js';
import { DecodePool } from '../storage/decode-pool.js';
import { startApi } from './api.js';
import type { DaemonConfig } from './config.js';
import { ImageRegistry } from './registry.js';

export class Daemon {
  readonly registry: ImageRegistry;
  /** One pool of decode threads for all blobs; absent with decodeThreads 0. */
  private readonly decodePool: DecodePool | undefined;
  private device: CachefilesDevice | undefined;
  private frontend: CachefilesFrontend | undefined;
  private api: Server | undefined;
  private stopping: Promise<void> | undefined;
  private readonly stoppedWaiters: Array<() => void> = [];

  constructor(readonly config: DaemonConfig, private readonly log: Logger) {
    // Workers start on first use: a daemon whose chunks are all small never starts one.
    this.decodePool = config.decodeThreads > 0
      ? new DecodePool({ size: config.decodeThreads, onWorkerExit: (err) => this.log.error({ err }, 'decode worker died') })
      : undefined;
    this.registry = new ImageRegistry({ amplifyBytes: config.amplifyBytes, ...(this.decodePool ? { decodePool: this.decodePool } : {}) });
  }

  async start(): Promise<void> {
    const st = await stat(this.config.cacheDir).catch(() => undefined);
    if (!st?.isDirectory()) throw new OndineError('ONDINE_ERR_CACHE_DIR', 2, `cache directory ${this.config.cacheDir} does not exist`);
    for (const spec of this.config.images) await this.registry.add(spec);
    this.device = CachefilesDevice.open({ devicePath: this.config.devicePath, cacheDir: this.config.cacheDir, log: this.log, ...(this.config.tag ? { tag: this.config.tag } : {}) });
    const io = new NativeKernelIo(this.device.fd);
    this.frontend = new CachefilesFrontend(io, this.registry, { concurrency: this.config.concurrency, readTimeoutMs: this.config.readTimeoutMs, log: this.log });
    const fe = this.frontend;
    this.device.start((m) => fe.handle(m));
    this.api = await startApi(this.config.socketPath, {
      registry: this.registry,
      stats: () => this.stats(),
      shutdown: () => void this.stop(),
      log: this.log,
    });
    this.log.info({ cacheDir: this.config.cacheDir, socket: this.config.socketPath, images: this.registry.list().length }, 'daemon ready');
  }

  stats(): unknown {
    const decode = { threads: this.decodePool?.size ?? 0, usable: this.decodePool?.usable ?? false };
    return { pid: process.pid, frontend: this.frontend?.stats, sources: this.registry.sourceCounters(), decode, images: this.registry.list() };
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('daemon stopping');
      await new Promise<void>((r) => (this.api ? this.api.close(() => r()) : r()));
      await this.frontend?.idle();
      this.frontend?.closeAll();
      this.device?.close();
      await this.registry.close();
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
