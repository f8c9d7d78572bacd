// Talks to a running daemon over its unix socket.
import { request } from 'node:http';
import { ERROR_CODES, OndineError, type ErrorCode } from '../errors.js';
import type { ImageInfo, ImageSpec } from './catalog.js';
import type { FanotifyMountInfo, FanotifyMountSpec } from '../kernel/fanotify/mounts.js';
import type { RefImageRequest, RefMountRequest } from './api.js';

export class DaemonUnavailableError extends OndineError {
  constructor(socketPath: string, cause: unknown) {
    super('ONDINE_ERR_NO_DAEMON', undefined, `no daemon answers on ${socketPath} (${(cause as Error).message})`, { cause });
  }
}

export interface DaemonHealth {
  ok: boolean;
  problems?: string[];
  pid: number;
  workerPid: number;
  supervisorPid: number | null;
  modes: Array<'cachefiles' | 'fanotify'>;
  cacheDir: string;
}

export class DaemonClient {
  constructor(readonly socketPath: string) {}

  /** One API call; `signal` abandons it (closing the connection, which cancels the daemon's pull) with its reason. */
  private call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request({ socketPath: this.socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}, ...(signal ? { signal } : {}) }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          const value = text ? JSON.parse(text) as Record<string, unknown> : undefined;
          if ((res.statusCode ?? 500) >= 400) {
            // The daemon's own code and message, as if the error had happened here.
            // A code this client's table lacks (a newer daemon) is ONDINE_ERR_DAEMON; the errno is the table's.
            const known = typeof value?.code === 'string' && value.code in ERROR_CODES;
            const message = String(value?.message ?? `daemon answered ${res.statusCode}`);
            reject(new OndineError(known ? value.code as ErrorCode : 'ONDINE_ERR_DAEMON', undefined, known || value?.code === undefined ? message : `${message} [${String(value.code)}]`));
          } else resolve(value as T);
        });
      });
      req.on('error', (err) => reject(signal?.aborted ? signal.reason as Error : new DaemonUnavailableError(this.socketPath, err)));
      if (payload) req.write(payload);
      req.end();
    });
  }

  health(): Promise<DaemonHealth> { return this.call('GET', '/v1/health'); }
  images(): Promise<ImageInfo[]> { return this.call('GET', '/v1/images'); }
  register(spec: ImageSpec): Promise<ImageInfo> { return this.call('POST', '/v1/images', spec); }
  unregister(fsid: string, domain?: string): Promise<void> {
    return this.call('DELETE', `/v1/images/${encodeURIComponent(fsid)}${domain ? `?domain=${encodeURIComponent(domain)}` : ''}`);
  }
  stats(): Promise<Record<string, unknown>> { return this.call('GET', '/v1/stats'); }
  mounts(): Promise<Array<{ mode: 'cachefiles' | 'fanotify'; mountpoint: string; fsid?: string; domain?: string; served: boolean }>> { return this.call('GET', '/v1/mounts'); }
  mount(spec: FanotifyMountSpec): Promise<FanotifyMountInfo> { return this.call('POST', '/v1/mounts', spec); }
  /** Mounts an image by registry reference (fanotify); credentials go over the 0600 socket only. */
  mountRef(req: RefMountRequest, signal?: AbortSignal): Promise<FanotifyMountInfo> { return this.call('POST', '/v1/mounts', req, signal); }
  /** Registers an image by registry reference (cachefiles); the answer has the fsid to mount. */
  registerRef(req: RefImageRequest, signal?: AbortSignal): Promise<ImageInfo> { return this.call('POST', '/v1/images', req, signal); }
  umount(mountpoint: string): Promise<void> { return this.call('DELETE', `/v1/mounts?mountpoint=${encodeURIComponent(mountpoint)}`); }
  shutdown(force = false): Promise<void> { return this.call('POST', `/v1/shutdown${force ? '?force=1' : ''}`); }

  /**
   * Polls /v1/health until a daemon answers. Gives up with ONDINE_ERR_NO_DAEMON once
   * `exited()` returns an exit code (the daemon being waited for died) or after `timeoutMs`;
   * `hint` (e.g. where its log is) ends the message.
   */
  async waitUntilUp(exited: () => number | null, timeoutMs: number, hint = ''): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.health();
        return;
      } catch (err) {
        if (!(err instanceof DaemonUnavailableError)) throw err;
        const code = exited();
        if (code !== null) throw new OndineError('ONDINE_ERR_NO_DAEMON', undefined, `the daemon exited (${code})${hint ? `; ${hint}` : ''}`, { cause: err });
        if (Date.now() > deadline) throw new OndineError('ONDINE_ERR_NO_DAEMON', undefined, `the daemon did not answer in ${timeoutMs / 1000} s${hint ? `; ${hint}` : ''}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
