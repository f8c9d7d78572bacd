// Where an image's blobs come from, as data (what the catalog keys sources by and the daemon's
// state file keeps), and the one factory that opens a source from it. Remembering failures
// and counting wrap the source here, outside it, so every kind of source behaves (and is
// counted) alike; a registry source retries inside its client, in the one retry loop
// (registry/retry-policy.ts). Credentials may be part of a spec; they never reach a description.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { RegistryClient, type RegistryOptions } from '../registry/client.js';
import type { Credentials } from '../registry/credentials.js';
import { isRetryable } from '../registry/errors.js';
import type { RetryPolicy } from '../registry/retry-policy.js';
import type { TimeLadder } from '../registry/time-ladder.js';
import { type BlobSource, SourceCounters } from './blob-source.js';
import { CountingSource } from './counting-source.js';
import { FailureMemoSource } from './failure-memo-source.js';
import { LocalDirSource } from './local-dir-source.js';
import { RegistryBlobSource } from './registry-blob-source.js';

export type SourceSpec =
  | { kind: 'local'; dir: string }
  | {
    kind: 'registry'; registry: string; repository: string; insecure?: boolean; caFile?: string;
    /** containerd's certs.d for this source, when not the daemon's (the snapshotter's --hosts-dir). */
    hostsDir?: string;
    /** Kept in memory and in the daemon's 0600 state file only; never echoed. */
    credentials?: Credentials;
  };

export interface SourceDeps {
  /** Mirror endpoints by registry host, tried before the origin (the daemon's config). */
  mirrors?: Record<string, string[]>;
  /** containerd certs.d directory (hosts.toml), when not the default. */
  hostsDir?: string;
  log?: Logger;
  /** The daemon's read timeout: the retry policy and every deadline derive from it. */
  readTimeoutMs?: number;
  /** Overrides the retry policy's numbers (tests). */
  retry?: Partial<RetryPolicy>;
  /** Overrides numbers of the time ladder (tests). */
  timeouts?: Partial<Omit<TimeLadder, 'readTimeoutMs'>>;
  /** How long a permanent failure is remembered (default 30 s). */
  failureMemoMs?: number;
}

export interface OpenedSource {
  source: BlobSource;
  counters: SourceCounters;
}

/** For logs, errors and the API: where the blobs come from, never with credentials. */
export function describeSource(spec: SourceSpec): string {
  return spec.kind === 'local' ? resolve(spec.dir) : `${spec.registry}/${spec.repository}`;
}

/**
 * What tells two specs' sources apart: the description, plus for a registry the options a
 * client is made with (a digest of the credentials, never the credentials).
 */
export function sourceKey(spec: SourceSpec): string {
  if (spec.kind === 'local') return `local\0${resolve(spec.dir)}`;
  const creds = spec.credentials ? createHash('sha256').update(JSON.stringify(spec.credentials)).digest('hex').slice(0, 16) : '';
  return `registry\0${spec.registry}\0${spec.repository}\0${spec.insecure ? 1 : 0}\0${spec.caFile ?? ''}\0${creds}${spec.hostsDir ? `\0${resolve(spec.hostsDir)}` : ''}`;
}

/**
 * Registry client options for `spec` under the daemon's settings (mirrors, hosts.toml, read
 * timeout, retry policy, log): every registry call the daemon makes (pulls, blob ranges)
 * follows the same policy and logs its retries at warn.
 */
export function registryOptions(spec: Extract<SourceSpec, { kind: 'registry' }>, deps: SourceDeps): RegistryOptions {
  const mirrors = deps.mirrors?.[spec.registry];
  const what = describeSource(spec);
  return {
    ...(spec.credentials ? { credentials: spec.credentials } : {}),
    ...(spec.insecure ? { insecure: true } : {}),
    ...(spec.caFile ? { caFile: spec.caFile } : {}),
    ...(mirrors?.length ? { mirrors } : {}),
    ...(spec.hostsDir ?? deps.hostsDir ? { hostsDir: spec.hostsDir ?? deps.hostsDir } : {}),
    ...(deps.log ? { log: deps.log } : {}),
    ...(deps.readTimeoutMs !== undefined ? { readTimeoutMs: deps.readTimeoutMs } : {}),
    ...(deps.retry ? { retry: deps.retry } : {}),
    ...(deps.timeouts ? { timeouts: deps.timeouts } : {}),
    onRetry: (call, err, attempt, delayMs) => deps.log?.warn({ source: what, call, attempt, delayMs, err: { code: (err as { code?: string }).code, message: (err as Error).message } }, 'registry call failed; retrying'),
  };
}

/**
 * Opens the source a spec describes. A local directory counts its own reads (it keeps a
 * synchronous fast path no wrapper should slow); a registry repository gets a client of its
 * own (which retries), then failure memory and counting around it.
 */
export function openSource(spec: SourceSpec, deps: SourceDeps = {}): OpenedSource {
  if (spec.kind === 'local') {
    const local = new LocalDirSource(resolve(spec.dir));
    return { source: local, counters: local.counters };
  }
  const client = new RegistryClient(registryOptions(spec, deps));
  const raw = new RegistryBlobSource(client, spec.registry, spec.repository, { ownsClient: true });
  const counted = new CountingSource(raw);
  const source = new FailureMemoSource(counted, { isRetryable, ...(deps.failureMemoMs !== undefined ? { permanentMs: deps.failureMemoMs } : {}) });
  return { source, counters: counted.counters };
}
