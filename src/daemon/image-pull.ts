// Mount by reference, daemon side: resolve a reference to the manifest of this platform,
// refuse an image that is not lazy (a plain OCI image, or one without a bootstrap layer),
// fetch the bootstrap layer, verify it against its digest, take `image/image.boot` out of it
// and store it in the cache directory. The blobs are left in the registry: the mount reads
// them through a registry source (source-spec.ts). A bootstrap layer pulled before is not
// fetched again: <cache>/ondine/bootstraps/by-layer/<layer hex> names the stored bootstrap,
// which is checked against its own sha256 (its file name) when used.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { OndineError, InvalidArgumentError } from '../errors.js';
import { RegistryClient } from '../registry/client.js';
import { parsePlatform } from '../registry/platform.js';
import type { Credentials } from '../registry/credentials.js';
import { parseReference, type ImageReference } from '../registry/reference.js';
import { findBootstrapLayer, isPlainOci, extractBootstrap } from '../oci/nydus-image.js';
import { CacheDir } from '../storage/cache-dir.js';
import { registryOptions, type SourceDeps, type SourceSpec } from '../storage/source-spec.js';

/** What the API takes to mount or register an image by reference. */
export interface PullRequest {
  ref: string;
  credentials?: Credentials;
  insecure?: boolean;
  caFile?: string;
  /** os/arch[/variant], e.g. linux/arm64/v8 (default: this machine's). */
  platform?: string;
  /** The pull's total deadline (the CLI's `--timeout`); default: the time ladder's mount deadline. */
  deadlineMs?: number;
}

/** A deadline asked for over the API is at most this (an hour). */
export const MAX_PULL_DEADLINE_MS = 3_600_000;

export interface PulledImage {
  /** Canonical reference. */
  ref: string;
  manifestDigest: string;
  /** The bootstrap's copy in the cache directory. */
  bootstrapPath: string;
  bootstrap: Buffer;
  source: Extract<SourceSpec, { kind: 'registry' }>;
}

/** Bootstrap layers above this are refused (a bootstrap is metadata: MBs, not GBs). */
const MAX_BOOTSTRAP_LAYER = 1 << 30;

/** A reference naming the lazy image a conversion would make (for the error's advice). */
function lazyTarget(ref: ImageReference): string {
  const name = `${ref.registry}/${ref.repository}`;
  return `${name}:${ref.tag ? `${ref.tag}-lazy` : 'lazy'}`;
}

/** Checks a request body's types; the credentials are only checked for shape. */
export function checkPullRequest(v: unknown): PullRequest {
  const r = v as Record<string, unknown>;
  if (typeof r?.ref !== 'string' || !r.ref) throw new InvalidArgumentError('"ref" must be an image reference');
  for (const k of ['caFile', 'platform'] as const) {
    if (r[k] !== undefined && typeof r[k] !== 'string') throw new InvalidArgumentError(`"${k}" must be a string`);
  }
  if (r.insecure !== undefined && typeof r.insecure !== 'boolean') throw new InvalidArgumentError('"insecure" must be true or false');
  if (r.deadlineMs !== undefined && (!Number.isSafeInteger(r.deadlineMs) || (r.deadlineMs as number) < 1 || (r.deadlineMs as number) > MAX_PULL_DEADLINE_MS)) {
    throw new InvalidArgumentError(`"deadlineMs" must be an integer from 1 to ${MAX_PULL_DEADLINE_MS}`);
  }
  const c = r.credentials as Record<string, unknown> | undefined;
  if (c !== undefined) {
    const ok = typeof c === 'object' && c !== null && (
      (typeof c.username === 'string' && typeof c.password === 'string')
      || typeof c.identityToken === 'string' || typeof c.registryToken === 'string');
    // Never echo what was sent: it may be a password in the wrong field.
    if (!ok) throw new InvalidArgumentError('"credentials" must be {username, password}, {identityToken} or {registryToken}');
  }
  return r as unknown as PullRequest;
}

/**
 * Every registry call here retries in the client's one loop and keeps its deadlines; `signal`
 * (the API's: its client went away, or the mount's deadline passed) cancels the pull at once.
 */
export async function pullBootstrap(req: PullRequest, cacheDir: CacheDir, deps: SourceDeps, signal?: AbortSignal): Promise<PulledImage> {
  const ref = parseReference(req.ref);
  const source: PulledImage['source'] = {
    kind: 'registry', registry: ref.registry, repository: ref.repository,
    ...(req.insecure ? { insecure: true } : {}),
    ...(req.caFile ? { caFile: req.caFile } : {}),
    ...(req.credentials ? { credentials: req.credentials } : {}),
  };
  const platform = req.platform ? parsePlatform(req.platform) : undefined;
  const client = new RegistryClient(registryOptions(source, deps));
  try {
    const manifest = await client.resolve(ref, { ...(platform ? { platform } : {}), ...(signal ? { signal } : {}) });
    const layer = findBootstrapLayer(manifest.json);
    if (isPlainOci(manifest.json) || !layer) {
      throw new OndineError('ONDINE_ERR_NOT_LAZY', undefined, `${ref.toString()} is a plain OCI image, not a lazy one${layer ? '' : ' (its manifest has no Nydus bootstrap layer)'}: convert it with \`ondine convert ${ref.toString()} ${lazyTarget(ref)}\` and mount that`);
    }
    const known = storedFor(cacheDir, layer.digest);
    if (known) return { ref: ref.toString(), manifestDigest: manifest.digest, bootstrapPath: known.path, bootstrap: known.bytes, source };
    if (layer.size > MAX_BOOTSTRAP_LAYER) throw new OndineError('ONDINE_ERR_NOT_LAZY', undefined, `${ref.toString()}: its bootstrap layer of ${layer.size} bytes is implausibly large`);
    // At most the size the manifest gives: more is refused (not retried) by the client.
    const tgz = await client.blobBytes(ref.registry, ref.repository, layer.digest, layer.size, signal);
    // The client verifies as it streams; checked here as well, since this is what the whole
    // mount's trust rests on (every chunk is verified against digests in the bootstrap).
    const got = `sha256:${createHash('sha256').update(tgz).digest('hex')}`;
    if (got !== layer.digest) {
      throw new OndineError('ONDINE_ERR_DIGEST_MISMATCH', undefined, `${ref.toString()}: the bootstrap layer hashes to ${got}, not ${layer.digest}`);
    }
    const bootstrap = await extractBootstrap(tgz);
    const bootstrapPath = cacheDir.storeBootstrap(bootstrap);
    remember(cacheDir, layer.digest, bootstrapPath);
    return { ref: ref.toString(), manifestDigest: manifest.digest, bootstrapPath, bootstrap, source };
  } finally {
    await client.close();
  }
}

function byLayer(cacheDir: CacheDir, layerDigest: string): string | undefined {
  const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
  return m ? join(cacheDir.root, 'bootstraps', 'by-layer', m[1]!) : undefined;
}

/** The bootstrap stored for a layer digest, if any and intact. */
function storedFor(cacheDir: CacheDir, layerDigest: string): { path: string; bytes: Buffer } | undefined {
  const link = byLayer(cacheDir, layerDigest);
  if (!link) return undefined;
  try {
    const name = readFileSync(link, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(name)) return undefined;
    const path = join(cacheDir.root, 'bootstraps', name);
    const bytes = readFileSync(path);
    return createHash('sha256').update(bytes).digest('hex') === name ? { path, bytes } : undefined;
  } catch {
    return undefined;
  }
}

function remember(cacheDir: CacheDir, layerDigest: string, bootstrapPath: string): void {
  const link = byLayer(cacheDir, layerDigest);
  if (!link) return;
  try {
    mkdirSync(join(cacheDir.root, 'bootstraps', 'by-layer'), { recursive: true });
    writeFileSync(`${link}.new`, basename(bootstrapPath), { mode: 0o600 });
    renameSync(`${link}.new`, link);
  } catch {
    // Only a shortcut: the next pull fetches the layer again.
  }
}
