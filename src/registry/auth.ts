// The registry authentication dance: parses WWW-Authenticate challenges, fetches bearer tokens
// from the realm (basic credentials or an identity token), caches them per (realm, service,
// scope) with one fetch at a time per key, renews them shortly before `expires_in` and at most
// once per 401. It never logs or returns credentials in messages.
import { createHash } from 'node:crypto';
import type { Credentials } from './credentials.js';
import { RegistryError, safeUrl, statusError } from './errors.js';

export interface Challenge {
  /** Lower-case scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>;
}

/**
 * Parses one or more challenges (`Bearer realm="https://a/token",service="x",scope="repository:a:pull,push", Basic realm="r"`).
 * Quoted values may hold commas, spaces and escaped quotes.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !' \t,="'.includes(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const word = token();
    if (word === '') {
      i++; // stray character: skip it rather than loop
      continue;
    }
    skipWs();
    if (header[i] === '=' && current !== undefined) {
      i++;
      skipWs();
      let value: string;
      if (header[i] === '"') {
        i++;
        value = '';
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++; // closing quote
      } else {
        value = token();
      }
      current.params[word.toLowerCase()] = value;
    } else if (header[i] === '=' && current === undefined) {
      i++; // a parameter without a scheme: ignore its value
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') i += header[i] === '\\' ? 2 : 1;
        i++;
      } else token();
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/**
 * Scope strings (`repository:a/b:pull`) merged per resource with their actions sorted, so the
 * same access always gives the same cache key whatever order it was asked in.
 */
export function mergeScopes(...lists: (readonly string[])[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const list of lists) {
    for (const scope of list) {
      for (const item of scope.split(' ')) {
        if (item === '') continue;
        const last = item.lastIndexOf(':');
        if (last <= 0) continue;
        const resource = item.slice(0, last);
        const actions = byResource.get(resource) ?? new Set<string>();
        for (const a of item.slice(last + 1).split(',')) if (a !== '') actions.add(a);
        byResource.set(resource, actions);
      }
    }
  }
  return [...byResource.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([r, acts]) => `${r}:${[...acts].sort().join(',')}`);
}

export interface TokenRequest {
  realm: string;
  service?: string;
  scopes: string[];
  credentials?: Credentials;
}
export interface TokenGrant {
  token: string;
  /** Seconds; undefined when the service did not say (then 60 s, as the spec defaults). */
  expiresInS?: number;
}
export type TokenFetcher = (req: TokenRequest) => Promise<TokenGrant>;

/** What the authenticator needs of HTTP: one request, its whole body. */
export type HttpCall = (url: URL, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}>;

const DEFAULT_TOKEN_LIFETIME_S = 60;

export function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/**
 * A token fetcher speaking the distribution token protocol: GET realm?service&scope (basic
 * credentials when there are some), or the OAuth2 POST form with an identity (refresh) token.
 */
export function httpTokenFetcher(http: HttpCall, clientId = 'ondine'): TokenFetcher {
  return async ({ realm, service, scopes, credentials }) => {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError('ONDINE_ERR_REGISTRY', `token realm ${JSON.stringify(realm)} is not a URL`, { retryable: false });
    }
    const headers: Record<string, string> = {};
    let method = 'GET';
    let body: string | undefined;
    if (credentials !== undefined && 'identityToken' in credentials) {
      method = 'POST';
      const form = new URLSearchParams();
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', credentials.identityToken);
      if (service !== undefined) form.set('service', service);
      form.set('client_id', clientId);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (credentials !== undefined && 'username' in credentials) headers.authorization = basicHeader(credentials.username, credentials.password);
    }
    const init: { method: string; headers: Record<string, string>; body?: string } = { method, headers };
    if (body !== undefined) init.body = body;
    const res = await http(url, init);
    const where = `token service ${safeUrl(url)}`;
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError('ONDINE_ERR_AUTH', `${where} refused the credentials (HTTP ${res.status})`, { retryable: false, status: res.status });
    }
    if (res.status !== 200) throw statusError(where, res.status, res.headers['retry-after']);
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      json = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryError('ONDINE_ERR_REGISTRY', `${where} answered with something that is not JSON`, { retryable: true, status: 200 });
    }
    const token = typeof json.token === 'string' && json.token !== '' ? json.token : json.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryError('ONDINE_ERR_REGISTRY', `${where} answered without a token`, { retryable: false, status: 200 });
    }
    const grant: TokenGrant = { token };
    if (typeof json.expires_in === 'number' && json.expires_in > 0) grant.expiresInS = json.expires_in;
    return grant;
  };
}

type OriginScheme = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service?: string };

interface CachedToken {
  token: string;
  renewAt: number;
}

/**
 * Per-origin authentication state. `authorization` gives the header to send up front (none
 * until the origin has challenged once); `afterUnauthorized` learns a challenge and gives the
 * header to retry with once. Concurrent callers share one token fetch per key, and a 401 only
 * drops the cached token when it is the one that was refused, so N readers that all hit an
 * expired token cause one renewal.
 */
export class Authenticator {
  private readonly origins = new Map<string, OriginScheme>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly fetchToken: TokenFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  /** Header for a request to `origin` needing `scopes`; undefined when anonymous so far. */
  async authorization(origin: string, scopes: string[], credentials?: Credentials): Promise<string | undefined> {
    const scheme = this.origins.get(origin);
    if (scheme === undefined) return undefined;
    if (scheme.scheme === 'basic') return credentials !== undefined && 'username' in credentials ? basicHeader(credentials.username, credentials.password) : undefined;
    if (credentials !== undefined && 'registryToken' in credentials) return `Bearer ${credentials.registryToken}`;
    return `Bearer ${await this.token(scheme, mergeScopes(scopes), credentials)}`;
  }

  /**
   * After `origin` answered 401 with `challenge` to a request sent with `sent`: the header to
   * try once more with, or undefined when there is nothing new to try (the caller reports an
   * authentication failure).
   */
  async afterUnauthorized(origin: string, challenge: string | string[] | undefined, scopes: string[], credentials: Credentials | undefined, sent: string | undefined): Promise<string | undefined> {
    const challenges = parseChallenges(challenge);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm !== undefined);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer !== undefined) {
      const scheme: OriginScheme = { scheme: 'bearer', realm: bearer.params.realm! };
      if (bearer.params.service !== undefined) scheme.service = bearer.params.service;
      this.origins.set(origin, scheme);
      if (credentials !== undefined && 'registryToken' in credentials) {
        const header = `Bearer ${credentials.registryToken}`;
        return header === sent ? undefined : header;
      }
      const merged = mergeScopes(scopes, bearer.params.scope !== undefined ? [bearer.params.scope] : []);
      const key = this.key(scheme, merged, credentials);
      const cached = this.tokens.get(key);
      if (cached !== undefined && sent === `Bearer ${cached.token}`) this.tokens.delete(key);
      const header = `Bearer ${await this.token(scheme, merged, credentials)}`;
      // The same token refused again within one request: renewing gave nothing new.
      return header === sent ? undefined : header;
    }
    if (basic !== undefined) {
      this.origins.set(origin, { scheme: 'basic' });
      if (credentials === undefined || !('username' in credentials)) return undefined;
      const header = basicHeader(credentials.username, credentials.password);
      return header === sent ? undefined : header;
    }
    return undefined;
  }

  /** The scheme `origin` asked for, for messages ("needs credentials"). */
  schemeOf(origin: string): 'basic' | 'bearer' | undefined {
    return this.origins.get(origin)?.scheme;
  }

  private key(scheme: { realm: string; service?: string }, scopes: string[], credentials?: Credentials): string {
    // Credentials enter the key only as a hash: two identities never share a token.
    const who = credentials === undefined ? '' : createHash('sha256').update(JSON.stringify(credentials)).digest('hex').slice(0, 16);
    return `${scheme.realm}\n${scheme.service ?? ''}\n${scopes.join(' ')}\n${who}`;
  }

  private token(scheme: { realm: string; service?: string }, scopes: string[], credentials?: Credentials): Promise<string> {
    const key = this.key(scheme, scopes, credentials);
    const cached = this.tokens.get(key);
    if (cached !== undefined && this.now() < cached.renewAt) return Promise.resolve(cached.token);
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const req: TokenRequest = { realm: scheme.realm, scopes };
    if (scheme.service !== undefined) req.service = scheme.service;
    if (credentials !== undefined) req.credentials = credentials;
    const p = this.fetchToken(req).then(
      (grant) => {
        const lifeMs = (grant.expiresInS ?? DEFAULT_TOKEN_LIFETIME_S) * 1000;
        // Renew a little before expiry (a fifth of the lifetime, at most 30 s) so a request in
        // flight does not carry a token that dies on the way.
        this.tokens.set(key, { token: grant.token, renewAt: this.now() + lifeMs - Math.min(30_000, lifeMs / 5) });
        this.inflight.delete(key);
        return grant.token;
      },
      (err: unknown) => {
        this.inflight.delete(key);
        throw err;
      },
    );
    this.inflight.set(key, p);
    return p;
  }
}
