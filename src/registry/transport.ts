// HTTP for the registry client: undici dispatchers with keep-alive pools per origin, connect,
// header and body timeouts, TLS trust from CA files, HTTPS_PROXY/HTTP_PROXY/NO_PROXY through
// EnvHttpProxyAgent, and redirects followed by undici's interceptor (which keeps Range and
// drops Authorization when the redirect leaves the origin). One dispatcher per TLS setting.
// undici loads with the first request, not with this module: it is 7-20 MB of a process's
// resident memory, and a daemon that has not pulled anything yet (or a CLI verb that never
// talks to a registry) should not carry it.
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { InvalidArgumentError } from '../errors.js';
import { timeLadder } from './time-ladder.js';

export interface TlsSettings {
  /** CA certificate files (PEM) to trust in addition to nothing else. */
  ca?: string[];
  skipVerify?: boolean;
}

export interface TransportOptions {
  connectTimeoutMs?: number;
  /** Time allowed for the response headers, and between two body chunks. */
  readTimeoutMs?: number;
  maxRedirections?: number;
  /** Environment for the proxy variables (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface RequestInit {
  method: string;
  headers?: Record<string, string>;
  body?: string | Buffer | Readable | null;
  signal?: AbortSignal;
  tls?: TlsSettings;
}

export type Response = Dispatcher.ResponseData;

function proxyEnv(env: NodeJS.ProcessEnv): { httpProxy?: string; httpsProxy?: string; noProxy?: string } | undefined {
  const httpsProxy = env.HTTPS_PROXY ?? env.https_proxy;
  const httpProxy = env.HTTP_PROXY ?? env.http_proxy;
  if (!httpsProxy && !httpProxy) return undefined;
  const out: { httpProxy?: string; httpsProxy?: string; noProxy?: string } = {};
  if (httpProxy) out.httpProxy = httpProxy;
  if (httpsProxy) out.httpsProxy = httpsProxy;
  const noProxy = env.NO_PROXY ?? env.no_proxy;
  if (noProxy !== undefined) out.noProxy = noProxy;
  return out;
}

type Undici = typeof import('undici');
let undici: Promise<Undici> | undefined;

/**
 * Loads undici now rather than with the first request: for a daemon, which would otherwise pay
 * for loading it (from a cold page cache, hundreds of ms) inside its first mount.
 */
export function preloadHttp(): Promise<unknown> {
  return (undici ??= import('undici'));
}

export class Transport {
  private readonly dispatchers = new Map<string, Dispatcher>();
  private readonly connectTimeoutMs: number;
  private readonly readTimeoutMs: number;
  private readonly maxRedirections: number;
  private readonly env: NodeJS.ProcessEnv;

  constructor(opts: TransportOptions = {}) {
    this.readTimeoutMs = opts.readTimeoutMs ?? timeLadder().attemptIdleMs;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? timeLadder().connectTimeoutMs;
    this.maxRedirections = opts.maxRedirections ?? 5;
    this.env = opts.env ?? process.env;
  }

  /** Whether requests go through a proxy from the environment (for logs). */
  get proxied(): boolean {
    return proxyEnv(this.env) !== undefined;
  }

  private dispatcher(tls: TlsSettings | undefined, { Agent, EnvHttpProxyAgent, interceptors }: Undici): Dispatcher {
    const key = JSON.stringify([tls?.ca ?? [], tls?.skipVerify === true]);
    const existing = this.dispatchers.get(key);
    if (existing !== undefined) return existing;
    const connect: Record<string, unknown> = { timeout: this.connectTimeoutMs };
    if (tls?.ca !== undefined && tls.ca.length > 0) {
      connect.ca = tls.ca.map((file) => {
        try {
          return readFileSync(file, 'utf8');
        } catch (err) {
          throw new InvalidArgumentError(`CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      });
    }
    if (tls?.skipVerify === true) connect.rejectUnauthorized = false;
    const common = {
      connect,
      headersTimeout: this.readTimeoutMs,
      bodyTimeout: this.readTimeoutMs,
      keepAliveTimeout: 10_000,
    };
    const proxy = proxyEnv(this.env);
    const base: Dispatcher = proxy !== undefined ? new EnvHttpProxyAgent({ ...common, ...proxy, requestTls: connect }) : new Agent(common);
    const composed = base.compose(interceptors.redirect({ maxRedirections: this.maxRedirections }));
    this.dispatchers.set(key, composed);
    this.bases.push(base);
    return composed;
  }

  private readonly bases: Dispatcher[] = [];

  async request(url: URL, init: RequestInit): Promise<Response> {
    const opts: Dispatcher.RequestOptions = {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: init.method as Dispatcher.HttpMethod,
      headers: init.headers ?? {},
      body: init.body ?? null,
    };
    if (init.signal !== undefined) opts.signal = init.signal;
    return this.dispatcher(init.tls, await (undici ??= import('undici'))).request(opts);
  }

  async close(): Promise<void> {
    const bases = this.bases.splice(0);
    this.dispatchers.clear();
    await Promise.all(bases.map((b) => b.close().catch(() => b.destroy())));
  }
}
