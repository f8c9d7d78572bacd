// Talks to a running daemon over its unix socket.
import { request } from 'node:http';
import { OndineError } from '../errors.js';
import type { ImageInfo, ImageSpec } from './registry.js';

export class DaemonUnavailableError extends OndineError {
  constructor(socketPath: string, cause: unknown) {
    super('ONDINE_ERR_NO_DAEMON', 111, `no daemon answers on ${socketPath} (${(cause as Error).message})`, { cause });
  }
}

export class DaemonClient {
  constructor(readonly socketPath: string) {}

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request({ socketPath: this.socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          const value = text ? JSON.parse(text) as Record<string, unknown> : undefined;
          if ((res.statusCode ?? 500) >= 400) {
            reject(new OndineError(String(value?.code ?? 'ONDINE_ERR_DAEMON'), 5, String(value?.message ?? `daemon answered ${res.statusCode}`)));
          } else resolve(value as T);
        });
      });
      req.on('error', (err) => reject(new DaemonUnavailableError(this.socketPath, err)));
      if (payload) req.write(payload);
      req.end();
    });
  }

  health(): Promise<{ ok: boolean; pid: number }> { return this.call('GET', '/v1/health'); }
  images(): Promise<ImageInfo[]> { return this.call('GET', '/v1/images'); }
  register(spec: ImageSpec): Promise<ImageInfo> { return this.call('POST', '/v1/images', spec); }
  unregister(fsid: string, domain?: string): Promise<void> {
    return this.call('DELETE', `/v1/images/${encodeURIComponent(fsid)}${domain ? `?domain=${encodeURIComponent(domain)}` : ''}`);
  }
  stats(): Promise<Record<string, unknown>> { return this.call('GET', '/v1/stats'); }
  mounts(): Promise<Array<{ mountpoint: string; fsid: string; domain?: string; served: boolean }>> { return this.call('GET', '/v1/mounts'); }
  shutdown(): Promise<void> { return this.call('POST', '/v1/shutdown'); }
}
