// Real registries for tests: Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1 with
// filesystem storage in a temp dir, anonymous, htpasswd basic auth, or token auth behind a
// small token issuer written here (ES256 JWTs with the signing certificate in x5c, which the
// registry checks against its rootcertbundle). Its access log (Apache combined format: method,
// path, status, bytes; no Range) is parsed for request counts. Seeding uses plain node:http,
// not the client under test. Everything is stopped and removed by stop(), and at exit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface AccessEntry {
  method: string;
  path: string;
  status: number;
  bytes: number;
  user?: string;
  userAgent: string;
}

export interface TokenIssuer {
  url: string;
  /** Tokens handed out so far. */
  issued(): number;
  /** Requests refused (bad credentials). */
  refused(): number;
  /** The next `n` tokens are already dead at the registry (exp an hour ago) while expires_in claims the usual lifetime. */
  expireNext(n: number): void;
  /** A token the registry accepts, minted without counting (for seeding). */
  mint(user: string, scopes: string[]): string;
  stop(): Promise<void>;
}

export interface RegistryServer {
  url: string;
  host: string;
  port: number;
  dataDir: string;
  logFile: string;
  /** The certificate to trust when started with `tls`. */
  caFile?: string;
  stop(): Promise<void>;
  /** Stops the process, keeping its port reserved in config and its data; restart() brings it back. */
  pause(): Promise<void>;
  /** Stops (if running) and starts again on the same port with the same data. */
  restart(): Promise<void>;
  /** Parsed access log lines, oldest first. */
  requests(): Promise<AccessEntry[]>;
  /**
   * The entries after the first `before`, once at least `atLeast` of them are there or 5 s have
   * passed: the registry writes an entry only after it has answered, so a log read at once can
   * lag the client by one request.
   */
  requestsSince(before: number, atLeast: number): Promise<AccessEntry[]>;
  /** Authorization header that seeding helpers should send (basic/token registries), or undefined. */
  seedAuth(repository: string): string | undefined;
}

export interface StartOptions {
  auth?: 'none' | 'basic' | 'token';
  users?: Record<string, string>;
  tokenTtlS?: number;
  /** Identity (refresh) tokens the issuer accepts, each for a user. */
  identityTokens?: Record<string, string>;
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1 (its file is `caFile`). */
  tls?: boolean;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/** A port that was free a moment ago (bind 0, read it, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

const ACCESS_LINE = /^(\S+) \S+ (\S+) \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"$/;

export function parseAccessLog(text: string): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const line of text.split('\n')) {
    const m = ACCESS_LINE.exec(line);
    if (m === null) continue;
    const e: AccessEntry = { method: m[3]!, path: m[4]!, status: Number(m[5]), bytes: m[6] === '-' ? 0 : Number(m[6]), userAgent: m[7]! };
    if (m[2] !== '-') e.user = m[2]!;
    out.push(e);
  }
  return out;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export const TOKEN_SERVICE = 'ondine-test-registry';
const TOKEN_ISSUER = 'ondine-test-issuer';

async function startTokenIssuer(dir: string, opts: StartOptions): Promise<TokenIssuer & { certFile: string }> {
  const keyFile = join(dir, 'token-key.pem');
  const certFile = join(dir, 'token-cert.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=ondine-test-token-issuer'], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`openssl failed: ${gen.stderr}`);
  const key: KeyObject = createPrivateKey(readFileSync(keyFile));
  const certDer = readFileSync(certFile, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const users = opts.users ?? {};
  const identityTokens = opts.identityTokens ?? {};
  const ttl = opts.tokenTtlS ?? 300;
  let issued = 0;
  let refused = 0;
  let deadNext = 0;

  const mint = (user: string, scopes: string[], dead = false): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((s) => s.split(' ')).filter((s) => s !== '').map((s) => {
      const first = s.indexOf(':');
      const last = s.lastIndexOf(':');
      return { type: s.slice(0, first), name: s.slice(first + 1, last), actions: user === '' ? [] : s.slice(last + 1).split(',') };
    });
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDer] };
    const claims = { iss: TOKEN_ISSUER, sub: user, aud: TOKEN_SERVICE, exp: dead ? now - 3600 : now + ttl, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(signing), { key, dsaEncoding: 'ieee-p1363' });
    return `${signing}.${b64url(sig)}`;
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      let s = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (s += d));
      req.on('end', () => resolve(s));
      req.on('error', reject);
    });

  const server: Server = createHttpServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const deny = () => {
      refused++;
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
    };
    let user = '';
    let scopes: string[] = [];
    if (req.method === 'GET') {
      scopes = url.searchParams.getAll('scope');
      const auth = req.headers.authorization;
      if (auth !== undefined) {
        const m = /^Basic (.+)$/.exec(auth);
        const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
        const colon = decoded.indexOf(':');
        const name = decoded.slice(0, colon);
        if (colon <= 0 || users[name] === undefined || users[name] !== decoded.slice(colon + 1)) return deny();
        user = name;
      }
    } else if (req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      scopes = (form.get('scope') ?? '').split(' ');
      if (form.get('grant_type') === 'refresh_token') {
        const who = identityTokens[form.get('refresh_token') ?? ''];
        if (who === undefined) return deny();
        user = who;
      } else if (form.get('grant_type') === 'password') {
        const name = form.get('username') ?? '';
        if (users[name] === undefined || users[name] !== form.get('password')) return deny();
        user = name;
      } else return deny();
    } else {
      res.writeHead(405).end();
      return;
    }
    if (url.searchParams.get('service') !== null && url.searchParams.get('service') !== TOKEN_SERVICE && req.method === 'GET') {
      res.writeHead(400).end('wrong service');
      return;
    }
    issued++;
    const dead = deadNext > 0;
    if (dead) deadNext--;
    const token = mint(user, scopes, dead);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    certFile,
    issued: () => issued,
    refused: () => refused,
    expireNext: (n: number) => {
      deadNext = n;
    },
    mint: (u: string, s: string[]) => mint(u, s),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Starts a docker-registry; the caller must `stop()` it (use t.after). */
export async function startRegistry(opts: StartOptions = {}): Promise<RegistryServer & { tokenIssuer?: TokenIssuer }> {
  const auth = opts.auth ?? 'none';
  const dir = mkdtempSync('/var/tmp/ondine-registry-');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'registry.log');
  const configFile = join(dir, 'config.yml');
  let issuer: (TokenIssuer & { certFile: string }) | undefined;
  let child: ChildProcess | undefined;
  let port = 0;
  const users = opts.users ?? { ondine: 'test-password' };

  let spawnLogged: () => ChildProcess = () => {
    throw new Error('not configured');
  };
  let listening: (c: ChildProcess) => Promise<boolean> = async () => false;
  const cleanupOnFailure = async () => {
    if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    await issuer?.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    let authYaml = '';
    if (auth === 'basic') {
      const lines = Object.entries(users).map(([u, p]) => {
        const r = spawnSync('htpasswd', ['-Bbn', u, p], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
        return r.stdout.trim();
      });
      writeFileSync(join(dir, 'htpasswd'), lines.join('\n') + '\n');
      authYaml = `auth:\n  htpasswd:\n    realm: ondine-test\n    path: ${join(dir, 'htpasswd')}\n`;
    } else if (auth === 'token') {
      issuer = await startTokenIssuer(dir, { ...opts, users });
      authYaml = `auth:\n  token:\n    realm: ${issuer.url}\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${issuer.certFile}\n`;
    }
    let tlsYaml = '';
    if (opts.tls === true) {
      const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'tls-key.pem'), '-out', join(dir, 'tls-cert.pem'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
      tlsYaml = `  tls:\n    certificate: ${join(dir, 'tls-cert.pem')}\n    key: ${join(dir, 'tls-key.pem')}\n`;
    }
    const writeConfig = () =>
      writeFileSync(
        configFile,
        `version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${dataDir}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: ondine-test-secret\n${tlsYaml}${authYaml}`,
      );

    const launch = async (): Promise<boolean> => {
      const c = spawnLogged();
      for (let i = 0; i < 500; i++) {
        if (c.exitCode !== null || c.signalCode !== null) return false;
        if (await listening(c)) return true;
        await sleep(20);
      }
      c.kill('SIGKILL');
      throw new Error(`docker-registry did not start listening on 127.0.0.1:${port}; log: ${logFile}`);
    };

    // Ours, not another process that took the port: the registry says it listens, and it does.
    let logStart = 0;
    spawnLogged = () => {
      logStart = existsSync(logFile) ? statSync(logFile).size : 0;
      const fd = openSync(logFile, 'a');
      const c = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      track(c);
      child = c;
      return c;
    };
    listening = async (c: ChildProcess) => {
      if (c.exitCode !== null) return false;
      const text = readFileSync(logFile).subarray(logStart).toString('utf8');
      return text.includes(`listening on 127.0.0.1:${port}`) && (await canConnect(port));
    };
    let started = false;
    for (let tries = 0; tries < 5 && !started; tries++) {
      port = await freePort();
      writeConfig();
      started = await launch(); // false: lost the port to someone else; pick another
    }
    if (!started) throw new Error(`docker-registry would not start; log:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  } catch (err) {
    await cleanupOnFailure();
    throw err;
  }

  const stopChild = async () => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  const host = `127.0.0.1:${port}`;
  let stopped = false;
  const server: RegistryServer & { tokenIssuer?: TokenIssuer } = {
    url: `${opts.tls === true ? 'https' : 'http'}://${host}`,
    host,
    port,
    dataDir,
    logFile,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild();
      await issuer?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async pause() {
      await stopChild();
    },
    async restart() {
      await stopChild();
      const c = spawnLogged();
      for (let i = 0; i < 500; i++) {
        if (c.exitCode !== null) throw new Error(`docker-registry did not restart on ${host}`);
        if (await listening(c)) return;
        await sleep(20);
      }
      throw new Error(`docker-registry did not restart on ${host}`);
    },
    async requests() {
      return parseAccessLog(readFileSync(logFile, 'utf8'));
    },
    async requestsSince(before: number, atLeast: number) {
      const until = Date.now() + 5_000;
      for (;;) {
        const log = parseAccessLog(readFileSync(logFile, 'utf8')).slice(before);
        if (log.length >= atLeast || Date.now() > until) return log;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    seedAuth(repository: string) {
      const [user, password] = Object.entries(users)[0] ?? ['', ''];
      if (auth === 'basic') return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      if (auth === 'token') return `Bearer ${issuer!.mint(user, [`repository:${repository}:pull,push`])}`;
      return undefined;
    },
  };
  if (issuer !== undefined) server.tokenIssuer = issuer;
  if (opts.tls === true) server.caFile = join(dir, 'tls-cert.pem');
  return server;
}

// ---- seeding, over plain node:http (independent of the client under test) ----

export interface HttpAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export function httpCall(url: string, method: string, headers: Record<string, string> = {}, body?: Buffer): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const options = { method, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(body.length) } : {}) }, agent: false as const, rejectUnauthorized: false };
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Pushes `bytes` as a blob of `repository` (POST + monolithic PUT); returns its digest. */
export async function pushTestBlob(server: Pick<RegistryServer, 'url' | 'seedAuth'>, repository: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const auth = server.seedAuth(repository);
  const headers: Record<string, string> = auth !== undefined ? { authorization: auth } : {};
  const start = await httpCall(`${server.url}/v2/${repository}/blobs/uploads/`, 'POST', headers, Buffer.alloc(0));
  if (start.status !== 202) throw new Error(`seeding ${repository}: POST answered ${start.status}`);
  const location = new URL(String(start.headers.location), server.url);
  location.searchParams.set('digest', digest);
  const put = await httpCall(location.toString(), 'PUT', { ...headers, 'content-type': 'application/octet-stream' }, bytes);
  if (put.status !== 201) throw new Error(`seeding ${repository}: PUT answered ${put.status}`);
  return digest;
}

export interface TestImage {
  manifestDigest: string;
  manifest: Buffer;
  configDigest: string;
  layerDigests: string[];
}

/** An OCI image (config + layers of the given bytes) tagged `tag`; returns the digests. */
export async function pushTestImage(server: Pick<RegistryServer, 'url' | 'seedAuth'>, repository: string, tag: string, layers: Buffer[], platform = { os: 'linux', architecture: 'amd64' }): Promise<TestImage> {
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: layers.map(sha256) }, config: {} }));
  const configDigest = await pushTestBlob(server, repository, config);
  const layerDigests: string[] = [];
  for (const l of layers) layerDigests.push(await pushTestBlob(server, repository, l));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigests[i], size: l.length })),
    }),
  );
  await putTestManifest(server, repository, tag, 'application/vnd.oci.image.manifest.v1+json', manifest);
  return { manifestDigest: sha256(manifest), manifest, configDigest, layerDigests };
}

export async function putTestManifest(server: Pick<RegistryServer, 'url' | 'seedAuth'>, repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
  const auth = server.seedAuth(repository);
  const headers: Record<string, string> = { 'content-type': mediaType, ...(auth !== undefined ? { authorization: auth } : {}) };
  const put = await httpCall(`${server.url}/v2/${repository}/manifests/${reference}`, 'PUT', headers, bytes);
  if (put.status !== 201) throw new Error(`seeding manifest ${repository}:${reference}: PUT answered ${put.status}: ${put.body.toString()}`);
  return sha256(bytes);
}

// ---- misbehaving front ends for fault tests ----

export type Fault = 'reset' | 'truncate' | 'corrupt' | 'status503' | 'status429' | 'hang' | 'drip';

export interface FaultProxy {
  url: string;
  host: string;
  /** Requests seen, in order (method, path, Range header). */
  seen(): { method: string; path: string; range?: string; authorization: boolean }[];
  /** Misbehave on the next `count` requests whose path matches (default: blob GETs). */
  fail(fault: Fault, count: number, match?: RegExp): void;
  /** Answers hanging or dripping now (the client has not closed them yet). */
  open(): number;
  stop(): Promise<void>;
}

/**
 * An HTTP proxy in front of `targetUrl` that passes requests through (headers and body as they
 * are), except for the next N matching ones: it resets the connection, sends half the body and
 * closes, flips a byte, answers 503/429 (Retry-After: 0), never answers, or sends the headers
 * and then the body one byte every `dripMs` (default 2 s: a registry that drips).
 */
export async function startFaultProxy(targetUrl: string, opts: { dripMs?: number } = {}): Promise<FaultProxy> {
  const dripMs = opts.dripMs ?? 2_000;
  const dripping = new Set<import('node:http').ServerResponse>();
  const target = new URL(targetUrl);
  const seen: { method: string; path: string; range?: string; authorization: boolean }[] = [];
  let fault: Fault | undefined;
  let left = 0;
  let match = /\/blobs\/sha256:/;
  const hanging = new Set<import('node:http').ServerResponse>();
  const server = createHttpServer((req, res) => {
    const entry: { method: string; path: string; range?: string; authorization: boolean } = { method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization !== undefined };
    if (typeof req.headers.range === 'string') entry.range = req.headers.range;
    seen.push(entry);
    let active: Fault | undefined;
    if (left > 0 && match.test(req.url ?? '') && req.method === 'GET') {
      left--;
      active = fault;
    }
    if (active === 'reset') {
      req.socket.destroy();
      return;
    }
    if (active === 'status503' || active === 'status429') {
      res.writeHead(active === 'status503' ? 503 : 429, { 'retry-after': '0', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
      return;
    }
    if (active === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    const headers = { ...req.headers, host: target.host };
    const up = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers, agent: false }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (active === 'drip') {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const body = Buffer.concat(chunks);
          let at = 0;
          dripping.add(res);
          const timer = setInterval(() => {
            if (at < body.length) res.write(body.subarray(at, ++at));
            if (at >= body.length) res.end();
          }, dripMs);
          res.on('close', () => {
            clearInterval(timer);
            dripping.delete(res);
          });
        });
      } else if (active === 'truncate' || active === 'corrupt') {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const body = Buffer.concat(chunks);
          if (active === 'truncate') {
            res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
          } else {
            if (body.length > 0) body[body.length >> 1]! ^= 0x01;
            res.end(body);
          }
        });
      } else upRes.pipe(res);
    });
    up.on('error', () => req.socket.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    seen: () => seen.slice(),
    fail(f: Fault, count: number, m?: RegExp) {
      fault = f;
      left = count;
      if (m !== undefined) match = m;
    },
    open: () => hanging.size + dripping.size,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const r of [...hanging, ...dripping]) r.socket?.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A TCP port that accepts connections and resets them at once, counting them: a dead mirror. */
export async function startDeadEndpoint(): Promise<{ host: string; url: string; connections(): number; stop(): Promise<void> }> {
  let n = 0;
  const server = createNetServer((sock) => {
    n++;
    sock.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    connections: () => n,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A forward proxy that only tunnels (CONNECT), counting tunnels per target: what undici's proxy agents speak. */
export async function startConnectProxy(): Promise<{ url: string; tunnels(): string[]; stop(): Promise<void> }> {
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    tunnels.push(String(req.url));
    const [h, p] = String(req.url).split(':');
    const upstream = connect({ host: h, port: Number(p) }, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(client);
    sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', done);
    client.on('error', done);
    upstream.on('close', done);
    client.on('close', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels: () => tunnels.slice(),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
