// An HTTP proxy in front of a test registry that breaks blob downloads on demand: refuse (the
// connection is reset before any answer), reset (headers and half the body, then a reset),
// truncate (headers and half the body, then a clean close), corrupt (the whole body with one
// byte flipped). Faults apply to the next `times` blob GETs; everything else passes through.
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'refuse' | 'reset' | 'truncate' | 'corrupt';

export class FaultProxy {
  /** Blob GETs seen, and faults injected into them. */
  blobGets = 0;
  injected = 0;
  private fault: Fault | undefined;
  private remaining = 0;

  private constructor(private readonly server: Server, readonly port: number, private readonly upstream: URL) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(upstream: string): Promise<FaultProxy> {
    let self: FaultProxy | undefined;
    const server = createServer((req, res) => self!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = new FaultProxy(server, (server.address() as AddressInfo).port, new URL(upstream));
    return self;
  }

  /** Breaks the next `times` blob GETs (default: all of them until told otherwise). */
  set(fault: Fault | undefined, times = Infinity): void {
    this.fault = fault;
    this.remaining = fault ? times : 0;
  }

  private handle(req: IncomingMessage, res: import('node:http').ServerResponse): void {
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob) this.blobGets++;
    const fault = isBlob && this.remaining > 0 ? this.fault : undefined;
    if (fault) {
      this.remaining--;
      this.injected++;
    }
    if (fault === 'refuse') {
      req.socket.resetAndDestroy();
      return;
    }
    const headers = { ...req.headers, host: this.upstream.host };
    const up = request({ host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers, agent: false }, (ures) => {
      if (!fault || (ures.statusCode ?? 0) >= 300) {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
        return;
      }
      const parts: Buffer[] = [];
      ures.on('data', (c: Buffer) => parts.push(c));
      ures.on('end', () => {
        const body = Buffer.concat(parts);
        res.writeHead(ures.statusCode ?? 200, ures.headers);
        if (fault === 'corrupt') {
          body[body.length >> 1]! ^= 0x40;
          res.end(body);
          return;
        }
        res.write(body.subarray(0, body.length >> 1), () => {
          if (fault === 'reset') req.socket.resetAndDestroy();
          else req.socket.end();
        });
      });
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
