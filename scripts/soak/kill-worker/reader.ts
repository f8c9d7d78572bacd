// One reader process of scripts/soak/kill-worker.sh: reads through a lazy mount without
// pause while the worker is being killed, and classifies every read against the source
// bytes: right, EIO, or WRONG (anything else, zeros included). Kinds:
//   seq     the big file front to back in 256 KiB reads, again from the start at its end
//   random  the big file at random offsets, 1 B..128 KiB each
//   walk    every file of the tree in a shuffled order, each in one read, checked by sha256
// Reports to the orchestrator over the IPC channel (common.ts); a read still blocked after
// slowMs is reported while it blocks, so a hang is seen without waiting for it.
//
//   (forked by soak.js) reader.js <config.json> <kind> <index>
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { mulberry32 } from '../../../test/helpers/prng.js';
import type { FromReader, ReaderKind, ReaderStats, SoakConfig, ToReader } from './common.js';
import type { SoakExpected } from './make-data.js';

const [configPath, kindArg, indexArg] = process.argv.slice(2);
const cfg = JSON.parse(readFileSync(configPath!, 'utf8')) as SoakConfig;
const expected = JSON.parse(readFileSync(cfg.expected, 'utf8')) as SoakExpected;
const kind = kindArg as ReaderKind;
const index = Number(indexArg);
const rand = mulberry32(cfg.seed * 101 + index * 7 + kind.length);

const stats: ReaderStats = { kind, index, ok: 0, eio: 0, wrong: 0, errors: 0, bytesOk: 0, maxMs: 0, maxWhat: '', overOneSecond: 0, passes: 0 };
const send = (m: FromReader): void => { process.send!(m); };

let paused = false;
let stopping = false;
let wake: (() => void) | undefined;
process.on('message', (m: ToReader) => {
  if (m.cmd === 'pause') paused = true;
  if (m.cmd === 'resume') paused = false;
  if (m.cmd === 'stop') stopping = true;
  wake?.();
});
let finished = false;
process.on('disconnect', () => { if (!finished) process.exit(3); }); // the orchestrator died: stop reading

// The read in flight, for the watchdog.
let current: { what: string; started: number; reported: boolean } | undefined;
setInterval(() => {
  if (current && !current.reported && performance.now() - current.started > cfg.slowMs) {
    current.reported = true;
    send({ ev: 'slow', what: current.what, ms: Math.round(performance.now() - current.started), done: false });
  }
}, 250).unref();

type Outcome = { bytes: Buffer } | { error: NodeJS.ErrnoException };

async function timed(what: string, op: () => Promise<Buffer>): Promise<Outcome> {
  current = { what, started: performance.now(), reported: false };
  let outcome: Outcome;
  try {
    outcome = { bytes: await op() };
  } catch (error) {
    outcome = { error: error as NodeJS.ErrnoException };
  }
  const ms = performance.now() - current.started;
  if (ms > stats.maxMs) { stats.maxMs = ms; stats.maxWhat = what; }
  if (ms > 1000) stats.overOneSecond++;
  if (ms > cfg.slowMs && !current.reported) send({ ev: 'slow', what, ms: Math.round(ms), done: true });
  current = undefined;
  return outcome;
}

/** How `got` differs from `want`, for the report: where, how much, and whether it is zeros. */
function describe(got: Buffer, want: Buffer): string {
  const n = Math.min(got.length, want.length);
  let first = -1;
  let differing = 0;
  let zeroWhereData = 0;
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      if (first < 0) first = i;
      differing++;
      if (got[i] === 0) zeroWhereData++;
    }
  }
  return `length ${got.length} (want ${want.length}), ${differing} bytes differ from +${first}, ${zeroWhereData} of them zeros`;
}

function classify(what: string, o: Outcome, want: () => Buffer, sha?: string): void {
  if ('error' in o) {
    if (o.error.code === 'EIO') stats.eio++;
    else {
      stats.errors++;
      send({ ev: 'error', what: `${what}: ${o.error.code ?? ''} ${o.error.message}` });
    }
    return;
  }
  const right = sha !== undefined
    ? createHash('sha256').update(o.bytes).digest('hex') === sha
    : o.bytes.equals(want());
  if (right) {
    stats.ok++;
    stats.bytesOk += o.bytes.length;
    return;
  }
  stats.wrong++;
  send({ ev: 'wrong', what: `${what}: ${describe(o.bytes, want())}` });
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

function sourceBytes(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, offset);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

async function waitWhilePaused(handles: FileHandle[]): Promise<FileHandle[]> {
  if (!paused && !stopping) return handles;
  for (const h of handles) await h.close();
  if (stopping) return [];
  send({ ev: 'paused' });
  while (paused && !stopping) await new Promise<void>((r) => { wake = r; });
  return [];
}

async function runBig(sequential: boolean): Promise<void> {
  const path = join(cfg.big.mountpoint, expected.big.path);
  const source = join(cfg.big.source, expected.big.path);
  const size = expected.big.bytes;
  const step = 256 * 1024;
  let offset = 0;
  let handles: FileHandle[] = [];
  while (!stopping) {
    handles = await waitWhilePaused(handles);
    if (stopping) break;
    if (handles.length === 0) handles = [await open(path, 'r')];
    let length: number;
    if (sequential) {
      if (offset >= size) {
        offset = 0;
        stats.passes++;
        send({ ev: 'pass' });
      }
      length = Math.min(step, size - offset);
    } else {
      offset = Math.floor(rand() * size);
      length = Math.min(1 + Math.floor(rand() * 128 * 1024), size - offset);
    }
    const at = offset;
    const fh = handles[0]!;
    let o = await timed(`${path} @${at}+${length}`, () => readAt(fh, at, length));
    classify(`${path} @${at}+${length}`, o, () => sourceBytes(source, at, length));
    // An EIO is allowed; the same range read again after it must then be right (or EIO).
    if ('error' in o && o.error.code === 'EIO' && !stopping) {
      o = await timed(`${path} @${at}+${length} (retry)`, () => readAt(fh, at, length));
      classify(`${path} @${at}+${length} (retry)`, o, () => sourceBytes(source, at, length));
    }
    if (sequential) offset += length;
  }
  for (const h of handles) await h.close();
}

async function runWalk(): Promise<void> {
  const files = expected.tree;
  const order = files.map((_, i) => i);
  let pos = order.length;
  let handles: FileHandle[] = [];
  while (!stopping) {
    handles = await waitWhilePaused(handles);
    if (stopping) break;
    if (pos >= order.length) {
      if (stats.ok + stats.eio > 0) { stats.passes++; send({ ev: 'pass' }); }
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      pos = 0;
    }
    const f = files[order[pos++]!]!;
    const path = join(cfg.tree.mountpoint, f.path);
    const o = await timed(path, async () => {
      const fh = await open(path, 'r');
      try {
        return await readAt(fh, 0, f.bytes + 1); // one byte more: a longer file is wrong too
      } finally {
        await fh.close();
      }
    });
    classify(path, o, () => readFileSync(join(cfg.tree.source, f.path)), f.sha256);
  }
}

send({ ev: 'ready' });
if (kind === 'walk') await runWalk();
else await runBig(kind === 'seq');
send({ ev: 'final', stats });
finished = true;
process.disconnect();
