// Management API: JSON over HTTP on a unix socket (mode 0600: only root manages images).
// Errors carry the same stable codes as the CLI. Mounts and images may be asked for by
// registry reference, with credentials in the request body: they are used, kept where the
// mount needs them, and never sent back, logged or put in an error.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { httpStatus, OndineError } from '../errors.js';
import type { ImageCatalog, ImageSpec } from './catalog.js';
import type { FanotifyMounts, FanotifyMountSpec } from '../kernel/fanotify/mounts.js';
import { listFscacheMounts } from '../kernel/mounts.js';
import { checkPullRequest, type PulledImage, type PullRequest } from './image-pull.js';
import { checkSnapshotMountRequest, snapshotMount, snapshotUmount } from './snapshot-mounts.js';

export interface ApiContext {
  catalog: ImageCatalog;
  /** Present when the daemon serves the fanotify path (it then mounts and unmounts). */
  fanotify: FanotifyMounts | undefined;
  health(): Record<string, unknown>;
  stats(): Promise<unknown>;
  /** Refuses (throws ONDINE_ERR_BUSY) while mounts are live, unless forced. */
  shutdown(force: boolean): Promise<void>;
  /** Resolves a reference and stores its bootstrap (the blobs stay in the registry); `signal` cancels it. */
  pull(req: PullRequest, signal: AbortSignal): Promise<PulledImage>;
  /** A pull's deadline when the request gives none (the time ladder's mount deadline). */
  pullDeadlineMs: number;
  log?: Logger;
}

/** A mount by reference: the pull request and where to mount. */
export interface RefMountRequest extends PullRequest {
  mountpoint: string;
}

/** An image registered by reference (cachefiles): fsid defaults to one derived from the manifest. */
export interface RefImageRequest extends PullRequest {
  fsid?: string;
  domain?: string;
}

async function body(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1 << 20) throw new OndineError('ONDINE_ERR_INVALID', undefined, 'request body too large');
    parts.push(c as Buffer);
  }
  if (!parts.length) return {};
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new OndineError('ONDINE_ERR_INVALID', undefined, 'request body is not JSON');
  }
}

function send(res: ServerResponse, status: number, value?: unknown): void {
  const text = value === undefined ? '' : JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}


/**
 * A pull for one API request: cancelled (AbortSignal through the registry client to undici)
 * when its deadline passes or when the client goes away before the answer (its only waiter:
 * `ondine mount` interrupted or past its own deadline), so no request outlives its caller.
 */
async function pullFor(ctx: ApiContext, r: PullRequest, res: ServerResponse): Promise<PulledImage> {
  const ctl = new AbortController();
  const deadlineMs = r.deadlineMs ?? ctx.pullDeadlineMs;
  const timer = setTimeout(() => ctl.abort(new OndineError('ONDINE_ERR_TIMEOUT', undefined, `${r.ref}: the pull did not finish within ${deadlineMs / 1000} s`)), deadlineMs);
  const gone = () => {
    if (!res.writableFinished) ctl.abort(new OndineError('ONDINE_ERR_TIMEOUT', undefined, `${r.ref}: the pull was cancelled: its client went away`));
  };
  res.once('close', gone);
  try {
    return await ctx.pull(r, ctl.signal);
  } catch (err) {
    if (ctl.signal.aborted) {
      ctx.log?.warn({ ref: r.ref, reason: (ctl.signal.reason as Error).message }, 'pull cancelled');
      throw ctl.signal.reason;
    }
    throw err;
  } finally {
    clearTimeout(timer);
    res.off('close', gone);
  }
}

function fanotifyOf(ctx: ApiContext): FanotifyMounts {
  if (!ctx.fanotify) throw new OndineError('ONDINE_ERR_UNSUPPORTED', undefined, 'this daemon does not serve the fanotify path (see `ondine status`: modes)');
  return ctx.fanotify;
}

export async function startApi(socketPath: string, ctx: ApiContext): Promise<Server> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  await unlink(socketPath).catch(() => undefined);
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://ondine');
      const path = url.pathname;
      try {
        if (req.method === 'GET' && path === '/v1/health') return send(res, 200, ctx.health());
        if (req.method === 'GET' && path === '/v1/images') return send(res, 200, ctx.catalog.list());
        if (req.method === 'GET' && path === '/v1/mounts') {
          await ctx.fanotify?.refresh();
          const known = new Set(ctx.catalog.list().map((i) => `${i.domain ?? ''}\0${i.fsid}`));
          const fscache = (await listFscacheMounts()).map((mnt) => ({ mode: 'cachefiles', ...mnt, served: known.has(`${mnt.domain ?? ''}\0${mnt.fsid}`) }));
          return send(res, 200, [...fscache, ...(ctx.fanotify?.list().map((m) => ({ ...m, served: true })) ?? [])]);
        }
        if (req.method === 'POST' && path === '/v1/mounts') {
          const b = (await body(req)) as Record<string, unknown>;
          if (typeof b?.ref === 'string') {
            const r = checkPullRequest(b);
            if (typeof b.mountpoint !== 'string') throw new OndineError('ONDINE_ERR_INVALID', undefined, 'a mount needs "mountpoint"');
            const mounts = fanotifyOf(ctx);
            // Where a mount's time goes (the pull: manifest and bootstrap; the mount: catalog,
            // cache files, marks, the kernel's mount), for the log and the benchmarks.
            const t0 = performance.now();
            const pulled = await pullFor(ctx, r, res);
            const t1 = performance.now();
            const info = await mounts.mount({ bootstrap: pulled.bootstrapPath, source: pulled.source, ref: pulled.ref, mountpoint: b.mountpoint }, pulled.parsed);
            ctx.log?.info({ ref: pulled.ref, mountpoint: b.mountpoint, pullMs: Math.round(t1 - t0), ...pulled.stages, mountMs: Math.round(performance.now() - t1) }, 'mounted by reference');
            return send(res, 201, info);
          }
          const spec = b as unknown as FanotifyMountSpec;
          if (typeof spec?.bootstrap !== 'string' || typeof spec?.mountpoint !== 'string') {
            throw new OndineError('ONDINE_ERR_INVALID', undefined, 'a mount needs "bootstrap" (or "ref") and "mountpoint"');
          }
          // A registry source is only made from a reference the daemon resolved itself.
          const { source: _ignored, ...local } = spec;
          return send(res, 201, await fanotifyOf(ctx).mount(local));
        }
        if (req.method === 'DELETE' && path === '/v1/mounts') {
          const mountpoint = url.searchParams.get('mountpoint');
          if (!mountpoint) throw new OndineError('ONDINE_ERR_INVALID', undefined, 'DELETE /v1/mounts needs ?mountpoint=');
          await fanotifyOf(ctx).umount(mountpoint);
          return send(res, 204);
        }
        if (req.method === 'POST' && path === '/v1/images') {
          const b = (await body(req)) as Record<string, unknown>;
          if (typeof b?.ref === 'string') {
            const r = checkPullRequest(b);
            for (const k of ['fsid', 'domain'] as const) {
              if (b[k] !== undefined && typeof b[k] !== 'string') throw new OndineError('ONDINE_ERR_INVALID', undefined, `"${k}" must be a string`);
            }
            const t0 = performance.now();
            const pulled = await pullFor(ctx, r, res);
            const t1 = performance.now();
            const fsid = (b.fsid as string | undefined) ?? `ondine-${pulled.manifestDigest.replace(/^sha256:/, '').slice(0, 16)}`;
            const info = await ctx.catalog.add({ fsid, bootstrap: pulled.bootstrapPath, source: pulled.source, ref: pulled.ref, ...(typeof b.domain === 'string' ? { domain: b.domain } : {}) }, pulled.parsed);
            ctx.log?.info({ fsid: info.fsid, domain: info.domain, ref: pulled.ref, source: info.source, pullMs: Math.round(t1 - t0), registerMs: Math.round(performance.now() - t1) }, 'image registered');
            return send(res, 201, info);
          }
          const spec = b as unknown as ImageSpec;
          if (typeof spec?.fsid !== 'string' || typeof spec?.bootstrap !== 'string') {
            throw new OndineError('ONDINE_ERR_INVALID', undefined, 'an image needs "fsid" and "bootstrap" (or "ref")');
          }
          const { source: _ignored, ...local } = spec;
          const info = await ctx.catalog.add(local);
          ctx.log?.info({ fsid: info.fsid, domain: info.domain, bootstrap: info.bootstrap }, 'image registered');
          return send(res, 201, info);
        }
        const m = /^\/v1\/images\/([^/]+)$/.exec(path);
        if (req.method === 'DELETE' && m) {
          const fsid = decodeURIComponent(m[1]!);
          const domain = url.searchParams.get('domain') ?? undefined;
          if (!ctx.catalog.remove(fsid, domain)) throw new OndineError('ONDINE_ERR_NOT_FOUND', undefined, `no image with fsid "${fsid}"`);
          ctx.log?.info({ fsid, domain }, 'image unregistered');
          return send(res, 204);
        }
        if (path === '/v1/snapshot-mounts' && (req.method === 'POST' || req.method === 'DELETE')) {
          const deps = { catalog: ctx.catalog, fanotify: ctx.fanotify, cachefiles: (ctx.health().modes as string[] | undefined)?.includes('cachefiles') ?? false };
          if (req.method === 'POST') return send(res, 201, await snapshotMount(deps, checkSnapshotMountRequest(await body(req))));
          await snapshotUmount(deps, url.searchParams.get('mountpoint') ?? '', url.searchParams.get('detach') === '1');
          return send(res, 204);
        }
        if (req.method === 'GET' && path === '/v1/stats') return send(res, 200, await ctx.stats());
        if (req.method === 'POST' && path === '/v1/shutdown') {
          const force = url.searchParams.get('force') === '1';
          await ctx.shutdown(force);
          return send(res, 202, { ok: true });
        }
        send(res, 404, { code: 'ONDINE_ERR_NOT_FOUND', message: `no route ${req.method} ${path}` });
      } catch (err) {
        const e = err as OndineError;
        const status = e instanceof OndineError ? httpStatus(e.code) : 500;
        send(res, status, { code: e.code ?? 'ONDINE_ERR_INTERNAL', message: e.message });
      }
    })();
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolveListen());
  });
  await chmod(socketPath, 0o600);
  return server;
}
