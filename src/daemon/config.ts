// Daemon configuration: defaults, an optional JSON file, then command-line flags on top.
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../errors.js';
import { defaultDecodeThreads } from '../storage/decode-pool.js';
import type { ImageSpec } from './catalog.js';
import { isModeChoice, type ModeChoice } from './probe.js';

export interface DaemonConfig {
  cacheDir: string;
  socketPath: string;
  devicePath: string;
  tag?: string;
  /** Read-ahead window in compressed bytes, used when a cache object is read sequentially. */
  amplifyBytes: number;
  /** READs served at once. */
  concurrency: number;
  /** A READ not filled in this time is completed unfilled (its reader gets EIO). */
  readTimeoutMs: number;
  /**
   * Worker threads decompressing and verifying large chunks, shared by all blobs (default
   * min(4, cores)); 0 decodes on the main thread.
   */
  decodeThreads: number;
  images: ImageSpec[];
  /** Front ends to serve: auto (every one this kernel and cache directory allow), or one. */
  mode: ModeChoice;
}

export const DEFAULT_SOCKET = '/run/ondine/ondine.sock';

export function defaults(): Omit<DaemonConfig, 'cacheDir'> {
  return { socketPath: DEFAULT_SOCKET, devicePath: '/dev/cachefiles', amplifyBytes: 1 << 20, concurrency: 16, readTimeoutMs: 30_000, decodeThreads: defaultDecodeThreads(), images: [], mode: 'auto' };
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
  for (const k of ['amplifyBytes', 'concurrency', 'readTimeoutMs', 'decodeThreads'] as const) {
    const min = k === 'amplifyBytes' || k === 'decodeThreads' ? 0 : 1;
    if (!Number.isInteger(cfg[k]) || cfg[k] < min) throw new InvalidArgumentError(`${k} must be ${min ? 'a positive' : 'a non-negative'} integer`);
  }
  if (!isModeChoice(cfg.mode)) throw new InvalidArgumentError(`mode must be auto, fanotify or cachefiles, not "${String(cfg.mode)}"`);
  return cfg;
}
