// What a registry benchmark step cost on the wire, for scripts/bench/registry.sh: requests and
// bytes from the registry's access log (combined format, one line per request) and bytes and
// connections from the delay proxy's counters, between a snapshot taken before the step and
// the moment the step ended.
//
//   node measure.js snap REGISTRY_LOG PROXY_CONTROL_PORT                  > snap.json
//   node measure.js record REGISTRY_LOG PROXY_CONTROL_PORT snap.json key=value...  >> results.jsonl
//
// `record` prints one JSON line: the key=value pairs (numbers parsed) plus requests, blobGets
// (GET of /blobs/), bytesServed (response bytes the registry logged), uploads (POST/PATCH/PUT of
// /blobs/uploads/), mounts (POST ...?mount=, answered 201), and for every proxy listener that
// moved bytes: proxy.<port> = {conns, up, down}.
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

interface Snap { logBytes: number; proxy: Record<string, { conns: number; up: number; down: number }> }

async function proxyStats(port: string): Promise<Snap['proxy']> {
  if (port === '' || port === '0') return {};
  const res = await fetch(`http://127.0.0.1:${port}/stats`);
  return (await res.json()) as Snap['proxy'];
}

function logTail(path: string, from: number): string {
  const size = statSync(path).size;
  if (size <= from) return '';
  const buf = Buffer.alloc(size - from);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  return buf.toString('utf8');
}

// 127.0.0.1 - - [03/Dec/2026:18:49:37 +0000] "GET /v2/x/blobs/sha256:.. HTTP/1.1" 404 157 "" "curl/7.88.1"
const ACCESS = /^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)/;

function summarize(text: string) {
  const s = { requests: 0, blobGets: 0, bytesServed: 0, uploads: 0, mounts: 0, manifestGets: 0 };
  const blobs: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = ACCESS.exec(line);
    if (!m) continue;
    const [, method, uri, status, bytes] = m;
    const n = bytes === '-' ? 0 : Number(bytes);
    s.requests++;
    s.bytesServed += n;
    if (method === 'GET' && /\/blobs\/sha256:/.test(uri!)) {
      s.blobGets++;
      const d = /sha256:([0-9a-f]{64})/.exec(uri!)![1]!;
      blobs[d] = (blobs[d] ?? 0) + n;
    }
    if (method === 'GET' && /\/manifests\//.test(uri!)) s.manifestGets++;
    if (/\/blobs\/uploads\//.test(uri!) && method !== 'GET') {
      if (method === 'POST' && /[?&]mount=/.test(uri!) && status === '201') s.mounts++;
      else s.uploads++;
    }
  }
  // The blob most of the bytes came from: what a curl baseline should fetch.
  const top = Object.entries(blobs).sort((a, b) => b[1] - a[1])[0];
  return { ...s, ...(top ? { topBlob: `sha256:${top[0]}`, topBlobBytes: top[1] } : {}) };
}

function parseValue(v: string): unknown {
  return /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v) ? Number(v) : v;
}

async function main(): Promise<void> {
  const [cmd, log, control, snapPath, ...pairs] = process.argv.slice(2);
  if (cmd === 'snap' && log && control !== undefined) {
    const snap: Snap = { logBytes: statSync(log).size, proxy: await proxyStats(control) };
    process.stdout.write(JSON.stringify(snap) + '\n');
    return;
  }
  if (cmd === 'record' && log && control !== undefined && snapPath) {
    const snap = JSON.parse(readFileSync(snapPath, 'utf8')) as Snap;
    // The registry writes its access line after the response: give the last one a moment.
    await new Promise((r) => setTimeout(r, 150));
    const out: Record<string, unknown> = {};
    for (const p of pairs) {
      const i = p.indexOf('=');
      if (i > 0) out[p.slice(0, i)] = parseValue(p.slice(i + 1));
    }
    Object.assign(out, summarize(logTail(log, snap.logBytes)));
    const now = await proxyStats(control);
    for (const [port, c] of Object.entries(now)) {
      const b = snap.proxy[port] ?? { conns: 0, up: 0, down: 0 };
      const d = { conns: c.conns - b.conns, up: c.up - b.up, down: c.down - b.down };
      if (d.conns || d.up || d.down) out[`proxy.${port}`] = d;
    }
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  process.stderr.write('usage: measure.js snap LOG CONTROL_PORT | record LOG CONTROL_PORT SNAP key=value...\n');
  process.exit(2);
}

void main();
