// Guest half of scripts/bench/vm-read.sh: runs inside the test VM (vm/run.sh), where the kernel
// has on-demand cachefiles. Reads the same image several ways and writes the measurements as
// JSON (results.json in the share):
//   fscache cold   `ondine daemon` + `ondine mount` (EROFS over fscache), first read
//   fscache warm   the same mount after drop_caches: data from the cache files
//   C daemon cold  the same kernel path served by cdaemon.c (no decompression/verification)
//   native         the same bootstrap over the unpacked (uncompressed) blob, loop devices
//   erofsfuse      the same bootstrap and unpacked blob, served from userspace over FUSE
// Cold runs happen once (there is one first read); the warm, native and FUSE runs are
// repeated, interleaved, and the best of each is reported, because other load on the host
// slows a TCG guest down unevenly. Every path's bytes are checked against the digests the
// host computed: a mismatch fails the run, whatever the timings.
//
//   node dist/scripts/bench/vm-read/guest.js <work>/config.json
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { basename, join } from 'node:path';
import { DaemonClient } from '../../../src/daemon/client.js';
import { parseBootstrap } from '../../../src/format/bootstrap.js';
import { loadBlobChunkMap } from '../../../src/storage/blob-chunk-map.js';
import { ChunkReader } from '../../../src/storage/chunk-reader.js';
import { isNativeBlake3 } from '../../../src/storage/digests.js';
import { LocalDirSource } from '../../../src/storage/local-dir-source.js';
import type { Expected } from './common.js';
import { hashFile, mounted, prime, randomReads, sameBlocks, seqRead, treeHash } from '../lib/reads.js';

export interface GuestConfig {
  repo: string;
  /** Host paths (visible in the guest through the read-only root and the /tmp overlay). */
  src: string;
  expected: Expected;
  image: { bootstrap: string; blobDir: string; unpacked: string };
  /** A second image of the big file alone with small chunks, for one more cold random row. */
  small?: { bootstrap: string; blobDir: string; chunkSize: number };
  erofsfuse: string;
  /** The minimal C daemon (cdaemon.c), compiled on the host; absent when no compiler was found. */
  cdaemon?: string;
  reads: number;
  maxRandomSeconds: number;
  /** Repetitions of the warm / native / FUSE runs (best reported). */
  reps: number;
  /** Where results.json, logs and profiles go (the writable share). */
  out: string;
  profile: boolean;
  /** Extra `ondine daemon` flags. */
  daemonArgs: string[];
  /** Parts to run (default all): fscache, random, random-small, c, native, fuse. */
  parts?: string[];
}

export interface DaemonStats { reads: number; fetchedBytes: number; fetches: number }
export interface DiskStats { reads: number; readBytes: number }
export interface Measure {
  sec: number;
  bytes?: number;
  reads?: number;
  ok: boolean;
  daemon?: DaemonStats;
  /** Reads the guest's disk (cache files, unpacked blob) served during the run. */
  disk?: DiskStats;
  /** When repeated: every repetition's headline figure (seconds; reads/s for random reads). */
  all?: number[];
}
export interface Row { seq?: Measure; walk?: Measure; random?: Measure }
export interface Results {
  kernel: string;
  started: string;
  cpus: number;
  parts: string[];
  reps: number;
  /** Whether blake3 ran natively (else the portable @noble/hashes code, ~100x slower). */
  nativeBlake3: boolean;
  blobCompressedBytes: number;
  /** The compressed blob read sequentially from the guest's tmpfs (the daemon's source). */
  sourceRead: { bytes: number; sec: number };
  /** The same blob read, decompressed and verified by ChunkReader on one JS thread, no kernel. */
  decode?: { bytes: number; uncompressed: number; sec: number };
  rows: Record<string, Row>;
  /** What the daemon did during all warm runs (should be nothing). */
  warmDaemon?: DaemonStats;
  failures: string[];
}

const RUN = '/run/vmread';
const CACHE_ROOT = process.env.ONDINE_CACHE_DIR ?? '/var/cache/ondine';
const BUSYBOX = '/bin/busybox';

const log = (msg: string) => process.stdout.write(`# ${msg}\n`);
const now = () => process.hrtime.bigint();
const secs = (t0: bigint) => Number(now() - t0) / 1e9;

function bb(args: string[], what: string): string {
  const r = spawnSync(BUSYBOX, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what}: busybox ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function dropCaches(): void {
  bb(['sync'], 'sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

function diskStats(): DiskStats {
  // /sys/block/<dev>/stat: reads completed, reads merged, sectors read, ...
  const f = readFileSync('/sys/block/vda/stat', 'utf8').trim().split(/\s+/).map(Number);
  return { reads: f[0]!, readBytes: f[2]! * 512 };
}

/** Reads every file of the tree with a C reader (busybox find + cat): the file system's cost, not a JS loop's. */
function walk(dir: string): { sec: number } {
  const t0 = now();
  bb(['sh', '-c', 'find "$1" -type f -exec cat {} + >/dev/null', 'walk', dir], `walk ${dir}`);
  return { sec: secs(t0) };
}

class Daemon {
  private constructor(readonly proc: ChildProcess, readonly client: DaemonClient, readonly socket: string, readonly exited: Promise<number | null>) {}

  static async start(cfg: GuestConfig, name: string, extra: string[]): Promise<Daemon> {
    const cacheDir = join(CACHE_ROOT, name);
    mkdirSync(cacheDir, { recursive: true });
    const socket = join(RUN, `${name}.sock`);
    const logFd = openSync(join(cfg.out, `daemon-${name}.log`), 'a');
    const node = cfg.profile ? ['--cpu-prof', '--cpu-prof-dir', join(cfg.out, 'prof'), '--cpu-prof-name', `daemon-${name}.cpuprofile`] : [];
    const proc = spawn(process.execPath, [...node, join(cfg.repo, 'dist/src/cli/main.js'), 'daemon', '--foreground', '--cache-dir', cacheDir, '--socket', socket, ...extra],
      { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const client = new DaemonClient(socket);
    await client.waitUntilUp(() => proc.exitCode, 30_000, `see ${cfg.out}/daemon-${name}.log`);
    return new Daemon(proc, client, socket, exited);
  }

  mount(cfg: GuestConfig, bootstrap: string, blobDir: string, mnt: string, fsid: string): void {
    mkdirSync(mnt, { recursive: true });
    const r = spawnSync(process.execPath, [join(cfg.repo, 'dist/src/cli/main.js'), 'mount', bootstrap, mnt, '--socket', this.socket, '--fsid', fsid, '--blobs', blobDir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ondine mount ${bootstrap} ${mnt} failed (${r.status}): ${r.stderr}`);
  }

  async stats(): Promise<DaemonStats> {
    const s = await this.client.stats() as { frontend?: { reads: number }; sources: Record<string, Record<string, { bytes: number; requests: number }>> };
    let fetchedBytes = 0;
    let fetches = 0;
    for (const dir of Object.values(s.sources)) for (const v of Object.values(dir)) { fetchedBytes += v.bytes; fetches += v.requests; }
    return { reads: s.frontend?.reads ?? 0, fetchedBytes, fetches };
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
  }
}

const delta = (a: DaemonStats, b: DaemonStats): DaemonStats => ({ reads: b.reads - a.reads, fetchedBytes: b.fetchedBytes - a.fetchedBytes, fetches: b.fetches - a.fetches });
const diskDelta = (a: DiskStats, b: DiskStats): DiskStats => ({ reads: b.reads - a.reads, readBytes: b.readBytes - a.readBytes });

async function main(): Promise<void> {
  // This driver blocks its event loop for long stretches (sync reads, spawnSync): a kept-alive
  // API connection the daemon closed meanwhile would be reused and fail with EPIPE.
  http.globalAgent = new http.Agent({ keepAlive: false });
  const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as GuestConfig;
  const want = (part: string) => !cfg.parts?.length || cfg.parts.includes(part);
  const exp = cfg.expected;
  mkdirSync(cfg.out, { recursive: true });
  if (cfg.profile) mkdirSync(join(cfg.out, 'prof'), { recursive: true });
  const results: Results = {
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), started: new Date().toISOString(),
    cpus: Number(bb(['nproc'], 'nproc').trim()),
    parts: cfg.parts?.length ? cfg.parts : ['fscache', 'random', 'random-small', 'c', 'native', 'fuse'],
    reps: cfg.reps, nativeBlake3: isNativeBlake3(), blobCompressedBytes: 0, sourceRead: { bytes: 0, sec: 0 }, rows: {}, failures: [],
  };
  const row = (name: string) => (results.rows[name] ??= {});
  const check = (name: string, what: string, ok: boolean) => {
    if (!ok) { results.failures.push(`${name}: ${what} has the wrong bytes`); log(`FAIL ${name}: ${what} has the wrong bytes`); }
    return ok;
  };
  const save = () => writeFileSync(join(cfg.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  const mnt = (n: string) => join(RUN, 'mnt', n);
  const reference = join(cfg.src, exp.big.path);

  // ---- sources --------------------------------------------------------------------------------
  // The daemon's source: the compressed blobs on the guest's tmpfs, so the fill is not a 9p benchmark.
  const blobs = join(RUN, 'blobs');
  mkdirSync(blobs, { recursive: true });
  let t0 = now();
  const blobIds = readdirSync(cfg.image.blobDir);
  for (const id of blobIds) copyFileSync(join(cfg.image.blobDir, id), join(blobs, id));
  const smallBlobs = join(RUN, 'blobs-small');
  const small = cfg.small && (want('random') || want('random-small')) ? cfg.small : undefined;
  if (small) {
    mkdirSync(smallBlobs, { recursive: true });
    for (const id of readdirSync(small.blobDir)) copyFileSync(join(small.blobDir, id), join(smallBlobs, id));
  }
  // Native and FUSE read the uncompressed blob from the ext4 disk that also holds the cache files.
  const nativeDir = join(CACHE_ROOT, 'native');
  mkdirSync(nativeDir, { recursive: true });
  const nBoot = join(nativeDir, 'bootstrap');
  const nBlob = join(nativeDir, basename(cfg.image.unpacked));
  const cdaemon = want('c') ? cfg.cdaemon : undefined;
  if (want('native') || want('fuse') || cdaemon) {
    copyFileSync(cfg.image.bootstrap, nBoot);
    copyFileSync(cfg.image.unpacked, nBlob);
  }
  // The C daemon's source: the unpacked blob on tmpfs, like the Ondine daemon's compressed one.
  const flatBlob = join(RUN, 'flat', basename(cfg.image.unpacked));
  if (cdaemon) {
    mkdirSync(join(RUN, 'flat'), { recursive: true });
    copyFileSync(nBlob, flatBlob);
  }
  log(`copied the blobs to tmpfs and the unpacked blob to ext4 in ${secs(t0).toFixed(1)} s`);

  // Source read speed: the compressed bytes the daemon will read, from where it reads them.
  const blobPath = join(blobs, blobIds[0]!);
  let best = { bytes: 0, sec: Infinity };
  for (let i = 0; i < 3; i++) {
    const r = seqRead(blobPath);
    if (r.sec < best.sec) best = r;
  }
  results.sourceRead = best;
  results.blobCompressedBytes = best.bytes;
  log(`source read (tmpfs): ${(best.bytes / 1e6 / best.sec).toFixed(0)} MB/s`);

  if (want('fscache')) {
    // The CPU ceiling of a fill in this VM: fetch + decompress + verify every chunk of the blob
    // on one JS thread, with no kernel round trips and no writes.
    const b = parseBootstrap(readFileSync(cfg.image.bootstrap));
    const source = new LocalDirSource(blobs);
    const map = await loadBlobChunkMap(source, b.blobs[0]!, b.chunks);
    const reader = new ChunkReader(source, map);
    const ordered = [...map.chunks].sort((x, y) => x.compressedOffset - y.compressedOffset);
    let compressed = 0;
    let uncompressed = 0;
    t0 = now();
    for (let i = 0; i < ordered.length; i += 8) {
      const batch = ordered.slice(i, i + 8);
      await reader.fetch(batch, ({ chunk }) => { compressed += chunk.compressedSize; uncompressed += chunk.uncompressedSize; });
    }
    results.decode = { bytes: compressed, uncompressed, sec: secs(t0) };
    await source.close();
    log(`decode ceiling (fetch + zstd + blake3, one thread): ${(compressed / 1e6 / results.decode.sec).toFixed(1)} MB/s compressed, ${(uncompressed / 1e6 / results.decode.sec).toFixed(1)} MB/s uncompressed`);
    save();
  }

  const daemon = await Daemon.start(cfg, 'fscache', cfg.daemonArgs);
  const cleanup: Array<() => void> = [];
  try {
    // ---- fscache cold: the first read of each workload ---------------------------------------
    const fsDir = mnt('fscache');
    if (want('fscache')) {
      daemon.mount(cfg, cfg.image.bootstrap, blobs, fsDir, 'vmread-main');
      const name = 'fscache cold';
      const big = join(fsDir, exp.big.path);
      const tree = join(fsDir, exp.tree.path);
      dropCaches();
      let s0 = await daemon.stats();
      const seq = seqRead(big);
      let s1 = await daemon.stats();
      row(name).seq = { sec: seq.sec, bytes: seq.bytes, ok: check(name, 'sequential read', seq.bytes === exp.big.bytes && hashFile(big) === exp.big.sha256), daemon: delta(s0, s1) };
      log(`${name} seq: ${seq.sec.toFixed(2)} s, ${(seq.bytes / 1e6 / seq.sec).toFixed(1)} MB/s, READs ${s1.reads - s0.reads}, fetched ${((s1.fetchedBytes - s0.fetchedBytes) / 1e6).toFixed(1)} MB`);
      save();
      dropCaches();
      s0 = await daemon.stats();
      const w = walk(tree);
      s1 = await daemon.stats();
      row(name).walk = { sec: w.sec, ok: check(name, 'tree walk', treeHash(tree).digest === exp.tree.digest), daemon: delta(s0, s1) };
      log(`${name} walk: ${w.sec.toFixed(2)} s, READs ${s1.reads - s0.reads}, fetched ${((s1.fetchedBytes - s0.fetchedBytes) / 1e6).toFixed(1)} MB`);
      save();
    }

    // ---- fscache cold random reads: fresh fsids, so fresh (empty) cache files -----------------
    const coldRandom = async (name: string, bootstrap: string, blobDir: string, fsid: string) => {
      daemon.mount(cfg, bootstrap, blobDir, mnt(fsid), fsid);
      const path = join(mnt(fsid), exp.big.path);
      prime(mnt(fsid), path);
      dropCaches();
      const s0 = await daemon.stats();
      const r = randomReads(path, cfg.reads, cfg.maxRandomSeconds);
      const s1 = await daemon.stats();
      row(name).random = { sec: r.sec, reads: r.reads, ok: check(name, 'random reads', sameBlocks(reference, r.offsets, r.data)), daemon: delta(s0, s1) };
      log(`${name} random: ${r.reads} reads in ${r.sec.toFixed(2)} s = ${(r.reads / r.sec).toFixed(0)} reads/s, READs ${s1.reads - s0.reads}, fetched ${((s1.fetchedBytes - s0.fetchedBytes) / 1e6).toFixed(1)} MB`);
      save();
    };
    if (want('random')) await coldRandom('fscache cold', cfg.image.bootstrap, blobs, 'vmread-rand');
    if (small && (want('random') || want('random-small'))) await coldRandom(`fscache cold, ${small.chunkSize >> 10} KiB chunks`, small.bootstrap, smallBlobs, 'vmread-rand-small');

    // ---- warm fscache, native EROFS, erofsfuse: repeated, interleaved --------------------------
    const paths: Array<{ name: string; dir: string; daemon?: boolean }> = [];
    if (want('fscache')) paths.push({ name: 'fscache warm', dir: fsDir, daemon: true });
    if (want('native')) {
      mkdirSync(mnt('native'), { recursive: true });
      const loops: string[] = [];
      const losetup = (file: string) => {
        const dev = bb(['losetup', '-f'], 'losetup -f').trim();
        bb(['losetup', '-r', dev, file], `losetup ${dev} ${file}`);
        loops.push(dev);
        return dev;
      };
      const bootDev = losetup(nBoot);
      const blobDev = losetup(nBlob);
      bb(['mount', '-t', 'erofs', '-o', `ro,device=${blobDev}`, bootDev, mnt('native')], 'native EROFS mount');
      cleanup.push(() => {
        spawnSync(BUSYBOX, ['umount', mnt('native')]);
        for (const d of loops) spawnSync(BUSYBOX, ['losetup', '-d', d]);
      });
      paths.push({ name: 'native EROFS', dir: mnt('native') });
    }
    if (want('fuse')) {
      mkdirSync(mnt('fuse'), { recursive: true });
      if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing in the guest');
      const r = spawnSync(cfg.erofsfuse, [`--device=${nBlob}`, nBoot, mnt('fuse')], { encoding: 'utf8' });
      if (r.status !== 0 || !mounted(mnt('fuse'))) throw new Error(`erofsfuse failed (${r.status}): ${r.stderr ?? r.error}`);
      cleanup.push(() => { spawnSync(BUSYBOX, ['umount', mnt('fuse')]); });
      paths.push({ name: 'erofsfuse', dir: mnt('fuse') });
    }
    // Each workload keeps its best repetition (the one least slowed by other load on the
    // host); correctness was checked on the first.
    const keep = (m: Measure | undefined, fresh: Omit<Measure, 'all'>): Measure => {
      const figure = (x: Omit<Measure, 'all'>) => (x.reads ? x.reads / x.sec : x.sec);
      const better = !m || (fresh.reads ? figure(fresh) > figure(m) : fresh.sec < m.sec);
      const all = [...(m?.all ?? []), figure(fresh)];
      return better ? { ...fresh, ok: m ? m.ok && fresh.ok : fresh.ok, all } : { ...m!, ok: m!.ok && fresh.ok, all };
    };
    let warmDaemon: DaemonStats = { reads: 0, fetchedBytes: 0, fetches: 0 };
    for (let rep = 0; rep < cfg.reps; rep++) {
      for (const p of paths) {
        const big = join(p.dir, exp.big.path);
        const tree = join(p.dir, exp.tree.path);
        const verify = rep === 0;
        const s0 = p.daemon ? await daemon.stats() : undefined;
        dropCaches();
        let d0 = diskStats();
        const seq = seqRead(big);
        let d1 = diskStats();
        const seqOk = !verify || check(p.name, 'sequential read', seq.bytes === exp.big.bytes && hashFile(big) === exp.big.sha256);
        row(p.name).seq = keep(row(p.name).seq, { sec: seq.sec, bytes: seq.bytes, ok: seqOk, disk: diskDelta(d0, d1) });
        dropCaches();
        d0 = diskStats();
        const w = walk(tree);
        d1 = diskStats();
        const walkOk = !verify || check(p.name, 'tree walk', treeHash(tree).digest === exp.tree.digest);
        row(p.name).walk = keep(row(p.name).walk, { sec: w.sec, ok: walkOk, disk: diskDelta(d0, d1) });
        dropCaches();
        d0 = diskStats();
        const r = randomReads(big, cfg.reads, cfg.maxRandomSeconds);
        d1 = diskStats();
        const rOk = !verify || check(p.name, 'random reads', sameBlocks(reference, r.offsets, r.data));
        row(p.name).random = keep(row(p.name).random, { sec: r.sec, reads: r.reads, ok: rOk, disk: diskDelta(d0, d1) });
        if (s0) {
          // Warm means no daemon work at all: count the READs it got while these runs went on.
          const d = delta(s0, await daemon.stats());
          warmDaemon = { reads: warmDaemon.reads + d.reads, fetchedBytes: warmDaemon.fetchedBytes + d.fetchedBytes, fetches: warmDaemon.fetches + d.fetches };
          results.warmDaemon = warmDaemon;
        }
        log(`${p.name} (run ${rep + 1}/${cfg.reps}): seq ${seq.sec.toFixed(2)} s (${(seq.bytes / 1e6 / seq.sec).toFixed(1)} MB/s), walk ${w.sec.toFixed(2)} s, random ${(r.reads / r.sec).toFixed(0)} reads/s`);
        save();
      }
    }
  } finally {
    for (const c of cleanup.reverse()) c();
    for (const m of readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(join(RUN, 'mnt')))) {
      spawnSync(BUSYBOX, ['umount', m!]);
    }
    await daemon.stop();
  }

  // ---- the C daemon: same kernel path, no decompression or verification ----------------------
  if (cdaemon) {
    const cache = join(CACHE_ROOT, 'cdaemon');
    mkdirSync(cache, { recursive: true });
    const blobTag = basename(cfg.image.unpacked);
    const logFd = openSync(join(cfg.out, 'cdaemon.log'), 'a');
    const proc = spawn(cdaemon, [cache, `vmread-c=${nBoot}`, `vmread-c-rand=${nBoot}`, `${blobTag}=${flatBlob}`], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    await new Promise((r) => setTimeout(r, 500));
    if (proc.exitCode !== null) throw new Error(`the C daemon exited (${proc.exitCode}); see ${cfg.out}/cdaemon.log`);
    const cmount = (fsid: string) => {
      mkdirSync(mnt(fsid), { recursive: true });
      bb(['mount', '-t', 'erofs', '-o', `ro,fsid=${fsid}`, 'none', mnt(fsid)], `mount fsid=${fsid}`);
      return mnt(fsid);
    };
    const name = 'C daemon cold';
    try {
      const dir = cmount('vmread-c');
      const big = join(dir, exp.big.path);
      const tree = join(dir, exp.tree.path);
      dropCaches();
      const seq = seqRead(big);
      row(name).seq = { sec: seq.sec, bytes: seq.bytes, ok: check(name, 'sequential read', seq.bytes === exp.big.bytes && hashFile(big) === exp.big.sha256) };
      log(`${name} seq: ${seq.sec.toFixed(2)} s, ${(seq.bytes / 1e6 / seq.sec).toFixed(1)} MB/s`);
      dropCaches();
      const w = walk(tree);
      row(name).walk = { sec: w.sec, ok: check(name, 'tree walk', treeHash(tree).digest === exp.tree.digest) };
      log(`${name} walk: ${w.sec.toFixed(2)} s`);
      const rdir = cmount('vmread-c-rand');
      const rbig = join(rdir, exp.big.path);
      prime(rdir, rbig);
      dropCaches();
      const r = randomReads(rbig, cfg.reads, cfg.maxRandomSeconds);
      row(name).random = { sec: r.sec, reads: r.reads, ok: check(name, 'random reads', sameBlocks(reference, r.offsets, r.data)) };
      log(`${name} random: ${r.reads} reads in ${r.sec.toFixed(2)} s = ${(r.reads / r.sec).toFixed(0)} reads/s`);
      save();
    } finally {
      for (const m of [mnt('vmread-c'), mnt('vmread-c-rand')]) if (mounted(m)) spawnSync(BUSYBOX, ['umount', m]);
      proc.kill('SIGTERM');
      await exited;
    }
  }

  save();
  log(results.failures.length ? `${results.failures.length} failure(s)` : 'all paths read the right bytes');
  process.exitCode = results.failures.length ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`vm-read guest: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 3;
});
