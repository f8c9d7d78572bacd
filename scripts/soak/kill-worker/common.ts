// Shared by the halves of scripts/soak/kill-worker.sh: the run's configuration and the
// messages between the orchestrator (soak.ts) and its reader processes (reader.ts).

export interface SoakConfig {
  socket: string;
  /** Images as built (bootstrap + blobs/), and where they are mounted. */
  big: { image: string; mountpoint: string; source: string };
  tree: { image: string; mountpoint: string; source: string };
  /** make-data.js's output. */
  expected: string;
  kills: number;
  minGapMs: number;
  maxGapMs: number;
  /** A service not back this long after a kill fails the run. */
  backTimeoutMs: number;
  /** A read blocked longer than this (the supervisor's deadline + slack) fails the run. */
  slowMs: number;
  readers: { seq: number; random: number; walk: number };
  /** Fresh caches (unmount, delete the cache files, mount) at least every this many kills. */
  recycleEvery: number;
  /** drop_caches every this many kills (the supervisor then answers filled ranges itself). */
  dropEvery: number;
  seed: number;
  /** results.json goes here. */
  out: string;
}

export type ReaderKind = 'seq' | 'random' | 'walk';

export interface ReaderStats {
  kind: ReaderKind;
  index: number;
  ok: number;
  eio: number;
  wrong: number;
  /** Errors other than EIO (ENOENT, EINVAL, ...): never expected. */
  errors: number;
  bytesOk: number;
  maxMs: number;
  maxWhat: string;
  /** Reads that took longer than one second. */
  overOneSecond: number;
  passes: number;
}

export type ToReader = { cmd: 'pause' } | { cmd: 'resume' } | { cmd: 'stop' };

export type FromReader =
  | { ev: 'ready' }
  | { ev: 'paused' }
  | { ev: 'pass' }
  | { ev: 'wrong'; what: string }
  | { ev: 'error'; what: string }
  | { ev: 'slow'; what: string; ms: number; done: boolean }
  | { ev: 'final'; stats: ReaderStats };
