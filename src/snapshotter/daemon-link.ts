// The snapshotter's calls to the Ondine daemon's management socket, each with a deadline: a
// stopped or wedged daemon makes a call fail (and containerd's call with it), never hang.
// Also the check that the daemon mounts in our mount namespace: an EROFS mount made in
// another namespace is invisible here, so overlay over it would fail much later, obscurely.
import { request } from 'node:http';
import { readlinkSync } from 'node:fs';
import { OndineError, type ErrorCode } from '../errors.js';
import type { SnapshotMountInfo, SnapshotMountRequest } from '../daemon/snapshot-mounts.js';

export class DaemonLink {
  constructor(readonly socketPath: string, private readonly timeoutMs = 10_000) {}

  private call<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request({
        socketPath: this.socketPath, method, path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      }, (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 1 << 20) { req.destroy(new Error('answer larger than 1 MiB')); return; }
          parts.push(c);
        });
        res.on('end', () => {
          clearTimeout(timer);
          let value: Record<string, unknown> | undefined;
          try {
            const text = Buffer.concat(parts).toString('utf8');
            value = text ? JSON.parse(text) as Record<string, unknown> : undefined;
          } catch {
            return reject(new OndineError('ONDINE_ERR_DAEMON', undefined, `the daemon's answer to ${method} ${path} is not JSON`));
          }
          if ((res.statusCode ?? 500) >= 400) {
            reject(new OndineError(String(value?.code ?? 'ONDINE_ERR_DAEMON') as ErrorCode, undefined, `daemon: ${String(value?.message ?? `answered ${res.statusCode}`)}`));
          } else resolve(value as T);
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(new OndineError('ONDINE_ERR_TIMEOUT', undefined, `the daemon on ${this.socketPath} did not answer ${method} ${path} in ${timeoutMs / 1000} s`));
      }, timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(new OndineError('ONDINE_ERR_NO_DAEMON', undefined, `no daemon answers on ${this.socketPath} (${err.message}); start \`ondine daemon\` first`, { cause: err }));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  health(timeoutMs?: number): Promise<{ pid: number; workerPid?: number; modes: string[] }> {
    return this.call('GET', '/v1/health', undefined, timeoutMs);
  }

  mount(req: SnapshotMountRequest): Promise<SnapshotMountInfo> {
    return this.call('POST', '/v1/snapshot-mounts', req);
  }

  umount(mountpoint: string, detach = false): Promise<void> {
    return this.call('DELETE', `/v1/snapshot-mounts?mountpoint=${encodeURIComponent(mountpoint)}${detach ? '&detach=1' : ''}`);
  }

  /** Throws ONDINE_ERR_MOUNT_NS unless the daemon's mounts land in this mount namespace. */
  async checkNamespace(timeoutMs?: number): Promise<{ pid: number; modes: string[] }> {
    const h = await this.health(timeoutMs);
    const pid = h.workerPid ?? h.pid;
    if (!Number.isInteger(pid) || pid <= 0) throw new OndineError('ONDINE_ERR_DAEMON', undefined, 'the daemon did not say its pid');
    const mine = readlinkSync('/proc/self/ns/mnt');
    let theirs: string;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch (err) {
      throw new OndineError('ONDINE_ERR_MOUNT_NS', undefined, `cannot see the daemon's (pid ${pid}) mount namespace from here (${(err as Error).message}): run the snapshotter and \`ondine daemon\` in the same mount and pid namespace`);
    }
    if (theirs !== mine) {
      throw new OndineError('ONDINE_ERR_MOUNT_NS', undefined, `the daemon (pid ${pid}) is in mount namespace ${theirs}, the snapshotter in ${mine}: its EROFS mounts would be invisible to containerd; run both in containerd's mount namespace`);
    }
    return { pid, modes: h.modes };
  }
}
