// A delaying, counting TCP proxy for the registry benchmarks: this kernel has no netem, so the
// latency of an emulated link is added here (the bandwidth cap is tc's job, on the port this
// proxy listens on). Each listener forwards to one target and holds every chunk, in each
// direction, for half the round trip before writing it on, keeping order and otherwise not
// limiting throughput (no window: bytes in flight are held in memory). A new connection's first
// bytes to the target wait one extra round trip, the TCP handshake a real link would cost.
//
//   node delay-proxy.js TARGET_HOST:PORT RTT_MS[,RTT_MS...]
//
// Listens on 127.0.0.1, one ephemeral port per RTT given (0: no delay, a plain counting relay),
// plus a control port; prints one JSON line {"ports":[...],"control":port} once listening.
// `GET http://127.0.0.1:<control>/stats` answers {"<port>":{"conns","up","down"}}: connections
// accepted and bytes client->target (up) and target->client (down) since start, per listener.
// Runs until SIGTERM/SIGINT.
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

interface Counters { conns: number; up: number; down: number }

/** Writes what `src` sends to `dst` `delayMs` later (never before `notBefore + delayMs`), in order. */
function delayedPipe(src: Socket, dst: Socket, delayMs: number, notBefore: number, count: (n: number) => void): void {
  if (delayMs === 0 && notBefore === 0) {
    src.on('data', (b: Buffer) => count(b.length));
    src.pipe(dst);
    return;
  }
  const queue: Array<{ due: number; buf: Buffer | null }> = []; // null: the source ended
  let lastDue = 0;
  let timer: NodeJS.Timeout | undefined;
  let waitingDrain = false;
  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now && !waitingDrain) {
      const { buf } = queue.shift()!;
      if (buf === null) { dst.end(); return; }
      if (!dst.write(buf)) {
        // The reader is slower than the link: stop taking more from the source until it drains.
        waitingDrain = true;
        src.pause();
        dst.once('drain', () => { waitingDrain = false; src.resume(); flush(); });
      }
    }
    schedule();
  };
  const schedule = () => {
    if (timer !== undefined || waitingDrain || queue.length === 0) return;
    timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };
  const push = (buf: Buffer | null) => {
    const due = Math.max(performance.now(), notBefore) + delayMs;
    lastDue = Math.max(lastDue, due);
    queue.push({ due: lastDue, buf });
    schedule();
  };
  src.on('data', (b: Buffer) => { count(b.length); push(b); });
  src.on('end', () => push(null));
  dst.on('close', () => { if (timer) clearTimeout(timer); queue.length = 0; });
}

function listen(target: { host: string; port: number }, rttMs: number, c: Counters): Promise<number> {
  const server = createServer({ noDelay: true }, (client) => {
    c.conns++;
    const accepted = performance.now();
    const upstream = connect({ host: target.host, port: target.port, noDelay: true });
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close); upstream.on('error', close);
    client.on('close', close); upstream.on('close', close);
    // The handshake: a real client could send its request only one round trip after connecting.
    delayedPipe(client, upstream, rttMs / 2, rttMs > 0 ? accepted + rttMs : 0, (n) => { c.up += n; });
    delayedPipe(upstream, client, rttMs / 2, 0, (n) => { c.down += n; });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

async function main(): Promise<void> {
  const [targetArg, rttsArg] = process.argv.slice(2);
  const m = /^([^:]+):(\d+)$/.exec(targetArg ?? '');
  const rtts = (rttsArg ?? '').split(',').filter((s) => s !== '').map(Number);
  if (!m || rtts.length === 0 || rtts.some((r) => !Number.isFinite(r) || r < 0)) {
    process.stderr.write('usage: delay-proxy.js TARGET_HOST:PORT RTT_MS[,RTT_MS...]\n');
    process.exit(2);
  }
  const target = { host: m[1]!, port: Number(m[2]) };
  const stats: Record<string, Counters> = {};
  const ports: number[] = [];
  for (const rtt of rtts) {
    const c: Counters = { conns: 0, up: 0, down: 0 };
    const port = await listen(target, rtt, c);
    stats[port] = c;
    ports.push(port);
  }
  const control = createHttpServer((req, res) => {
    if (req.url === '/stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(stats));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  process.stdout.write(JSON.stringify({ ports, control: (control.address() as { port: number }).port }) + '\n');
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
