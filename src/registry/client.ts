// The OCI distribution client: manifests (by tag or digest, platform picked from an index),
// blobs whole (verified as they stream) or by Range, existence checks, cross-repository
// mounts, uploads and manifest pushes. It walks the endpoints (mirrors, then the origin),
// authenticates through the Authenticator, retries under the one retry policy
// (retry-policy.ts), holds every call to the time ladder (time-ladder.ts: a total deadline for
// manifests, indexes and tokens, the retry budget for blob ranges, a minimum rate for every
// body), and counts what it did. Logs at debug, without credentials, tokens or queries.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pino, type Logger } from 'pino';
import { InvalidArgumentError } from '../errors.js';
import { Authenticator, httpTokenFetcher, type HttpCall } from './auth.js';
import { BodyCounter, checkDeclared, tooLarge } from './body-limit.js';
import type { Credentials } from './credentials.js';
import { BodyDeadline } from './body-deadline.js';
import { RegistryDigestError, RegistryError, RegistryNotFoundError, dnsFailure, isRetryable, safeUrl, statusError } from './errors.js';
import { retryPolicy, withRetries, type RetryPolicy } from './retry-policy.js';
import { timeLadder, type TimeLadder } from './time-ladder.js';
import { Endpoints, type Capability, type Endpoint } from './mirrors.js';
import { MANIFEST_ACCEPT, defaultPlatform, pickPlatform, type IndexEntry, type Platform } from './platform.js';
import { isIndexMediaType } from './media-types.js';
import { checkDigest, formatReference, makeReference, type ImageReference } from './reference.js';
import { Transport, type Response } from './transport.js';

export type { Platform } from './platform.js';

export interface RegistryOptions {
  /** Credentials for every registry this client talks to (see credentialsFor for per-registry). */
  credentials?: Credentials;
  /** Per registry name; wins over `credentials`. Never given to a mirror. */
  credentialsFor?: (registry: string) => Promise<Credentials | undefined> | Credentials | undefined;
  /** Plain http for non-loopback registries. */
  insecure?: boolean;
  caFile?: string;
  /** Mirror URLs tried before the origin for pulls: for every registry, or per registry name. */
  mirrors?: string[] | Record<string, string[]>;
  /** containerd certs.d directory (default /etc/containerd/certs.d), read when present. */
  hostsDir?: string;
  connectTimeoutMs?: number;
  /** The read timeout every other number derives from (time-ladder.ts), default 30 s. */
  readTimeoutMs?: number;
  /** Numbers of the ladder to override (tests: a short manifest deadline, a body rate). */
  timeouts?: Partial<Omit<TimeLadder, 'readTimeoutMs'>>;
  /** Retry policy fields to override; `retries`/`retryBaseMs` are shorthands for two of them. */
  retry?: Partial<RetryPolicy>;
  /** Attempts after the first (the policy's attempts - 1). */
  retries?: number;
  /** First backoff delay (the policy's baseDelayMs). */
  retryBaseMs?: number;
  /** Called before each retry (the daemon logs it at warn). */
  onRetry?: (what: string, err: unknown, attempt: number, delayMs: number) => void;
  /** How long a failed mirror is left out, default 30 s. */
  mirrorSkipMs?: number;
  log?: Logger;
  userAgent?: string;
  /** Environment for proxy variables (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface Manifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface ResolvedManifest extends Manifest {
  index?: Manifest;
}

export interface RegistryStats {
  requests: number;
  bytesDown: number;
  bytesUp: number;
  tokenFetches: number;
}

interface Op {
  /** For messages: "blob sha256:… of 127.0.0.1:5000/a/b". */
  what: string;
  registry: string;
  repository: string;
  capability: Capability;
  scopes: string[];
  method: string;
  /** Under /v2/<repository>/, or an absolute URL (upload locations). */
  path: string | URL;
  headers?: Record<string, string>;
  body?: () => string | Buffer | Readable | null;
  signal?: AbortSignal;
  /** A mirror's answer counts when this says so; otherwise the next endpoint is tried. */
  mirrorOk?: (status: number) => boolean;
}

const MAX_MANIFEST_BYTES = 8 << 20;
const MAX_TOKEN_BYTES = 1 << 20;

function pullScope(repository: string): string[] {
  return [`repository:${repository}:pull`];
}
function pushScope(repository: string): string[] {
  return [`repository:${repository}:pull,push`];
}
function hashOf(digest: string): string {
  return digest.slice(0, digest.indexOf(':'));
}

export class RegistryClient {
  readonly stats: RegistryStats = { requests: 0, bytesDown: 0, bytesUp: 0, tokenFetches: 0 };
  private readonly transport: Transport;
  private readonly endpoints: Endpoints;
  private readonly auth: Authenticator;
  private readonly log: Logger;
  private readonly policy: RetryPolicy;
  readonly ladder: TimeLadder;
  /** The rate watch of each response body being read. */
  private readonly watches = new WeakMap<object, BodyDeadline>();
  private readonly userAgent: string;

  constructor(private readonly opts: RegistryOptions = {}) {
    this.ladder = timeLadder(opts.readTimeoutMs, opts.timeouts);
    this.policy = retryPolicy(this.ladder, {
      ...(opts.retries !== undefined ? { attempts: opts.retries + 1 } : {}),
      ...(opts.retryBaseMs !== undefined ? { baseDelayMs: opts.retryBaseMs } : {}),
      ...opts.retry,
    });
    const transportOpts: ConstructorParameters<typeof Transport>[0] = {
      connectTimeoutMs: opts.connectTimeoutMs ?? this.ladder.connectTimeoutMs,
      readTimeoutMs: this.ladder.attemptIdleMs,
    };
    if (opts.env !== undefined) transportOpts.env = opts.env;
    this.transport = new Transport(transportOpts);
    const endpointOpts: ConstructorParameters<typeof Endpoints>[0] = {};
    if (opts.mirrors !== undefined) endpointOpts.mirrors = opts.mirrors;
    if (opts.hostsDir !== undefined) endpointOpts.hostsDir = opts.hostsDir;
    if (opts.insecure !== undefined) endpointOpts.insecure = opts.insecure;
    if (opts.caFile !== undefined) endpointOpts.caFile = opts.caFile;
    if (opts.mirrorSkipMs !== undefined) endpointOpts.skipMs = opts.mirrorSkipMs;
    this.endpoints = new Endpoints(endpointOpts);
    this.auth = new Authenticator(httpTokenFetcher(this.tokenHttp));
    this.log = opts.log ?? pino({ level: 'silent' });
    this.userAgent = opts.userAgent ?? 'ondine';
  }

  /** Resolves tag/digest; an index or manifest list is resolved to `platform` (default: this machine). */
  async resolve(ref: ImageReference, opts?: { platform?: Platform; osFeatures?: string[]; signal?: AbortSignal }): Promise<ResolvedManifest> {
    const top = await this.getManifest(ref, opts?.signal);
    if (!isIndexMediaType(top.mediaType)) return top;
    const entries: IndexEntry[] = Array.isArray(top.json?.manifests) ? top.json.manifests : [];
    const picked = pickPlatform(entries, opts?.platform ?? defaultPlatform(), formatReference(ref), opts?.osFeatures ?? []);
    checkDigest(picked.digest);
    // The index entry's size is the descriptor's: a longer body is cut off there and refused.
    const child = await this.getManifest(makeReference(ref.registry, ref.repository, undefined, picked.digest), opts?.signal,
      typeof picked.size === 'number' ? picked.size : undefined);
    if (isIndexMediaType(child.mediaType)) {
      throw new RegistryError('ONDINE_ERR_REGISTRY', `${formatReference(ref)}: the index entry for the platform is itself an index`, { retryable: false });
    }
    return { ...child, index: top };
  }

  /** Raw manifest or index by tag/digest (no platform resolution); digest-verified when asked by digest. */
  /** With `size` (a descriptor's), a body of any other length is refused for good. */
  async getManifest(ref: ImageReference, signal?: AbortSignal, size?: number): Promise<Manifest> {
    const reference = ref.digest ?? ref.tag;
    if (reference === undefined) throw new InvalidArgumentError(`image reference ${formatReference(ref)} has neither tag nor digest`);
    if (ref.digest !== undefined) checkDigest(ref.digest);
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
      throw new RegistryError('ONDINE_ERR_REGISTRY', `manifest ${formatReference(ref)}: its descriptor states no usable size (${size})`, { retryable: false });
    }
    const what = `manifest ${formatReference(ref)}`;
    const op: Op = {
      what,
      registry: ref.registry,
      repository: ref.repository,
      capability: ref.digest !== undefined ? 'pull' : 'resolve',
      scopes: pullScope(ref.repository),
      method: 'GET',
      path: `manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      mirrorOk: (s) => s === 200,
    };
    return this.retrying(op, signal, this.ladder.manifestDeadlineMs, async (op) => {
      const { res, endpoint } = await this.exchange(op);
      if (res.statusCode !== 200) throw await this.statusFailure(op, res);
      const bytes = await this.failingMirror(endpoint, this.readAll(op, res, Math.min(size ?? MAX_MANIFEST_BYTES, MAX_MANIFEST_BYTES)));
      if (size !== undefined && bytes.length !== size) {
        throw new RegistryError('ONDINE_ERR_REGISTRY', `${what}: ${bytes.length} bytes where its descriptor states ${size}`, { retryable: false, status: 200 });
      }
      const algorithm = ref.digest !== undefined ? hashOf(ref.digest) : 'sha256';
      const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
      if (ref.digest !== undefined && digest !== ref.digest) throw new RegistryDigestError(what, ref.digest, digest);
      let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
      try {
        json = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new RegistryError('ONDINE_ERR_REGISTRY', `${what}: not JSON`, { retryable: false, status: 200 });
      }
      const header = res.headers['content-type'];
      const contentType = (Array.isArray(header) ? header[0] : header)?.split(';')[0]?.trim();
      const mediaType = typeof json?.mediaType === 'string' ? json.mediaType : (contentType ?? '');
      return { digest, mediaType, bytes, json };
    });
  }

  /**
   * Whole blob as a stream, verified against the digest as it streams (error at the end on
   * mismatch). With `size` (the descriptor's), a body that goes past it is cut off there and
   * refused for good, and one that says so in its Content-Length is refused unread.
   */
  async blobStream(registry: string, repository: string, digest: string, signal?: AbortSignal, size?: number): Promise<Readable> {
    checkDigest(digest);
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) throw new InvalidArgumentError(`blob ${digest}: size ${size} is not a byte count`);
    const op = this.blobOp(registry, repository, digest, 'GET', signal);
    op.mirrorOk = (s) => s === 200;
    // The deadline holds until the headers: the body then keeps the minimum rate.
    return this.retrying(op, signal, this.ladder.manifestDeadlineMs, async (op) => {
      const { res } = await this.exchange(op);
      if (res.statusCode !== 200) throw await this.statusFailure(op, res);
      if (size !== undefined) {
        try {
          checkDeclared(op.what, res.headers, size, 200);
        } catch (err) {
          this.discard(res);
          throw err;
        }
      }
      return this.verifying(op, res, digest, size);
    });
  }

  /** Exactly [offset, offset+length) of a blob via Range, following redirects with the Range kept; retried. */
  async readRange(registry: string, repository: string, digest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`range ${offset}+${length} of blob ${digest}: offset and length must be non-negative integers`);
    }
    if (length === 0) return Buffer.alloc(0);
    const op = this.blobOp(registry, repository, digest, 'GET', signal);
    op.what = `bytes ${offset}-${offset + length - 1} of ${op.what}`;
    op.headers = { range: `bytes=${offset}-${offset + length - 1}` };
    op.mirrorOk = (s) => s === 206 || s === 200;
    // Every attempt of a range ends within the retry budget, under the front ends' fill timeout.
    return this.retrying(op, signal, this.ladder.retryBudgetMs, async (op) => {
      const { res, endpoint } = await this.exchange(op);
      if (res.statusCode === 206) {
        // Too long a range answer stays retryable: the mirror that sent it is left out next time.
        const buf = await this.failingMirror(endpoint, this.readAll(op, res, length, false));
        if (buf.length !== length) {
          throw new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: short body (${buf.length} of ${length} bytes)`, { retryable: true, status: 206 });
        }
        return buf;
      }
      if (res.statusCode === 200) {
        this.log.warn({ registry, repository, digest, endpoint: endpoint.origin }, 'registry ignored Range and sent the whole blob; slicing it');
        return this.failingMirror(endpoint, this.slice(op, res, offset, length));
      }
      throw await this.statusFailure(op, res);
    });
  }

  /** Size of a blob (HEAD). */
  async blobSize(registry: string, repository: string, digest: string): Promise<number> {
    checkDigest(digest);
    const op = this.blobOp(registry, repository, digest, 'HEAD');
    op.mirrorOk = (s) => s === 200;
    return this.retrying(op, undefined, this.ladder.manifestDeadlineMs, async (op) => {
      const { res } = await this.exchange(op);
      await this.drain(res);
      if (res.statusCode !== 200) throw await this.statusFailure(op, res);
      const size = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(size) || size < 0) throw new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: no Content-Length in the answer to HEAD`, { retryable: false, status: 200 });
      return size;
    });
  }

  /** Whether the registry itself (not a mirror: this is what push decisions rest on) has the blob. */
  async hasBlob(registry: string, repository: string, digest: string): Promise<boolean> {
    return this.hasBlobWith(registry, repository, digest, pullScope(repository));
  }

  /** hasBlob asking for `scopes`: an upload asks for pull,push at once, so one token serves the HEAD and the upload. */
  private async hasBlobWith(registry: string, repository: string, digest: string, scopes: string[]): Promise<boolean> {
    checkDigest(digest);
    const op = this.blobOp(registry, repository, digest, 'HEAD');
    op.capability = 'push';
    op.scopes = scopes;
    return this.retrying(op, undefined, this.ladder.manifestDeadlineMs, async (op) => {
      const { res } = await this.exchange(op);
      await this.drain(res);
      if (res.statusCode === 200) return true;
      if (res.statusCode === 404) return false;
      throw await this.statusFailure(op, res);
    });
  }

  /** Cross-repository mount: true when the registry mounted it (201), false when it wants an upload. */
  async mountBlob(registry: string, repository: string, digest: string, fromRepository: string): Promise<boolean> {
    checkDigest(digest);
    const op: Op = {
      what: `mount of blob ${digest} from ${registry}/${fromRepository} into ${registry}/${repository}`,
      registry,
      repository,
      capability: 'push',
      scopes: [...pushScope(repository), ...pullScope(fromRepository)],
      method: 'POST',
      path: `blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepository)}`,
      headers: { 'content-length': '0' },
    };
    return this.retrying(op, undefined, this.ladder.manifestDeadlineMs, async (op) => {
      const { res, endpoint, url } = await this.exchange(op);
      await this.drain(res);
      if (res.statusCode === 201) return true;
      if (res.statusCode === 202) {
        // An upload session was opened instead: cancel it, the caller uploads on its own.
        const location = this.location(res, url);
        if (location !== undefined) {
          await this.send(endpoint, { ...op, what: `cancel of ${op.what}`, method: 'DELETE', path: location, headers: {} }, location)
            .then((r) => this.drain(r))
            .catch((err: unknown) => this.log.debug({ err: (err as Error).message }, 'cancelling an unused upload failed'));
        }
        return false;
      }
      throw await this.statusFailure(op, res);
    });
  }

  /** Monolithic upload of a file or buffer with a known digest; 0 when the registry already has it, else bytes sent. */
  async uploadBlob(registry: string, repository: string, digest: string, body: { path: string } | { bytes: Buffer }, size: number): Promise<number> {
    checkDigest(digest);
    if ('bytes' in body && body.bytes.length !== size) throw new InvalidArgumentError(`upload of ${digest}: size ${size} but ${body.bytes.length} bytes given`);
    if (await this.hasBlobWith(registry, repository, digest, pushScope(repository))) return 0;
    const what = `upload of blob ${digest} to ${registry}/${repository}`;
    const start: Op = {
      what,
      registry,
      repository,
      capability: 'push',
      scopes: pushScope(repository),
      method: 'POST',
      path: 'blobs/uploads/',
      headers: { 'content-length': '0' },
    };
    // No total: a large layer takes what it takes (each attempt is held to the idle timeout).
    return this.retrying(start, undefined, undefined, async (start) => {
      const { res, endpoint, url } = await this.exchange(start);
      await this.drain(res);
      if (res.statusCode !== 202) throw await this.statusFailure(start, res);
      const location = this.location(res, url);
      if (location === undefined) throw new RegistryError('ONDINE_ERR_REGISTRY', `${what}: no Location in the answer to POST`, { retryable: true, status: 202 });
      location.searchParams.set('digest', digest);
      const put: Op = {
        ...start,
        method: 'PUT',
        path: location,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        // 1 MiB reads: a large blob in 64 KiB pieces costs a pool round trip and a socket write each.
        body: () => ('bytes' in body ? body.bytes : createReadStream(body.path, { highWaterMark: 1 << 20 })),
      };
      const done = await this.send(endpoint, put, location);
      await this.drain(done);
      if (done.statusCode !== 201) throw await this.statusFailure(put, done);
      this.stats.bytesUp += size;
      return size;
    });
  }

  /** Pushes a manifest or index under the reference's tag (or digest); returns its digest. */
  async putManifest(ref: ImageReference, mediaType: string, bytes: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (ref.digest !== undefined && ref.tag === undefined && ref.digest !== digest) {
      throw new InvalidArgumentError(`putManifest ${formatReference(ref)}: the bytes hash to ${digest}`);
    }
    const reference = ref.tag ?? digest;
    const op: Op = {
      what: `manifest push ${formatReference(ref)}`,
      registry: ref.registry,
      repository: ref.repository,
      capability: 'push',
      scopes: pushScope(ref.repository),
      method: 'PUT',
      path: `manifests/${reference}`,
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: () => bytes,
    };
    return this.retrying(op, undefined, this.ladder.manifestDeadlineMs, async (op) => {
      const { res } = await this.exchange(op);
      await this.drain(res);
      if (res.statusCode !== 201 && res.statusCode !== 200) throw await this.statusFailure(op, res);
      this.stats.bytesUp += bytes.length;
      const told = res.headers['docker-content-digest'];
      if (typeof told === 'string' && told !== digest) this.log.warn({ registry: ref.registry, told, digest }, 'registry reported another digest for the manifest pushed');
      return digest;
    });
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  // ---- internals ----

  /** A mirror whose body broke off (reset, truncation) is left out like one that refused to connect. */
  private async failingMirror<T>(endpoint: Endpoint, body: Promise<T>): Promise<T> {
    try {
      return await body;
    } catch (err) {
      if (endpoint.mirror && isRetryable(err)) this.endpoints.markFailed(endpoint);
      throw err;
    }
  }

  private blobOp(registry: string, repository: string, digest: string, method: string, signal?: AbortSignal): Op {
    const op: Op = {
      what: `blob ${digest} of ${registry}/${repository}`,
      registry,
      repository,
      capability: 'pull',
      scopes: pullScope(repository),
      method,
      path: `blobs/${digest}`,
    };
    if (signal !== undefined) op.signal = signal;
    return op;
  }

  private async credentials(registry: string): Promise<Credentials | undefined> {
    if (this.opts.credentialsFor !== undefined) return (await this.opts.credentialsFor(registry)) ?? this.opts.credentials;
    return this.opts.credentials;
  }

  /** The token service call: counted, through the same transport, answer read whole. */
  private readonly tokenHttp: HttpCall = async (url, init) => {
    this.stats.tokenFetches++;
    this.stats.requests++;
    this.log.debug({ method: init.method, url: safeUrl(url) }, 'token request');
    // A token has the manifests' total deadline, whichever call needed it.
    const reqInit: Parameters<Transport['request']>[1] = { method: init.method, headers: { 'user-agent': this.userAgent, ...init.headers }, signal: AbortSignal.timeout(this.ladder.manifestDeadlineMs) };
    if (init.body !== undefined) reqInit.body = init.body;
    if (this.opts.caFile !== undefined && url.protocol === 'https:') reqInit.tls = { ca: [this.opts.caFile] };
    let res: Response;
    try {
      res = await this.transport.request(url, reqInit);
    } catch (err) {
      throw this.networkError(`token service ${safeUrl(url)}`, err);
    }
    const watch = this.watch(res, `token service ${safeUrl(url)}`);
    const chunks: Buffer[] = [];
    const counter = new BodyCounter(MAX_TOKEN_BYTES);
    try {
      checkDeclared(`token service ${safeUrl(url)}`, res.headers, MAX_TOKEN_BYTES, res.statusCode);
      for await (const c of res.body) {
        watch.seen((c as Buffer).length);
        if (!counter.take((c as Buffer).length)) throw tooLarge(`token service ${safeUrl(url)}`, MAX_TOKEN_BYTES, res.statusCode);
        chunks.push(c as Buffer);
      }
    } catch (err) {
      this.discard(res);
      if (err instanceof RegistryError) throw err;
      throw this.networkError(`token service ${safeUrl(url)}`, err);
    }
    this.log.debug({ url: safeUrl(url), status: res.statusCode }, 'token answer');
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
  };

  private url(endpoint: Endpoint, op: Op): URL {
    if (op.path instanceof URL) return op.path;
    const u = new URL(`${endpoint.origin}${endpoint.prefix}/${op.repository}/${op.path}`);
    if (endpoint.mirror) u.searchParams.set('ns', op.registry); // as containerd tells a mirror whose registry it is
    return u;
  }

  /**
   * One attempt across the endpoints: a mirror's answer is taken when `mirrorOk` says so;
   * otherwise (404, auth trouble, 5xx, network) the next endpoint is tried, and a mirror that
   * failed outright is left out for a while. The origin's answer is final.
   */
  private async exchange(op: Op): Promise<{ res: Response; endpoint: Endpoint; url: URL }> {
    const list = await this.endpoints.list(op.registry, op.capability);
    for (const endpoint of list) {
      const url = this.url(endpoint, op);
      if (!endpoint.mirror) return { res: await this.send(endpoint, op, url), endpoint, url };
      try {
        const res = await this.send(endpoint, op, url);
        if (op.mirrorOk?.(res.statusCode) ?? (res.statusCode >= 200 && res.statusCode < 300)) return { res, endpoint, url };
        await this.drain(res);
        if (res.statusCode >= 500 || res.statusCode === 429) this.endpoints.markFailed(endpoint);
        this.log.debug({ mirror: endpoint.origin, status: res.statusCode, what: op.what }, 'mirror did not serve; trying the next endpoint');
      } catch (err) {
        if (op.signal?.aborted) throw err;
        if (!(err instanceof RegistryError && err.code === 'ONDINE_ERR_AUTH')) this.endpoints.markFailed(endpoint);
        this.log.debug({ mirror: endpoint.origin, err: (err as Error).message, what: op.what }, 'mirror failed; trying the next endpoint');
      }
    }
    throw new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: no endpoint to try`, { retryable: false });
  }

  /** One request to one endpoint with authentication: up front when known, else after a challenge; one retry on 401. */
  private async send(endpoint: Endpoint, op: Op, url: URL): Promise<Response> {
    const sameOrigin = url.origin === endpoint.origin;
    const credentials = endpoint.mirror ? undefined : await this.credentials(op.registry);
    const sent = sameOrigin ? await this.auth.authorization(endpoint.origin, op.scopes, credentials) : undefined;
    const res = await this.raw(endpoint, op, url, sent);
    if (res.statusCode !== 401 || !sameOrigin) return res;
    const challenge = res.headers['www-authenticate'];
    await this.drain(res);
    const retry = await this.auth.afterUnauthorized(endpoint.origin, challenge, op.scopes, credentials, sent);
    if (retry === undefined) throw this.authFailure(op, endpoint, credentials);
    const again = await this.raw(endpoint, op, url, retry);
    if (again.statusCode === 401) {
      await this.drain(again);
      throw this.authFailure(op, endpoint, credentials);
    }
    return again;
  }

  private authFailure(op: Op, endpoint: Endpoint, credentials: Credentials | undefined): RegistryError {
    const hint = credentials === undefined ? ' (no credentials given: docker login, or pass credentials)' : ' (credentials refused)';
    return new RegistryError('ONDINE_ERR_AUTH', `${op.what}: ${endpoint.mirror ? 'mirror ' + endpoint.origin : op.registry} answered 401 Unauthorized${hint}`, { retryable: false, status: 401 });
  }

  private async raw(endpoint: Endpoint, op: Op, url: URL, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...endpoint.headers, ...op.headers };
    if (authorization !== undefined) headers.authorization = authorization;
    const init: Parameters<Transport['request']>[1] = { method: op.method, headers, body: op.body?.() ?? null };
    if (op.signal !== undefined) init.signal = op.signal;
    if (endpoint.tls !== undefined) init.tls = endpoint.tls;
    this.stats.requests++;
    try {
      const res = await this.transport.request(url, init);
      this.log.debug({ method: op.method, url: safeUrl(url), status: res.statusCode, mirror: endpoint.mirror || undefined, range: op.headers?.range }, 'registry request');
      this.watch(res, op.what);
      return res;
    } catch (err) {
      if (op.signal?.aborted) throw err;
      this.log.debug({ method: op.method, url: safeUrl(url), err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'registry request failed');
      throw this.networkError(`${op.what} (${endpoint.origin})`, err);
    }
  }

  private networkError(what: string, err: unknown): RegistryError | Error {
    if (err instanceof RegistryError) return err;
    if (err instanceof InvalidArgumentError) return err;
    const e = err as NodeJS.ErrnoException;
    const dns = dnsFailure(err);
    if (dns !== undefined) {
      // Permanent (retry-policy.ts): one attempt, one clear line.
      const host = (e as { hostname?: string })?.hostname;
      return new RegistryError('ONDINE_ERR_REGISTRY', `${what}: cannot resolve ${host ? `host ${host}` : 'the host name'} (${dns})`, { retryable: false, cause: err });
    }
    return new RegistryError('ONDINE_ERR_REGISTRY', `${what}: ${e?.code ?? 'network error'}${e?.message ? ` (${e.message})` : ''}`, { retryable: true, cause: err });
  }

  private async statusFailure(op: Op, res: Response): Promise<Error> {
    const detail = await this.errorDetail(res);
    const suffix = detail !== '' ? ` (${detail})` : '';
    if (res.statusCode === 404) return new RegistryNotFoundError(`${op.what}${suffix}`);
    if (res.statusCode === 403) return new RegistryError('ONDINE_ERR_DENIED', `${op.what}: HTTP 403 Forbidden${suffix}`, { retryable: false, status: 403 });
    if (res.statusCode === 401) return new RegistryError('ONDINE_ERR_AUTH', `${op.what}: HTTP 401 Unauthorized${suffix}`, { retryable: false, status: 401 });
    const err = statusError(`${op.what}${suffix}`, res.statusCode, res.headers['retry-after']);
    return err;
  }

  /** The registry's own error code and message from a JSON error body, short; '' when none. */
  private async errorDetail(res: Response): Promise<string> {
    try {
      const text = await res.body.text();
      const first = JSON.parse(text)?.errors?.[0];
      if (first === undefined) return '';
      return `${String(first.code ?? '')}: ${String(first.message ?? '')}`.slice(0, 200);
    } catch {
      return '';
    }
  }

  /** Drops a body unread (the connection goes with it). */
  private discard(res: Response): void {
    res.body.on('error', () => undefined);
    res.body.destroy();
  }

  private async drain(res: Response): Promise<void> {
    await res.body.dump().catch(() => {});
  }

  private location(res: Response, base: URL): URL | undefined {
    const loc = res.headers.location;
    const value = Array.isArray(loc) ? loc[0] : loc;
    return value === undefined ? undefined : new URL(value, base);
  }

  /** The whole body, at most `limit` bytes (more is refused, for good when `permanent`); read failures are retryable. */
  private async readAll(op: Op, res: Response, limit: number, permanent = true): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const counter = new BodyCounter(limit);
    try {
      checkDeclared(op.what, res.headers, limit, res.statusCode, permanent);
    } catch (err) {
      this.discard(res);
      throw err;
    }
    try {
      const watch = this.watch(res, op.what);
      for await (const chunk of res.body) {
        const c = chunk as Buffer;
        watch.seen(c.length);
        this.stats.bytesDown += c.length;
        if (!counter.take(c.length)) {
          res.body.destroy();
          throw tooLarge(op.what, limit, res.statusCode, undefined, permanent);
        }
        chunks.push(c);
      }
    } catch (err) {
      if (err instanceof RegistryError || op.signal?.aborted) throw err;
      throw this.networkError(`${op.what}: reading the body`, err);
    }
    const total = counter.total;
    const declared = Number(res.headers['content-length']);
    if (Number.isSafeInteger(declared) && declared !== total) {
      throw new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: truncated body (${total} of ${declared} bytes)`, { retryable: true, status: res.statusCode });
    }
    return Buffer.concat(chunks, total);
  }

  /** [offset, offset+length) out of a whole-blob answer; stops reading once it has them. */
  private async slice(op: Op, res: Response, offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let pos = 0;
    let got = 0;
    const end = offset + length;
    try {
      const watch = this.watch(res, op.what);
      for await (const chunk of res.body) {
        const c = chunk as Buffer;
        watch.seen(c.length);
        this.stats.bytesDown += c.length;
        const from = Math.max(offset, pos);
        const to = Math.min(end, pos + c.length);
        if (to > from) {
          c.copy(out, from - offset, from - pos, to - pos);
          got += to - from;
        }
        pos += c.length;
        if (pos >= end) break;
      }
    } catch (err) {
      if (op.signal?.aborted) throw err;
      throw this.networkError(`${op.what}: reading the body`, err);
    } finally {
      res.body.destroy();
    }
    if (got !== length) throw new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: short body (${got} of ${length} bytes)`, { retryable: true, status: 200 });
    return out;
  }

  /** The body through a hashing pass-through: errors at the end when the bytes are short or hash to another digest. */
  private verifying(op: Op, res: Response, digest: string, size?: number): Readable {
    const hash = createHash(hashOf(digest));
    const declared = Number(res.headers['content-length']);
    let total = 0;
    const counter = size !== undefined ? new BodyCounter(size) : undefined;
    const stats = this.stats;
    const body = res.body;
    const watch = this.watch(res, op.what);
    const out = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        watch.seen(chunk.length);
        if (counter !== undefined && !counter.take(chunk.length)) {
          stats.bytesDown += chunk.length;
          cb(tooLarge(op.what, counter.limit, 200));
          body.destroy(); // after: the refusal, not the abort it causes, is the stream's error
          return;
        }
        hash.update(chunk);
        total += chunk.length;
        stats.bytesDown += chunk.length;
        cb(null, chunk);
      },
      flush(cb: TransformCallback) {
        if (Number.isSafeInteger(declared) && declared !== total) {
          cb(new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: truncated body (${total} of ${declared} bytes)`, { retryable: true, status: 200 }));
          return;
        }
        if (size !== undefined && total !== size) {
          cb(new RegistryError('ONDINE_ERR_REGISTRY', `${op.what}: short body (${total} of the ${size} bytes its descriptor states)`, { retryable: true, status: 200 }));
          return;
        }
        const actual = `${hashOf(digest)}:${hash.digest('hex')}`;
        cb(actual === digest ? null : new RegistryDigestError(op.what, digest, actual));
      },
    });
    body.on('error', (err: Error) => {
      if (!out.destroyed) out.destroy(op.signal?.aborted ? err : this.networkError(`${op.what}: reading the body`, err));
    });
    out.on('close', () => {
      if (!body.destroyed) body.destroy();
    });
    body.pipe(out);
    return out;
  }

  /** The body's rate watch (made when its headers arrived): consumers report what they read. */
  private watch(res: Response, what: string): BodyDeadline {
    let w = this.watches.get(res.body);
    if (w === undefined) {
      w = new BodyDeadline(res.body, { minBytesPerSec: this.ladder.bodyMinBytesPerSec, windowMs: this.ladder.bodyRateWindowMs }, what);
      this.watches.set(res.body, w);
    }
    return w;
  }

  /**
   * `fn` under the one retry loop, with `op` carrying each attempt's signal (the caller's,
   * plus the hard deadline `deadlineMs` when given).
   */
  private retrying<T>(op: Op, signal: AbortSignal | undefined, deadlineMs: number | undefined, fn: (op: Op) => Promise<T>): Promise<T> {
    return withRetries(this.policy, {
      what: op.what,
      ...(signal !== undefined ? { signal } : {}),
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      onRetry: (err, attempt, delayMs) => {
        this.log.debug({ what: op.what, attempt, delayMs, err: (err as Error).message }, 'retrying');
        this.opts.onRetry?.(op.what, err, attempt, delayMs);
      },
    }, (attemptSignal) => {
      const o: Op = { ...op };
      if (attemptSignal !== undefined) o.signal = attemptSignal;
      return fn(o);
    });
  }
}

/** Convenience for callers holding a Readable factory: bytes of a Buffer body as a stream. */
export function bufferStream(bytes: Buffer): Readable {
  return Readable.from([bytes]);
}
