// Which endpoints serve a registry, in the order to try them: the configured mirrors, then
// containerd's certs.d/<host>/hosts.toml entries (or _default/), then the origin (or the
// hosts.toml `server`). Mirrors serve pulls only; one that failed (connect error, timeout,
// 5xx) is left out for a while. What the answers mean stays with the client.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { parseHostsToml, type Capability, type HostsConfig, type HostsEntry } from './hosts-toml.js';
import { apiHost, isLoopback } from './reference.js';
import type { TlsSettings } from './transport.js';

export type { Capability } from './hosts-toml.js';

export interface Endpoint {
  /** scheme://host[:port] */
  origin: string;
  /** Path the API lives under: `/v2` unless override_path gave a full path. */
  prefix: string;
  mirror: boolean;
  capabilities: ReadonlySet<Capability>;
  tls?: TlsSettings;
  headers?: Record<string, string>;
}

export interface EndpointOptions {
  /** Mirror URLs for every registry, or per registry name. */
  mirrors?: string[] | Record<string, string[]>;
  hostsDir?: string;
  insecure?: boolean;
  caFile?: string;
  /** How long a failed mirror is left out (default 30 s). */
  skipMs?: number;
  now?: () => number;
}

export const DEFAULT_HOSTS_DIR = '/etc/containerd/certs.d';
const PULL_ONLY: ReadonlySet<Capability> = new Set(['pull', 'resolve']);
const ALL: ReadonlySet<Capability> = new Set(['pull', 'resolve', 'push']);

/** `https://m.example/v2`, `http://127.0.0.1:5001` -> origin and API prefix. */
export function endpointFromUrl(url: string, opts: { mirror: boolean; overridePath?: boolean; defaultScheme?: string }): Pick<Endpoint, 'origin' | 'prefix'> {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `${opts.defaultScheme ?? 'https'}://${url}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`${opts.mirror ? 'mirror' : 'registry'} URL ${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`mirror URL ${JSON.stringify(url)}: only http and https`);
  if (u.username !== '' || u.password !== '') throw new InvalidArgumentError('mirror URLs must not carry credentials');
  let path = u.pathname.replace(/\/+$/, '');
  if (opts.overridePath !== true && !path.endsWith('/v2')) path = `${path}/v2`;
  return { origin: u.origin, prefix: path };
}

/** The registry itself: http for loopback (unless a CA file is given) or when insecure, else https. */
export function originEndpoint(registry: string, opts: { insecure?: boolean; caFile?: string } = {}): Endpoint {
  const secure = opts.caFile !== undefined || !(opts.insecure === true || isLoopback(registry));
  const ep: Endpoint = { origin: `${secure ? 'https' : 'http'}://${apiHost(registry)}`, prefix: '/v2', mirror: false, capabilities: ALL };
  if (opts.caFile !== undefined) ep.tls = { ca: [opts.caFile] };
  return ep;
}

export class Endpoints {
  private readonly hostsCache = new Map<string, Promise<HostsConfig | undefined>>();
  private readonly skipped = new Map<string, number>();
  private readonly now: () => number;
  private readonly skipMs: number;

  constructor(private readonly opts: EndpointOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.skipMs = opts.skipMs ?? 30_000;
  }

  /** Endpoints to try for `registry` and `capability`, mirrors first; push only ever reaches the origin. */
  async list(registry: string, capability: Capability): Promise<Endpoint[]> {
    const hosts = await this.hostsConfig(registry);
    const origin = hosts?.server !== undefined ? this.fromHosts(hosts.server, false) : originEndpoint(registry, this.opts);
    if (capability === 'push') return [origin];
    const out: Endpoint[] = [];
    for (const url of this.configuredMirrors(registry)) {
      const ep: Endpoint = { ...endpointFromUrl(url, { mirror: true, defaultScheme: isLoopback(url.split('/')[0]!) ? 'http' : 'https' }), mirror: true, capabilities: PULL_ONLY };
      if (this.opts.caFile !== undefined && ep.origin.startsWith('https:')) ep.tls = { ca: [this.opts.caFile] };
      out.push(ep);
    }
    for (const h of hosts?.hosts ?? []) {
      const ep = this.fromHosts(h, true);
      if (ep.capabilities.has(capability)) out.push(ep);
    }
    const live = out.filter((ep) => !this.isSkipped(ep));
    live.push(origin);
    return live;
  }

  /** A mirror failed (connect error, timeout, 5xx): leave it out for `skipMs`. */
  markFailed(ep: Endpoint): void {
    if (ep.mirror) this.skipped.set(`${ep.origin}${ep.prefix}`, this.now() + this.skipMs);
  }

  isSkipped(ep: Endpoint): boolean {
    const until = this.skipped.get(`${ep.origin}${ep.prefix}`);
    return until !== undefined && this.now() < until;
  }

  private configuredMirrors(registry: string): string[] {
    const m = this.opts.mirrors;
    if (m === undefined) return [];
    if (Array.isArray(m)) return m;
    return m[registry] ?? [];
  }

  private fromHosts(h: HostsEntry, mirror: boolean): Endpoint {
    const endpointOpts: { mirror: boolean; overridePath?: boolean } = { mirror };
    if (h.overridePath !== undefined) endpointOpts.overridePath = h.overridePath;
    const ep: Endpoint = { ...endpointFromUrl(h.url, endpointOpts), mirror, capabilities: mirror ? new Set(h.capabilities.filter((c) => c !== 'push')) : ALL };
    const tls: TlsSettings = {};
    if (h.ca !== undefined) tls.ca = h.ca;
    if (h.skipVerify !== undefined) tls.skipVerify = h.skipVerify;
    if (tls.ca !== undefined || tls.skipVerify !== undefined) ep.tls = tls;
    if (h.headers !== undefined) ep.headers = h.headers;
    return ep;
  }

  private hostsConfig(registry: string): Promise<HostsConfig | undefined> {
    let p = this.hostsCache.get(registry);
    if (p === undefined) {
      p = readHostsConfig(this.opts.hostsDir ?? DEFAULT_HOSTS_DIR, registry);
      this.hostsCache.set(registry, p);
    }
    return p;
  }
}

/** certs.d/<registry>/hosts.toml, else certs.d/_default/hosts.toml; undefined when neither exists. */
export async function readHostsConfig(dir: string, registry: string): Promise<HostsConfig | undefined> {
  for (const name of [registry, '_default']) {
    const file = join(dir, name, 'hosts.toml');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new InvalidArgumentError(`${file}: ${code ?? (err as Error).message}`);
    }
    return parseHostsToml(text, file);
  }
  return undefined;
}
