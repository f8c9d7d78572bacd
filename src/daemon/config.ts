// Daemon configuration: defaults, an optional JSON file, then command-line flags on top.
import { DEFAULT_READ_AHEAD_MAX } from '../storage/blob-cache.js';
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';
import { DEFAULT_READ_TIMEOUT_MS, FAILED_CHUNK_MS } from '../registry/time-ladder.js';
import { defaultDecodeThreads } from '../storage/decode-pool.js';
import type { ImageSpec } from './catalog.js';
import { DEFAULT_SOCKET, isModeChoice, type ModeChoice } from './defaults.js';

export interface DaemonConfig {
  cacheDir: string;
  socketPath: string;
  devicePath: string;
  tag?: string;
  /**
   * Largest read-ahead window in compressed bytes: a sequential reader's window opens small
   * and doubles up to this (0: no read-ahead).
   */
  amplifyBytes: number;
  /** Source reads in flight per source at most (the fill scheduler's connection budget). */
  fetchBudget: number;
  /** READs served at once. */
  concurrency: number;
  /**
   * A READ not filled in this time is completed unfilled (its reader gets EIO). Every other
   * timeout (retry budget, supervisor deadline, ...) derives from it: registry/time-ladder.ts.
   */
  readTimeoutMs: number;
  /** A chunk whose fill timed out is refused at once for this long, then fetched again. */
  failedChunkMs: number;
  /**
   * Worker threads decompressing and verifying large chunks, shared by all blobs (default
   * defaultDecodeThreads(): none on 2 cores or fewer, else min(4, cores)); 0 decodes on the
   * main thread.
   */
  decodeThreads: number;
  images: ImageSpec[];
  /** Front ends to serve: auto (every one this kernel and cache directory allow), or one. */
  mode: ModeChoice;
  /** Registry mirrors by registry host (as in references: docker.io, 127.0.0.1:5000), tried in order before it. */
  mirrors?: Record<string, string[]>;
  /** containerd's certs.d directory of hosts.toml files (default /etc/containerd/certs.d). */
  hostsDir?: string;
  /**
   * How long a blob range that failed for good (not found, refused, bytes that keep failing
   * verification) is answered with its error without asking the registry again.
   */
  failureMemoMs: number;
  /** Cap on a bootstrap pulled by reference (uncompressed, and its layer); default 1 GiB. */
  maxBootstrapBytes?: number;
}

/** `--mirror host=url` flags, repeated, as the config's mirrors (in the order given). */
export function parseMirrorFlags(flags: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of flags) {
    const i = f.indexOf('=');
    const host = f.slice(0, i);
    const url = f.slice(i + 1);
    if (i <= 0 || !/^https?:\/\/[^/]/.test(url)) throw new InvalidArgumentError(`--mirror ${f}: expected <registry host>=<http(s) URL>, e.g. docker.io=http://127.0.0.1:8080`);
    (out[host] ??= []).push(url);
  }
  return out;
}

export { DEFAULT_SOCKET };

export function defaults(): Omit<DaemonConfig, 'cacheDir'> {
  return { socketPath: DEFAULT_SOCKET, devicePath: '/dev/cachefiles', amplifyBytes: DEFAULT_READ_AHEAD_MAX, fetchBudget: 8, failureMemoMs: 30_000, concurrency: 16, readTimeoutMs: DEFAULT_READ_TIMEOUT_MS, failedChunkMs: FAILED_CHUNK_MS, decodeThreads: defaultDecodeThreads(), images: [], mode: 'auto' };
}

export async function loadConfig(file: string | undefined, flags: Partial<DaemonConfig>): Promise<DaemonConfig> {
  let fromFile: Partial<DaemonConfig> = {};
  if (file) {
    try {
      fromFile = JSON.parse(await readFile(file, 'utf8')) as Partial<DaemonConfig>;
    } catch (err) {
      throw new InvalidArgumentError(`config ${file}: ${(err as Error).message}`);
    }
  }
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const cfg = { ...defaults(), ...fromFile, ...defined } as DaemonConfig;
  if (!cfg.cacheDir) throw new InvalidArgumentError('a cache directory is required (--cache-dir or "cacheDir" in the config)');
  for (const k of ['amplifyBytes', 'fetchBudget', 'concurrency', 'readTimeoutMs', 'decodeThreads', 'failureMemoMs', 'failedChunkMs'] as const) {
    const min = k === 'amplifyBytes' || k === 'decodeThreads' || k === 'failureMemoMs' || k === 'failedChunkMs' ? 0 : 1;
    if (!Number.isInteger(cfg[k]) || cfg[k] < min) throw new InvalidArgumentError(`${k} must be ${min ? 'a positive' : 'a non-negative'} integer`);
  }
  if (cfg.mirrors !== undefined) {
    const ok = typeof cfg.mirrors === 'object' && cfg.mirrors !== null && !Array.isArray(cfg.mirrors)
      && Object.values(cfg.mirrors).every((v) => Array.isArray(v) && v.every((u) => typeof u === 'string' && /^https?:\/\/[^/]/.test(u)));
    if (!ok) throw new InvalidArgumentError('mirrors must map registry hosts to lists of http(s) URLs, e.g. {"docker.io": ["http://127.0.0.1:8080"]}');
  }
  if (cfg.maxBootstrapBytes !== undefined && (!Number.isSafeInteger(cfg.maxBootstrapBytes) || cfg.maxBootstrapBytes < 4096)) {
    throw new InvalidArgumentError('maxBootstrapBytes must be an integer of at least 4096');
  }
  if (!isModeChoice(cfg.mode)) throw new InvalidArgumentError(`mode must be auto, fanotify or cachefiles, not "${String(cfg.mode)}"`);
  return cfg;
}
