// Prints the table of scripts/bench/vm-read.sh from the guest's results.json: times, MB/s,
// reads/s, ratios between the paths, and the aims. Exits 1 when a path read wrong bytes or
// a measurement is missing (the guest failed part way); the aims never change the exit code.
//
//   node dist/scripts/bench/vm-read/report.js <results.json> [--expected expected.json] [--markdown]
import { readFileSync } from 'node:fs';
import type { Measure, Results } from './guest.js';
import type { Expected } from './common.js';
import { formatTable } from '../lib/table.js';

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--expected');
if (!file) {
  process.stderr.write('usage: report <results.json> [--expected expected.json] [--markdown]\n');
  process.exit(2);
}
const md = args.includes('--markdown');
const r = JSON.parse(readFileSync(file, 'utf8')) as Results;
const ei = args.indexOf('--expected');
const exp = ei >= 0 ? JSON.parse(readFileSync(args[ei + 1]!, 'utf8')) as Expected : undefined;

const MB = 1e6;
const f = (v: number | undefined, d = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const mbps = (m?: Measure) => (m?.bytes ? m.bytes / MB / m.sec : undefined);
const rps = (m?: Measure) => (m?.reads ? m.reads / m.sec : undefined);
const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
const rows = r.rows;
const problems = [...r.failures];
const out: string[] = [];

// Which part of the guest run produces which measurement, to tell "missing" from "not asked for".
const expectedParts: Record<string, Record<'seq' | 'walk' | 'random', string>> = {
  'fscache cold': { seq: 'fscache', walk: 'fscache', random: 'random' },
  'fscache warm': { seq: 'fscache', walk: 'fscache', random: 'fscache' },
  'C daemon cold': { seq: 'c', walk: 'c', random: 'c' },
  'native EROFS': { seq: 'native', walk: 'native', random: 'native' },
  erofsfuse: { seq: 'fuse', walk: 'fuse', random: 'fuse' },
};
const order = [...Object.keys(expectedParts), ...Object.keys(rows).filter((k) => k.startsWith('fscache cold, '))];
for (const [name, parts] of Object.entries(expectedParts)) {
  for (const [w, part] of Object.entries(parts)) {
    if (r.parts.includes(part) && !rows[name]?.[w as 'seq']) problems.push(`${name}: no ${w} measurement`);
  }
}

const files = exp?.tree.files ?? 5000;
const header = ['path', 'seq s', 'seq MB/s', 'walk s', 'walk files/s', 'walk disk reads', 'rand 4K reads', 'rand s', 'rand reads/s', 'bytes ok'];
const table: string[][] = [];
for (const name of order) {
  const x = rows[name];
  if (!x) continue;
  const ok = [x.seq, x.walk, x.random].filter(Boolean).every((m) => m!.ok);
  table.push([name, f(x.seq?.sec), f(mbps(x.seq), 1), f(x.walk?.sec), x.walk ? f(files / x.walk.sec, 0) : '-',
    x.walk?.disk ? String(x.walk.disk.reads) : '-', x.random ? String(x.random.reads) : '-', f(x.random?.sec), f(rps(x.random), 0), ok ? 'yes' : 'NO']);
}
out.push(...formatTable(header, table, md));

const cold = rows['fscache cold'];
const warm = rows['fscache warm'];
const nat = rows['native EROFS'];
const fuse = rows['erofsfuse'];
const cd = rows['C daemon cold'];
const srcMBps = r.sourceRead.sec ? r.sourceRead.bytes / MB / r.sourceRead.sec : undefined;
const fetched = cold?.seq?.daemon?.fetchedBytes;
const fillMBps = cold?.seq && fetched !== undefined ? fetched / MB / cold.seq.sec : undefined;
const decodeMBps = r.decode ? r.decode.bytes / MB / r.decode.sec : undefined;

const notes: string[] = [];
if (r.nativeBlake3 === false) notes.push('WARNING: blake3 ran in portable JS (@napi-rs/blake-hash not loadable): every fill figure is ~100x too low');
if (r.reps > 1) notes.push(`warm, native and erofsfuse rows: best of ${r.reps} interleaved runs (each after drop_caches); cold rows: one run (the first read happens once)`);
notes.push(`source read: the compressed blob (${f(r.blobCompressedBytes / MB, 1)} MB) read sequentially from the guest's tmpfs, where the daemon reads it: ${f(srcMBps, 0)} MB/s`);
if (r.decode) {
  notes.push(`decode ceiling: the same blob fetched, zstd-decompressed and blake3-verified by ChunkReader on one JS thread (no kernel, no writes): ` +
    `${f(decodeMBps, 1)} MB/s compressed (${f(r.decode.uncompressed / MB / r.decode.sec, 1)} MB/s uncompressed)`);
}
if (cold?.seq?.daemon) {
  const d = cold.seq.daemon;
  notes.push(`cold fill: ${f(d.fetchedBytes / MB, 1)} MB compressed fetched while reading the 256 MiB file in ${f(cold.seq.sec)} s = ${f(fillMBps, 1)} MB/s compressed ` +
    `(${d.reads} READ messages, ${d.fetches} source reads)`);
}
if (cold?.walk?.daemon) notes.push(`cold walk: ${cold.walk.daemon.reads} READ messages, ${cold.walk.daemon.fetches} source reads, ${f(cold.walk.daemon.fetchedBytes / MB, 1)} MB fetched`);
for (const name of order.filter((n) => n.startsWith('fscache cold'))) {
  const d = rows[name]?.random?.daemon;
  if (d) notes.push(`${name} random: ${d.reads} READ messages, ${d.fetches} source reads, ${f(d.fetchedBytes / MB, 1)} MB fetched`);
}
if (r.warmDaemon) notes.push(`daemon READ messages during all warm runs: ${r.warmDaemon.reads} (bytes fetched: ${r.warmDaemon.fetchedBytes})`);

interface Aim { what: string; value: number | undefined; aim?: string; met?: boolean }
const aims: Aim[] = [];
const aim = (what: string, value: number | undefined, goal: string, min: number) =>
  aims.push({ what, value, aim: goal, ...(value === undefined ? {} : { met: value >= min }) });
const info = (what: string, value: number | undefined) => aims.push({ what: `(info) ${what}`, value });

aim('warm fscache / native EROFS, sequential MB/s', ratio(mbps(warm?.seq), mbps(nat?.seq)), '>= 0.9', 0.9);
aim('warm fscache / native EROFS, walk speed', ratio(nat?.walk?.sec, warm?.walk?.sec), '>= 0.9', 0.9);
aim('warm fscache / erofsfuse, walk speed', ratio(fuse?.walk?.sec, warm?.walk?.sec), '>= 2', 2);
aim('cold fill / source read speed (compressed MB/s)', ratio(fillMBps, srcMBps), '>= 0.6', 0.6);
for (const name of order.filter((n) => n.startsWith('fscache cold'))) {
  const v = rps(rows[name]?.random);
  if (v !== undefined) aims.push({ what: `${name}: 4K random reads/s`, value: v, aim: '~1000 (C figure)', met: v >= 900 });
}
info('warm fscache / native EROFS, 4K random reads/s', ratio(rps(warm?.random), rps(nat?.random)));
info('warm fscache / erofsfuse, sequential MB/s', ratio(mbps(warm?.seq), mbps(fuse?.seq)));
info('cold fscache / erofsfuse, walk speed', ratio(fuse?.walk?.sec, cold?.walk?.sec));
info('cold fill / decode ceiling (compressed MB/s)', ratio(fillMBps, decodeMBps));
info('cold fscache / C daemon, sequential MB/s', ratio(mbps(cold?.seq), mbps(cd?.seq)));
info('cold fscache / C daemon, walk speed', ratio(cd?.walk?.sec, cold?.walk?.sec));
for (const name of order.filter((n) => n.startsWith('fscache cold'))) {
  info(`${name} / C daemon, 4K random reads/s`, ratio(rps(rows[name]?.random), rps(cd?.random)));
}
info('C daemon cold: 4K random reads/s', rps(cd?.random));

out.push('');
for (const n of notes) out.push(md ? `- ${n}` : n);
out.push('');
if (md) out.push('| ratio | value | aim | met |', '|---|---:|---|---|');
const width = Math.max(...aims.map((a) => a.what.length));
for (const a of aims) {
  const v = a.value === undefined ? '-' : a.value >= 100 ? f(a.value, 0) : f(a.value, 2);
  const met = a.met === undefined ? '' : a.met ? 'met' : 'MISSED';
  out.push(md ? `| ${a.what} | ${v} | ${a.aim ?? ''} | ${met} |` : `${a.what.padEnd(width)}  ${v.padStart(7)}  ${(a.aim ?? '').padEnd(16)} ${met}`.trimEnd());
}
if (problems.length) {
  out.push('');
  for (const p of problems) out.push(`FAILED: ${p}`);
}
process.stdout.write(out.join('\n') + '\n');
process.exitCode = problems.length ? 1 : 0;
