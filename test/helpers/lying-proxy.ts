// An HTTP proxy in front of a real docker-registry that lies about sizes: for a path it can
// stream `extra` bytes after the registry's own body (no Content-Length, so the client cannot
// tell in advance), or answer with a body of its own of any size, generated as it is sent
// (with or without a Content-Length). It counts requests by path and the bytes it sent, and
// stops sending when the client goes away. Everything else passes through unchanged.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Lie =
  | { kind: 'append'; extra: number; byte?: number }
  | { kind: 'replace'; size: number; contentType?: string; declare?: boolean; byte?: number };

const CHUNK = 1 << 20;

export class LyingProxy {
  private readonly lies: Array<{ match: RegExp; lie: Lie }> = [];
  /** Requests seen, by path (query left off). */
  readonly requests = new Map<string, number>();
  /** Body bytes written to clients for lied-about answers. */
  liedBytes = 0;

  private constructor(private readonly server: Server, readonly port: number, private readonly upstream: URL) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(upstream: string): Promise<LyingProxy> {
    let self: LyingProxy | undefined;
    const server = createServer((req, res) => self!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = new LyingProxy(server, (server.address() as AddressInfo).port, new URL(upstream));
    return self;
  }

  lie(match: RegExp, lie: Lie): void {
    this.lies.push({ match, lie });
  }

  clear(): void {
    this.lies.length = 0;
    this.requests.clear();
    this.liedBytes = 0;
  }

  count(match: RegExp): number {
    let n = 0;
    for (const [path, c] of this.requests) if (match.test(path)) n += c;
    return n;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0]!;
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    const lie = req.method === 'GET' ? this.lies.find((l) => l.match.test(path))?.lie : undefined;
    if (lie?.kind === 'replace') {
      const headers: Record<string, string> = { 'content-type': lie.contentType ?? 'application/octet-stream' };
      if (lie.declare) headers['content-length'] = String(lie.size);
      res.writeHead(200, headers);
      this.stream(res, lie.size, lie.byte ?? 0x20);
      return;
    }
    const headers = { ...req.headers, host: this.upstream.host };
    const up = request({ host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers, agent: false }, (ures) => {
      if (lie?.kind !== 'append' || (ures.statusCode ?? 0) !== 200) {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
        return;
      }
      const h = { ...ures.headers };
      delete h['content-length'];
      res.writeHead(200, h);
      ures.on('data', (c: Buffer) => res.write(c));
      ures.on('end', () => this.stream(res, lie.extra, lie.byte ?? 0));
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  /** Writes `size` bytes with backpressure; stops when the client is gone. */
  private stream(res: ServerResponse, size: number, byte: number): void {
    const block = Buffer.alloc(CHUNK, byte);
    let left = size;
    const pump = (): void => {
      while (left > 0 && !res.destroyed) {
        const n = Math.min(left, CHUNK);
        left -= n;
        this.liedBytes += n;
        if (!res.write(n === CHUNK ? block : block.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end();
    };
    res.on('close', () => { left = 0; });
    pump();
  }
}
