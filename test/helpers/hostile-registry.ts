// A fault-injecting registry front end for the hostile-registry tier: an HTTP or HTTPS server
// in front of a real docker-registry (or of nothing: a "foreign" origin) that passes requests
// through unless a rule for the request's method and path says how to lie. Rules replace a
// body (manifests, indexes, crafted bootstrap layers, a stream of any length), mutate the
// upstream body (corrupt, truncate, append, random, longer than asked), drop Range, redirect,
// answer a status, or misbehave on the wire (hang before headers, hang after them, drip a byte
// every n ms, reset, slowloris headers). Every request is logged with its headers, so a test
// can tell which origin saw which credential. The simpler one-fault proxies stay in
// registry-env.ts and fault-proxy.ts; this one is for the scenarios no well-behaved server has.
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';

export interface SeenRequest {
  server: string;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The rule that answered, or 'pass'. */
  act: string;
  at: number;
}

/** Bytes to serve: fixed, or made on demand (a stream of any length that never sits in memory). */
export type Body = Buffer | { length: number; stream: () => Readable };

export type Act =
  | { kind: 'pass' }
  /** Answer with these bytes (Range honoured when `range` is set, as a registry would). */
  | { kind: 'serve'; body: Body; status?: number; headers?: Record<string, string>; range?: boolean }
  /** Fetch the upstream answer whole, then transform it (content-length follows the new body unless `length` says what to claim). */
  | { kind: 'mutate'; fn: (body: Buffer, req: IncomingMessage) => Buffer; length?: (body: Buffer) => number; name?: string }
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'redirect'; to: (req: IncomingMessage) => string; status?: number }
  /** Upstream asked without its Range header: the whole blob comes back, 200. */
  | { kind: 'ignoreRange' }
  /** Accept the request and never answer. */
  | { kind: 'hangHeaders' }
  /** Send the upstream's headers, then nothing. */
  | { kind: 'hangBody' }
  /** Send the upstream's headers, then its body one byte every `everyMs`. */
  | { kind: 'drip'; everyMs: number }
  /** Send the status line and headers one byte every `everyMs` (slowloris, answering side). */
  | { kind: 'slowHeaders'; everyMs: number }
  /** Reset the connection before any answer. */
  | { kind: 'reset' };

interface Rule {
  method?: string;
  path: RegExp;
  act: Act;
  left: number;
  hits: number;
}

export interface HostileOptions {
  /** Name in the request log ("registry", "foreign", "mirror", ...). */
  name: string;
  /** Real registry to pass through to; without it, unmatched requests get 404. */
  upstream?: string;
  /** Serve HTTPS with this certificate and key (see makeCa). */
  tls?: { cert: string; key: string };
}

export interface TestCa {
  /** PEM of the CA to trust (--ca-file). */
  caFile: string;
  /** A server certificate for 127.0.0.1 signed by the CA, and its key. */
  cert: string;
  key: string;
}

/** A self-signed CA and a server certificate for 127.0.0.1 it signed, made with openssl in `dir`. */
export function makeCa(dir: string): TestCa {
  const f = (n: string) => join(dir, n);
  const ossl = (args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=ondine-hostile-test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('srv-key.pem'), '-out', f('srv.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(f('srv.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  ossl(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-out', f('srv.pem'), '-days', '2', '-extfile', f('srv.ext')]);
  return { caFile: f('ca.pem'), cert: readFileSync(f('srv.pem'), 'utf8'), key: readFileSync(f('srv-key.pem'), 'utf8') };
}

export const sha256Digest = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** `length` zero bytes, streamed in 1 MiB pieces. */
export function zeros(length: number): Body {
  const piece = Buffer.alloc(1 << 20);
  return {
    length,
    stream: () => {
      let left = length;
      return new Readable({
        read() {
          if (left <= 0) return void this.push(null);
          const n = Math.min(left, piece.length);
          left -= n;
          this.push(piece.subarray(0, n));
        },
      });
    },
  };
}

const bodyLength = (b: Body): number => (Buffer.isBuffer(b) ? b.length : b.length);

export class HostileServer {
  readonly log: SeenRequest[] = [];
  private readonly rules: Rule[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(private readonly server: Server, readonly name: string, readonly url: string, private readonly upstream: URL | undefined) {}

  get host(): string {
    return new URL(this.url).host;
  }

  static async start(opts: HostileOptions): Promise<HostileServer> {
    let self: HostileServer | undefined;
    const handler = (req: IncomingMessage, res: ServerResponse) => self!.handle(req, res);
    const server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : createHttpServer(handler);
    server.on('connection', (s: Socket) => {
      self?.sockets.add(s);
      s.once('close', () => self?.sockets.delete(s));
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    self = new HostileServer(server, opts.name, `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`, opts.upstream ? new URL(opts.upstream) : undefined);
    return self;
  }

  /** Answers requests whose path matches (and method, default GET and HEAD) with `act`, `times` times (default always). Later rules are tried first. */
  on(path: RegExp, act: Act, opts: { method?: string; times?: number } = {}): this {
    const rule: Rule = { path, act, left: opts.times ?? Infinity, hits: 0 };
    if (opts.method !== undefined) rule.method = opts.method;
    this.rules.unshift(rule);
    return this;
  }

  /** Serves `body` as the blob `digest` of `repository` (GET with Range, and HEAD). */
  blob(repository: string, digest: string, body: Body): this {
    return this.on(new RegExp(`^/v2/${escape(repository)}/blobs/${escape(digest)}$`), { kind: 'serve', body, range: true, headers: { 'content-type': 'application/octet-stream', 'docker-content-digest': digest } });
  }

  /** Serves `manifest` (an object or raw bytes) as `repository:reference` with this media type, its Docker-Content-Digest the bytes' own unless `digestHeader` says otherwise. */
  manifest(repository: string, reference: string, manifest: unknown, mediaType: string, digestHeader?: string): this {
    const body = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    return this.on(new RegExp(`^/v2/${escape(repository)}/manifests/${escape(reference)}$`), { kind: 'serve', body, headers: { 'content-type': mediaType, 'docker-content-digest': digestHeader ?? sha256Digest(body) } });
  }

  /** Requests that matched no pass-through, i.e. were answered by a rule, by path pattern. */
  hits(path: RegExp): number {
    return this.log.filter((e) => path.test(e.path) && e.act !== 'pass').length;
  }

  requests(path?: RegExp, method?: string): SeenRequest[] {
    return this.log.filter((e) => (path === undefined || path.test(e.path)) && (method === undefined || e.method === method));
  }

  /** Every Authorization (and Cookie) header value this server received. */
  credentialsSeen(): string[] {
    return this.log.flatMap((e) => [e.headers.authorization, e.headers.cookie, e.headers['proxy-authorization']].filter((v): v is string => typeof v === 'string'));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections?.();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private pick(req: IncomingMessage): Act {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    for (const r of this.rules) {
      if (r.left <= 0 || !r.path.test(path)) continue;
      if (r.method !== undefined ? r.method !== method : method !== 'GET' && method !== 'HEAD') continue;
      r.left--;
      r.hits++;
      return r.act;
    }
    return { kind: 'pass' };
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const act = this.pick(req);
    this.log.push({ server: this.name, method: req.method ?? '', path: (req.url ?? '/').split('?')[0]!, headers: { ...req.headers }, act: act.kind === 'mutate' ? (act.name ?? 'mutate') : act.kind, at: Date.now() });
    req.socket.on('error', () => undefined);
    switch (act.kind) {
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'hangHeaders':
        req.resume();
        return;
      case 'status':
        req.resume();
        res.writeHead(act.status, { 'content-type': 'application/json', ...(act.headers ?? {}) }).end(act.body ?? '{"errors":[{"code":"UNKNOWN","message":"hostile"}]}');
        return;
      case 'redirect':
        req.resume();
        res.writeHead(act.status ?? 307, { location: act.to(req) }).end();
        return;
      case 'serve':
        req.resume();
        this.serve(req, res, act);
        return;
      case 'slowHeaders':
        req.resume();
        this.slowHeaders(req, act.everyMs);
        return;
      default:
        this.forward(req, res, act);
    }
  }

  private serve(req: IncomingMessage, res: ServerResponse, act: Extract<Act, { kind: 'serve' }>): void {
    const total = bodyLength(act.body);
    let start = 0;
    let end = total; // exclusive
    let status = act.status ?? 200;
    const headers: Record<string, string> = { ...(act.headers ?? {}) };
    const m = act.range && typeof req.headers.range === 'string' ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range) : null;
    if (m) {
      start = Math.min(Number(m[1]), total);
      end = m[2] === '' ? total : Math.min(Number(m[2]) + 1, total);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end - 1}/${total}`;
    }
    headers['content-length'] = String(end - start);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const body = act.body;
    if (Buffer.isBuffer(body)) return void res.end(body.subarray(start, end));
    // A range of a generated body: only zeros are generated, so any slice is zeros too.
    const s = start !== 0 || end !== total ? (zeros(end - start) as { stream: () => Readable }).stream() : body.stream();
    s.on('error', () => res.destroy());
    res.on('close', () => s.destroy());
    s.pipe(res);
  }

  private slowHeaders(req: IncomingMessage, everyMs: number): void {
    const text = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
    let i = 0;
    const t = setInterval(() => {
      if (i >= text.length || req.socket.destroyed) return void clearInterval(t);
      req.socket.write(text.subarray(i, ++i));
    }, everyMs);
    this.timers.add(t);
    req.socket.once('close', () => {
      clearInterval(t);
      this.timers.delete(t);
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse, act: Act): void {
    if (this.upstream === undefined) {
      req.resume();
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"nothing here"}]}');
      return;
    }
    const up = this.upstream;
    const headers: IncomingHttpHeaders = { ...req.headers, host: up.host };
    if (act.kind === 'ignoreRange') delete headers.range;
    const send = up.protocol === 'https:' ? httpsRequest : httpRequest;
    const upReq = send({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent: false, rejectUnauthorized: false }, (upRes) => {
      const status = upRes.statusCode ?? 502;
      const h = { ...upRes.headers };
      // The registry's own Location headers name itself: point them back at this front end.
      if (typeof h.location === 'string' && h.location.startsWith(`${up.protocol}//${up.host}`)) h.location = this.url + h.location.slice(`${up.protocol}//${up.host}`.length);
      if (act.kind === 'pass' || act.kind === 'ignoreRange' || status >= 300) {
        res.writeHead(status, h);
        upRes.pipe(res);
        return;
      }
      if (act.kind === 'hangBody') {
        res.writeHead(status, h);
        res.flushHeaders();
        upRes.resume();
        return;
      }
      const parts: Buffer[] = [];
      upRes.on('data', (c: Buffer) => parts.push(c));
      upRes.on('end', () => {
        const body = Buffer.concat(parts);
        if (act.kind === 'drip') {
          res.writeHead(status, h);
          res.flushHeaders();
          let i = 0;
          const t = setInterval(() => {
            if (i >= body.length || res.destroyed) {
              clearInterval(t);
              if (!res.destroyed) res.end();
              return;
            }
            res.write(body.subarray(i, ++i));
          }, act.everyMs);
          this.timers.add(t);
          res.once('close', () => clearInterval(t));
          return;
        }
        if (act.kind === 'mutate') {
          const out = act.fn(body, req);
          const claimed = act.length ? act.length(out) : out.length;
          delete h['content-length'];
          delete h['transfer-encoding'];
          h['content-length'] = String(claimed);
          if (typeof h['content-range'] === 'string' && act.length === undefined && out.length !== body.length) {
            const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h['content-range']);
            if (m) h['content-range'] = `bytes ${m[1]}-${Number(m[1]) + out.length - 1}/${m[3]}`;
          }
          res.writeHead(status, h);
          if (claimed > out.length) {
            // Claims more than it sends: send what there is, then close (a truncation).
            res.write(out, () => req.socket.end());
            return;
          }
          res.end(out.subarray(0, claimed));
        }
      });
    });
    upReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upReq);
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---- body transforms for `mutate` ----

/** One byte flipped in the middle. */
export const corrupt = (b: Buffer): Buffer => {
  const out = Buffer.from(b);
  if (out.length > 0) out[out.length >> 1]! ^= 0x5a;
  return out;
};
/** As many random bytes. */
export const random = (b: Buffer): Buffer => randomBytes(b.length);
/** `extra` bytes more than asked, as if the range were longer. */
export const longer = (extra: number) => (b: Buffer): Buffer => Buffer.concat([b, randomBytes(extra)]);
/** The bytes with `tail` appended after them (trailing garbage after a gzip member). */
export const appended = (tail: Buffer) => (b: Buffer): Buffer => Buffer.concat([b, tail]);
