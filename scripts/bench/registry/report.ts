// The tables of scripts/bench/registry.sh from its results.jsonl (one line per measured step,
// written by measure.ts): the links as emulated, then benchmarks a-d with the best of the
// runs, every run's time, the requests and bytes beside each, and the ratios against the aims.
//
//   node report.js results.jsonl --proxy-ports COUNT,1G,100M [--markdown]
//
// Exit status 1 when a lazy read returned wrong bytes.
import { readFileSync } from 'node:fs';
import { formatTable } from '../lib/table.js';

interface Row {
  bench: string; variant?: string; link?: string; run?: number; image?: string; sec?: number;
  requests: number; blobGets: number; bytesServed: number; uploads: number; mounts: number; manifestGets: number;
  [k: string]: unknown;
}

const args = process.argv.slice(2);
const markdown = args.includes('--markdown');
const pi = args.indexOf('--proxy-ports');
const [countPort] = (pi >= 0 ? args[pi + 1]! : '').split(',');
const rows: Row[] = readFileSync(args[0]!, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Row);

const mb = (b: number) => (b / 1e6).toFixed(1);
const s3 = (x: number) => x.toFixed(3);
const ratio = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const proxy = (r: Row, port: string | undefined) => (port ? (r[`proxy.${port}`] as { conns: number; up: number; down: number } | undefined) : undefined);
const out: string[] = [];
const table = (title: string, header: string[], body: string[][], notes: string[] = []) => {
  if (body.length === 0) return;
  out.push('', markdown ? `**${title}**` : `== ${title}`, ...(markdown ? [''] : []), ...formatTable(header, body, markdown));
  for (const n of notes) out.push(markdown ? `- ${n}` : `  ${n}`);
};
const aims: string[][] = [];
let wrongBytes = false;

/** The fastest run of a (bench, variant, link) and every run's time. */
function best(bench: string, variant: string, link?: string, image?: string): { row: Row; all: string } | undefined {
  const rs = rows.filter((r) => r.bench === bench && r.variant === variant && (link === undefined || r.link === link)
    && (image === undefined || r.image === image) && typeof r.sec === 'number');
  if (rs.length === 0) return undefined;
  const row = rs.reduce((a, b) => (b.sec! < a.sec! ? b : a));
  return { row, all: rs.map((r) => s3(r.sec!)).join('/') };
}
const links = [...new Set(rows.filter((r) => r.link).map((r) => r.link!))];

// Links.
table('emulated links (curl of the largest layer blob; a request on a kept-alive connection)', ['link', 'blob MB', 's', 'MB/s', 'request ms'],
  rows.filter((r) => r.bench === 'link').map((r) => [r.link!, mb(Number(r.blobBytes)), s3(r.sec!), (Number(r.blobBytes) / r.sec! / 1e6).toFixed(1), (Number(r.rttSec) * 1000).toFixed(1)]),
  ['1g: 1 Gbit/s each way (125 MB/s of payload at most), 2 ms round trip; 100m: 100 Mbit/s, 20 ms; the request time adds the registry\'s own (~2 ms on loopback)']);

/** `ondine --version` with the page cache dropped: the CLI's own start, part of every lazy row. */
function cliNote(): string[] {
  const rs = rows.filter((r) => r.bench === 'cli' && typeof r.sec === 'number');
  if (rs.length === 0) return [];
  return [`of the lazy time, starting the ondine CLI alone (ondine --version, page cache dropped) takes ${s3(Math.min(...rs.map((r) => r.sec!)))} s (runs ${rs.map((r) => s3(r.sec!)).join('/')})`];
}

// a: time to first command.
{
  const body: string[][] = [];
  // Runs before the small image was added carry no image: they are app1's.
  for (const r of rows) if (r.bench === 'a' && r.image === undefined) r.image = 'app1';
  const images = [...new Set(rows.filter((r) => r.bench === 'a').map((r) => r.image!))];
  for (const image of images) for (const link of links) {
    const seq = best('a', 'full-seq', link, image), par = best('a', 'full-par', link, image), lazy = best('a', 'lazy', link, image), api = best('a', 'lazy-api', link, image);
    const imageName = image === 'app1' ? 'python (app1, 3 layers)' : image === 'pysmall' ? 'small python (pysmall, 2 layers)' : image;
    for (const [name, b] of [['full pull, layers one after another', seq], ['full pull, layers all at once', par], ['lazy (ondine mount <ref>)', lazy], ['lazy (daemon API: POST /v1/mounts)', api]] as const) {
      if (!b) continue;
      body.push([imageName, link, name, s3(b.row.sec!), b.all, b.row.stepSec === undefined ? '-' : `${s3(Number(b.row.stepSec))} + ${s3(b.row.sec! - Number(b.row.stepSec))}`, String(b.row.requests), String(b.row.blobGets), mb(b.row.bytesServed)]);
    }
    const full = [seq, par].filter((x) => x).map((x) => x!.row.sec!);
    if (lazy && full.length) {
      const r = lazy.row.sec! / Math.min(...full);
      aims.push([`a: lazy / faster full pull, time to first command, ${image}, ${link}`, ratio(r), link === '1g' ? '<= 0.10' : '-', link === '1g' ? (r <= 0.1 ? 'met' : 'MISSED') : '-']);
    }
    if (api && full.length) {
      const r = api.row.sec! / Math.min(...full);
      aims.push([`a: lazy through the daemon API / faster full pull, ${image}, ${link}`, ratio(r), link === '1g' ? '<= 0.10' : '-', link === '1g' ? (r <= 0.1 ? 'met' : 'MISSED') : '-']);
    }
  }
  table('a: time to first command (python3 -c \'import json, sqlite3\' in a chroot)', ['image', 'link', 'path', 'best s', 'runs s', 'best: ready + command s', 'requests', 'blob GETs', 'MB served'], body,
    [...cliNote(),
      'full pull: manifest, then each layer curl | gzip -d | tar -x into its own dir, a read-only overlay of them, the command; lazy: the daemon already running with a fresh cache dir, ondine mount <ref> + the command; lazy API: the same mount as POST /v1/mounts on the daemon\'s socket (curl, as the snapshotter calls it: no CLI start-up) + the command; page cache dropped before each']);
}

// b: cold sequential reads.
{
  const body: string[][] = [];
  const pick = (variant: string, link: string, workload: string) => {
    const rs = rows.filter((r) => r.bench === 'b' && r.variant === variant && r.link === link && (r.workload ?? 'file') === workload);
    if (rs.length === 0) return undefined;
    return { row: rs.reduce((a, b) => (b.sec! < a.sec! ? b : a)), all: rs.map((r) => s3(r.sec!)).join('/'), rows: rs };
  };
  for (const workload of ['file', 'walk']) {
    for (const link of links) {
      const lazy = pick('lazy', link, workload), curl = pick('curl', link, workload);
      if (lazy) {
        if (lazy.rows.some((r) => r.ok !== 'yes')) wrongBytes = true;
        const fb = Number(lazy.row.fileBytes);
        const what = String(lazy.row.what);
        body.push([link, `lazy: read ${what.startsWith('/') ? `${what.slice(what.lastIndexOf('/') + 1)} (${mb(fb)} MB)` : what}`, s3(lazy.row.sec!), lazy.all, `${(fb / lazy.row.sec! / 1e6).toFixed(1)} files, ${(Number(lazy.row.topBlobBytes) / lazy.row.sec! / 1e6).toFixed(1)} blob`,
          String(lazy.row.requests), String(lazy.row.blobGets), mb(lazy.row.bytesServed), lazy.rows.map((r) => String(r.ok)).join('/')]);
      }
      if (curl) {
        const rb = Number(curl.row.rangeBytes);
        body.push([link, 'curl of the same blob bytes', s3(curl.row.sec!), curl.all, `${(rb / curl.row.sec! / 1e6).toFixed(1)} blob`,
          String(curl.row.requests), String(curl.row.blobGets), mb(curl.row.bytesServed), '-']);
      }
      if (lazy && curl) {
        // The speed at which each moved the blob's compressed bytes (the curl fetched as many).
        const r = (Number(lazy.row.topBlobBytes) / lazy.row.sec!) / (Number(curl.row.rangeBytes) / curl.row.sec!);
        aims.push([`b: lazy read / curl, blob bytes per second, ${workload === 'file' ? 'largest file' : 'largest layer\'s files'}, ${link}`, ratio(r), '>= 0.8', r >= 0.8 ? 'met' : 'MISSED']);
      }
    }
  }
  table('b: cold sequential reads through the mount', ['link', 'path', 'best s', 'runs s', 'MB/s', 'requests', 'blob GETs', 'MB served', 'bytes ok'], body,
    ['lazy rows: a fresh mount (fresh cache dir), page cache dropped; file = dd of the largest file; walk = cat of every regular file of the largest layer in its tar order (the order the converted blob holds them)',
      'curl: one Range request for as many bytes of the blob the read fetched most from as the read fetched from it, same link, page cache dropped',
      'MB/s: "files" = bytes read / time; "blob" = compressed blob bytes fetched / time (the ratio below compares these)']);
}

// c: bytes uploaded for the second image.
{
  const body: string[][] = [];
  const up: Record<string, number> = {};
  for (const variant of ['plain', 'convert', 'convert-nodict']) {
    for (const image of ['app1', 'app2']) {
      const r = rows.find((x) => x.bench === 'c' && x.variant === variant && x.image === image);
      if (!r) continue;
      const p = proxy(r, countPort);
      up[`${variant}:${image}`] = p?.up ?? 0;
      body.push([variant === 'plain' ? `skopeo copy (plain OCI) ${image}` : `ondine convert ${image}${r.chunkDict ? ' --chunk-dict app1' : image === 'app2' ? ' (no --chunk-dict)' : ''}`,
        mb(p?.up ?? 0), String(r.requests), String(r.uploads), String(r.mounts), mb(r.bytesServed)]);
    }
  }
  if (up['plain:app2'] !== undefined && up['convert:app2'] !== undefined) {
    if (up['convert-nodict:app2'] !== undefined) aims.push(['c: bytes uploaded for app2 after app1, lazy without --chunk-dict / plain OCI', ratio(up['convert-nodict:app2']! / up['plain:app2']!), '-', '-']);
    aims.push(['c: bytes uploaded for app2 after app1, lazy / plain OCI', ratio(up['convert:app2']! / up['plain:app2']!), '< 1 (fewer)', up['convert:app2']! < up['plain:app2']! ? 'met' : 'MISSED']);
  }
  table('c: bytes uploaded, two images sharing a base (app2 pushed after app1, same repo)', ['push', 'MB uploaded', 'requests', 'upload requests', 'blob mounts', 'MB served'], body,
    ['MB uploaded: every byte the client sent to the registry (headers too), counted at a no-delay proxy on loopback']);
}

// d: convert throughput.
{
  const body: string[][] = [];
  const sk = best('d', 'skopeo'), fl = best('d', 'floor'), cv = best('d', 'convert'), bf = best('d', 'convert-before');
  for (const [name, b] of [['skopeo copy between repos', sk], ['CPU floor: curl | gzip -d | zstd -T<cores> -3 > /dev/null', fl], ['ondine convert', cv],
    ['ondine convert, BENCH_CONVERT_BEFORE checkout', bf]] as const) {
    if (!b) continue;
    const p = proxy(b.row, countPort);
    body.push([name, s3(b.row.sec!), b.all, (Number(b.row.srcBytes) / b.row.sec! / 1e6).toFixed(1), mb(p?.up ?? 0), String(b.row.mounts), String(b.row.requests)]);
  }
  if (fl && cv) aims.push(['d: ondine convert / CPU floor, source MB/s', ratio(fl.row.sec! / cv.row.sec!), '>= 0.8', fl.row.sec! / cv.row.sec! >= 0.8 ? 'met' : 'MISSED']);
  if (bf && cv) aims.push(['d: ondine convert / the BENCH_CONVERT_BEFORE checkout\'s, source MB/s', ratio(bf.row.sec! / cv.row.sec!), '-', '-']);
  if (sk && cv) aims.push(['d: ondine convert / skopeo copy, source MB/s', ratio(sk.row.sec! / cv.row.sec!), '>= 0.3', sk.row.sec! / cv.row.sec! >= 0.3 ? 'met' : 'MISSED']);
  table('d: convert throughput, loopback (source: the plain image in the same registry)', ['tool', 'best s', 'runs s', 'source MB/s', 'MB uploaded', 'blob mounts', 'requests (source + target)'], body,
    ['source MB/s: the plain image\'s compressed layer bytes / wall time; each run writes a new repo, page cache dropped first; skopeo runs with an empty blob-info cache (else it mounts blobs it pushed in an earlier run instead of uploading them); the floor fetches, ungzips and compresses every layer (one after another) and writes nothing']);
  // Where the best convert run spent its time (its --json: busy = the sum of the stage's working
  // intervals over all its threads; active = first start to last end, from convert's start).
  const stages = cv && typeof cv.row.json === 'string' ? stagesOf(cv.row.json) : undefined;
  if (stages) {
    table('d: ondine convert per stage (best run)', ['stage', 'MB in', 'MB out', 'busy s', 'active s'],
      stages.map((st) => [st.stage, mb(st.bytes), st.bytesOut ? mb(st.bytesOut) : '-', s3(st.busyMs / 1000), `${(st.startMs / 1000).toFixed(2)}-${(st.endMs / 1000).toFixed(2)}`]),
      ['busy: the sum of the stage\'s working intervals over all its threads (gunzip: each input chunk from hand-over to zlib\'s callback, thread-pool waits included; digest and compress: worker time; upload: each blob\'s upload, HEAD included); active: first start to last end, seconds since convert began']);
  }
}

function stagesOf(path: string): Array<{ stage: string; bytes: number; bytesOut: number; busyMs: number; startMs: number; endMs: number }> | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as { stages?: Array<{ stage: string; bytes: number; bytesOut: number; busyMs: number; startMs: number; endMs: number }> };
    return Array.isArray(j.stages) ? j.stages : undefined;
  } catch {
    return undefined;
  }
}

table('ratios', ['ratio', 'value', 'aim', 'met'], aims);
process.stdout.write(out.join('\n') + '\n');
if (wrongBytes) {
  process.stderr.write('registry report: a lazy read returned wrong bytes\n');
  process.exit(1);
}
