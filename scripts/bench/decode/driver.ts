// Decode throughput driver for scripts/bench/decode.sh: ChunkReader over every chunk of every
// blob of an image, from a local directory, with the decode pool off and with N threads, runs
// interleaved round by round. Chunks go in compressed order, in batches of --batch bytes with
// --inflight batches at a time (a sequential cold read); onChunk only counts. A timed run is
// --passes passes over the image (its time divided by them), long enough to be stable. Worker start-up
// is not timed (a daemon pays it once): each pool decodes a few chunks before its runs.
// Prints a Markdown table: median wall time, CPU (all threads), MB/s compressed and
// uncompressed, and speed relative to the main-thread path measured in the same run; with
// --json, the same figures as one JSON object instead (scripts/bench/host-read.sh reads it).
//
// usage: node dist/scripts/bench/decode/driver.js BOOTSTRAP BLOB_DIR [--threads 0,1,2,4]
//          [--runs 3] [--batch 8388608] [--inflight 2] [--min-bytes 131072] [--per-worker 2] [--passes 3] [--json]
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseBootstrap } from '../../../src/format/bootstrap.js';
import { loadBlobChunkMap, type BlobChunk } from '../../../src/storage/blob-chunk-map.js';
import { ChunkReader } from '../../../src/storage/chunk-reader.js';
import { DecodePool } from '../../../src/storage/decode-pool.js';
import { LocalDirSource } from '../../../src/storage/local-dir-source.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '0,1,2,4' },
    runs: { type: 'string', default: '3' },
    batch: { type: 'string', default: String(8 << 20) },
    inflight: { type: 'string', default: '2' },
    'min-bytes': { type: 'string', default: String(128 << 10) },
    'per-worker': { type: 'string', default: '2' },
    passes: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const [bootPath, blobDir] = positionals;
if (!bootPath || !blobDir) throw new Error('usage: driver.js BOOTSTRAP BLOB_DIR [--threads 0,1,2,4] [--runs N]');
const threads = values.threads.split(',').map(Number);
const runs = Number(values.runs);
const batchBytes = Number(values.batch);
const inflight = Number(values.inflight);
const minBytes = Number(values['min-bytes']);
const perWorker = Number(values['per-worker']);
const passes = Number(values.passes);
for (const n of [...threads, runs, batchBytes, inflight, minBytes, perWorker, passes]) if (!Number.isInteger(n) || n < 0) throw new Error(`bad number ${n}`);

const boot = parseBootstrap(await readFile(bootPath));
const source = new LocalDirSource(blobDir);
const blobs = await Promise.all(boot.blobs.map(async (entry) => {
  const map = await loadBlobChunkMap(source, entry, boot.chunks);
  const ordered = [...map.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
  const batches: BlobChunk[][] = [];
  let cur: BlobChunk[] = [];
  let bytes = 0;
  for (const c of ordered) {
    if (cur.length && bytes + c.compressedSize > batchBytes) { batches.push(cur); cur = []; bytes = 0; }
    cur.push(c);
    bytes += c.compressedSize;
  }
  if (cur.length) batches.push(cur);
  return { map, batches };
}));
const all = blobs.flatMap((b) => b.map.chunks);
const compressed = all.reduce((s, c) => s + c.compressedSize, 0);
const uncompressed = all.reduce((s, c) => s + c.uncompressedSize, 0);
const big = all.filter((c) => c.uncompressedSize >= minBytes);

/** `times` passes over every chunk; returns wall and CPU seconds per pass. */
async function pass(pool: DecodePool | undefined, times = passes): Promise<{ wall: number; cpu: number }> {
  let delivered = 0;
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < times; i++) for (const { map, batches } of blobs) {
    const reader = new ChunkReader(source, map, pool ? { pool, poolMinBytes: minBytes } : {});
    let next = 0;
    await Promise.all(Array.from({ length: inflight }, async () => {
      while (next < batches.length) {
        await reader.fetch(batches[next++]!, ({ data }) => { delivered++; bytes += data.length; });
      }
    }));
  }
  const wall = (performance.now() - t0) / 1000 / times;
  const cpu = process.cpuUsage(cpu0);
  if (delivered !== times * all.length || bytes !== times * uncompressed) throw new Error(`delivered ${delivered} chunks, ${bytes} bytes in ${times} passes`);
  return { wall, cpu: (cpu.user + cpu.system) / 1e6 / times };
}

const label = (n: number) => (n === 0 ? 'main thread (no pool)' : `pool, ${n} thread${n > 1 ? 's' : ''}`);
const walls = new Map<number, number[]>(threads.map((n) => [n, []]));
const cpus = new Map<number, number[]>(threads.map((n) => [n, []]));
// Warm the page cache and the codecs once.
await pass(undefined, 1);
for (let r = 1; r <= runs; r++) {
  for (const n of threads) {
    const pool = n > 0 ? new DecodePool({ size: n, perWorker }) : undefined;
    try {
      if (pool) {
        // Start every worker (jobs go to the least busy one) before the clock starts.
        for (const { map } of blobs) {
          const warm = map.chunks.filter((c) => c.uncompressedSize >= minBytes).slice(0, 2 * n);
          if (!warm.length) continue;
          await new ChunkReader(source, map, { pool, poolMinBytes: minBytes }).fetch(warm, () => undefined);
          break;
        }
      }
      const { wall, cpu } = await pass(pool);
      walls.get(n)!.push(wall);
      cpus.get(n)!.push(cpu);
      process.stderr.write(`bench: round ${r}/${runs} ${label(n)}: ${wall.toFixed(2)} s, ${(compressed / 1e6 / wall).toFixed(1)} MB/s compressed\n`);
    } finally {
      await pool?.close();
    }
  }
}
await source.close();

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mb = (n: number) => (n / 1e6).toFixed(1);
const base = walls.has(0) ? median(walls.get(0)!) : median(walls.get(threads[0]!)!);
const bigBytes = big.reduce((s, c) => s + c.uncompressedSize, 0);
if (values.json) {
  console.log(JSON.stringify({
    blobs: boot.blobs.length, chunks: all.length, compressedBytes: compressed, uncompressedBytes: uncompressed, runs, passes,
    modes: threads.map((n) => {
      const w = median(walls.get(n)!);
      return { threads: n, label: label(n), walls: walls.get(n)!, medianSec: w, cpuSec: median(cpus.get(n)!), compressedMBps: compressed / 1e6 / w, uncompressedMBps: uncompressed / 1e6 / w };
    }),
  }));
  process.exit(0);
}
console.log(`- image: ${boot.blobs.length} blob(s), ${all.length} chunks, ${mb(compressed)} MB compressed, ${mb(uncompressed)} MB uncompressed; ` +
  `${big.length} chunks (${((100 * bigBytes) / uncompressed).toFixed(0)}% of the bytes) are >= ${minBytes >> 10} KiB and go to the pool`);
console.log(`- source reads of <= ${mb(batchBytes)} MB, ${inflight} in flight; pool: ${perWorker} jobs per worker at most; a run = ${passes} passes over the image, ` +
  `times per pass; ${runs} runs per mode, interleaved; median wall time; CPU = user + sys of all threads (median run)`);
console.log('');
console.log('| decode | wall s (runs) | median s | CPU s | MB/s compressed | MB/s uncompressed | speed vs main thread |');
console.log('|---|---|---|---|---|---|---|');
for (const n of threads) {
  const w = median(walls.get(n)!);
  console.log(`| ${label(n)} | ${walls.get(n)!.map((x) => x.toFixed(2)).join('/')} | ${w.toFixed(2)} | ${median(cpus.get(n)!).toFixed(2)} | ` +
    `${mb(compressed / w)} | ${mb(uncompressed / w)} | ${(base / w).toFixed(2)}x |`);
}
