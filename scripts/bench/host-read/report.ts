// Prints the table of scripts/bench/host-read.sh from the driver's results.json: MB/s, seconds,
// reads/s per path, the ratios the fanotify issue aims at, and the baselines' own ratios.
// Exits 1 when a path read wrong bytes or a measurement is missing; the aims never change
// the exit code.
//
//   node dist/scripts/bench/host-read/report.js <results.json> [--markdown]
import { readFileSync } from 'node:fs';
import type { Measure, Results, Row } from './driver.js';
import { formatTable } from '../lib/table.js';

interface DecodeMode { threads: number; label: string; medianSec: number; compressedMBps: number; uncompressedMBps: number }
interface Decode { compressedBytes: number; uncompressedBytes: number; modes: DecodeMode[] }

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: report <results.json> [--markdown]\n');
  process.exit(2);
}
const md = args.includes('--markdown');
const r = JSON.parse(readFileSync(file, 'utf8')) as Results;
const rows = r.rows;
const problems = [...r.failures];

const f = (v: number | undefined, d = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const mbps = (m?: Measure) => (m?.bytes ? m.bytes / 1e6 / m.sec : undefined);
const rps = (m?: Measure) => (m?.reads ? m.reads / m.sec : undefined);
const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);

// What each row must hold, to tell a failed run from a part that was not asked for.
const expected: Record<string, Array<keyof Row>> = {
  'native EROFS': ['seq', 'half', 'walk', 'random'],
  erofsfuse: ['seq', 'half', 'walk', 'random'],
  'C listener cold': ['seq', 'walk', 'random'],
  ...(r.ondine === 'measured' ? {
    'Ondine cold': ['seq', 'half', 'walk', 'random'] as Array<keyof Row>,
    'Ondine warm, blob complete': ['seq', 'half', 'walk', 'random'] as Array<keyof Row>,
    'Ondine warm, blob half filled': ['half'] as Array<keyof Row>,
  } : {}),
};
// With --only, the parts measured; the warm Ondine rows run only with every workload.
const only = r.only ? new Set<keyof Row>(r.only) : undefined;
if (only) {
  delete expected['Ondine warm, blob complete'];
  delete expected['Ondine warm, blob half filled'];
}
for (const [name, works] of Object.entries(expected)) {
  for (const w of works) if ((!only || only.has(w)) && !rows[name]?.[w]) problems.push(`${name}: no ${w} measurement`);
}

const runs = (m: Measure | undefined, figure: (x: number) => string) => (m?.all && m.all.length > 1 ? ` (${m.all.map(figure).join('/')})` : '');
const header = ['path', 'seq MB/s', 'first half MB/s', 'walk s', 'rand 4K reads/s', 'disk MB seq/walk/rand', 'bytes ok'];
const table: string[][] = [];
const order = ['native EROFS', 'erofsfuse', 'C listener cold', 'Ondine cold', 'Ondine warm, blob complete', 'Ondine warm, blob half filled'];
for (const name of [...order, ...Object.keys(rows).filter((k) => !order.includes(k))]) {
  const x = rows[name];
  if (!x) continue;
  const ok = [x.seq, x.half, x.walk, x.random].filter(Boolean).every((m) => m!.ok);
  const mbOf = (m?: Measure) => (s: number) => f(m?.bytes ? m.bytes / 1e6 / s : undefined, 0);
  table.push([
    name,
    f(mbps(x.seq), 0) + runs(x.seq, mbOf(x.seq)),
    f(mbps(x.half), 0) + runs(x.half, mbOf(x.half)),
    f(x.walk?.sec, 3) + runs(x.walk, (s) => f(s, 3)),
    f(rps(x.random), 0) + runs(x.random, (v) => f(v, 0)),
    [x.seq, x.walk, x.random].map((m) => f(m?.diskBytes === undefined ? undefined : m.diskBytes / 1e6, 0)).join('/'),
    ok ? 'yes' : 'NO',
  ]);
}
const out: string[] = [];
out.push(...formatTable(header, table, md));

const nat = rows['native EROFS'];
const fuse = rows['erofsfuse'];
const cl = rows['C listener cold'];
const cold = rows['Ondine cold'];
const warm = rows['Ondine warm, blob complete'];
const part = rows['Ondine warm, blob half filled'];
const decode = r.decode as Decode | undefined;
const one = decode?.modes.find((m) => m.threads === 0);
const pool = decode?.modes.find((m) => m.threads > 0);
// The ceiling is what decoding reaches with every core it may use: the pool where it helps,
// else the main thread (on 2 cores the pool often does not pay for its hand-offs).
const allCores = decode ? [...decode.modes].sort((a, b) => b.uncompressedMBps - a.uncompressedMBps)[0] : undefined;

const notes: string[] = [];
notes.push(`every row but "Ondine cold" is the best of ${r.reps} interleaved rounds (all rounds in parentheses); each measurement starts with the page cache dropped, ` +
  'and the C listener gets fresh sparse cache files every round; Ondine cold runs once (fresh cache files)');
notes.push('disk MB: bytes the disk holding the work dir read during the timed part of the kept run (every process: sources, cache files, unpacked blobs)');
notes.push(`random: ${r.reads} 4 KiB reads at aligned offsets from a fixed seed, one thread, on image B (the big file alone, 4 KiB chunks); the other columns read image A (1 MiB chunks)`);
if (decode) {
  notes.push(`decode ceiling over image A's blob (ChunkReader: read from the page cache, zstd, blake3; no kernel, no writes; ${f(decode.compressedBytes / 1e6, 1)} MB compressed, ` +
    `${f(decode.uncompressedBytes / 1e6, 1)} MB uncompressed): ` +
    decode.modes.map((m) => `${m.label} ${f(m.uncompressedMBps, 0)} MB/s uncompressed (${f(m.compressedMBps, 0)} compressed)`).join('; ') +
    `; the ceiling below is the faster: ${allCores?.label}`);
}
// `ondine status --json` counters, where the daemon reports them (the fields are not fixed yet:
// whatever is missing is left out).
const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
const at = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((x, k) => (x && typeof x === 'object' ? (x as Record<string, unknown>)[k] : undefined), o);
const fetched = (st: unknown) => {
  const sources = at(st, 'sources');
  if (!sources || typeof sources !== 'object') return undefined;
  let bytes = 0;
  let requests = 0;
  for (const dir of Object.values(sources as Record<string, Record<string, { bytes?: number; requests?: number }>>)) {
    for (const b of Object.values(dir ?? {})) { bytes += b?.bytes ?? 0; requests += b?.requests ?? 0; }
  }
  return { bytes, requests };
};
const st = r.ondineStatus ?? {};
const afterSeq = fetched(st['after cold seq']);
if (afterSeq && cold?.seq) {
  notes.push(`Ondine cold sequential: ${f(afterSeq.bytes / 1e6, 1)} MB compressed fetched in ${afterSeq.requests} source reads = ${f(afterSeq.bytes / 1e6 / cold.seq.sec, 0)} MB/s compressed`);
}
const blobsComplete = (at(st['after filling both blobs'], 'mounts') as Array<{ blobs?: Array<{ complete?: boolean }> }> | undefined)?.flatMap((m) => m.blobs ?? []);
if (blobsComplete?.length) notes.push(`blobs complete before the warm rounds: ${blobsComplete.filter((b) => b.complete).length} of ${blobsComplete.length}`);
for (const [label, before, after] of [['blob complete', 'after filling both blobs', 'complete: after warm rounds'], ['blob half filled', 'partial: after cold walk and half', 'partial: after warm rounds']]) {
  const a = fetched(st[before!]);
  const b = fetched(st[after!]);
  const delta = (...k: string[]) => { const x = num(at(st[after!], ...k)); const y = num(at(st[before!], ...k)); return x !== undefined && y !== undefined ? x - y : undefined; };
  const parts: string[] = [];
  if (a && b) parts.push(`${f((b.bytes - a.bytes) / 1e6, 1)} MB fetched`);
  const events = delta('fanotify', 'supervisor', 'events');
  if (events !== undefined) parts.push(`${events} events`);
  const atOnce = delta('fanotify', 'supervisor', 'allowedAtOnce');
  if (atOnce !== undefined) parts.push(`${atOnce} allowed by the supervisor at once`);
  const fwd = delta('fanotify', 'supervisor', 'forwarded');
  if (fwd !== undefined) parts.push(`${fwd} forwarded to the worker`);
  if (parts.length) notes.push(`Ondine warm rounds, ${label}: ${parts.join(', ')}`);
}
if (r.ondine !== 'measured') notes.push('Ondine rows: ondine fanotify path not available yet (`ondine mount --help` lists no --mode)');

interface Aim { what: string; value: number | undefined; aim?: string; met?: boolean }
const aims: Aim[] = [];
const aim = (what: string, value: number | undefined, min: number) =>
  aims.push({ what, value, aim: `>= ${min}`, ...(value === undefined ? {} : { met: value >= min }) });
const info = (what: string, value: number | undefined) => aims.push({ what: `(info) ${what}`, value });

aim('Ondine warm (complete) / native EROFS, sequential MB/s', ratio(mbps(warm?.seq), mbps(nat?.seq)), 0.95);
aim('Ondine warm (complete) / native EROFS, walk speed', ratio(nat?.walk?.sec, warm?.walk?.sec), 0.95);
aim('Ondine warm (complete) / erofsfuse, walk speed', ratio(fuse?.walk?.sec, warm?.walk?.sec), 3);
aim('Ondine cold sequential / decode ceiling, all cores (uncompressed MB/s)', ratio(mbps(cold?.seq), allCores?.uncompressedMBps), 0.7);
aim('Ondine cold 4 KiB random reads/s / C listener', ratio(rps(cold?.random), rps(cl?.random)), 0.5);
info('Ondine warm (half filled) / native EROFS, first half MB/s', ratio(mbps(part?.half), mbps(nat?.half)));
info('Ondine warm (half filled) / Ondine warm (complete), first half MB/s', ratio(mbps(part?.half), mbps(warm?.half)));
info('Ondine cold / C listener, sequential MB/s', ratio(mbps(cold?.seq), mbps(cl?.seq)));
info('Ondine cold / C listener, walk speed', ratio(cl?.walk?.sec, cold?.walk?.sec));
info('C listener cold / native EROFS, sequential MB/s', ratio(mbps(cl?.seq), mbps(nat?.seq)));
info('C listener cold / native EROFS, walk speed', ratio(nat?.walk?.sec, cl?.walk?.sec));
info('C listener cold / native EROFS, 4 KiB random reads/s', ratio(rps(cl?.random), rps(nat?.random)));
info('C listener cold sequential / decode ceiling', ratio(mbps(cl?.seq), allCores?.uncompressedMBps));
info('native EROFS / erofsfuse, walk speed', ratio(fuse?.walk?.sec, nat?.walk?.sec));
info('native EROFS / erofsfuse, sequential MB/s', ratio(mbps(nat?.seq), mbps(fuse?.seq)));
info('decode pool / main thread, uncompressed MB/s', ratio(pool?.uncompressedMBps, one?.uncompressedMBps));

out.push('');
for (const n of notes) out.push(md ? `- ${n}` : n);
out.push('');
if (md) out.push('| ratio | value | aim | met |', '|---|---:|---|---|');
const width = Math.max(...aims.map((a) => a.what.length));
for (const a of aims) {
  const v = a.value === undefined ? (a.aim && r.ondine !== 'measured' ? 'n/a' : '-') : f(a.value, 2);
  const met = a.met === undefined ? '' : a.met ? 'met' : 'MISSED';
  out.push(md ? `| ${a.what} | ${v} | ${a.aim ?? ''} | ${met} |` : `${a.what.padEnd(width)}  ${v.padStart(6)}  ${(a.aim ?? '').padEnd(7)} ${met}`.trimEnd());
}
if (problems.length) {
  out.push('');
  for (const p of problems) out.push(`FAILED: ${p}`);
}
process.stdout.write(out.join('\n') + '\n');
process.exitCode = problems.length ? 1 : 0;
