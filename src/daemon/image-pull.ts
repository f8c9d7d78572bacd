// Mount by reference, daemon side: resolve a reference to the manifest of this platform,
// refuse an image that is not lazy (a plain OCI image, or one without a bootstrap layer),
// and stream the bootstrap layer into the cache directory (oci/bootstrap-store.ts: size caps,
// digest over every byte, the bootstrap checked before it is put in place). The blobs are left
// in the registry: the mount reads them through a registry source (source-spec.ts). A
// bootstrap layer pulled before is not fetched again. Every blob id of the bootstrap must be a
// data layer of the manifest (oci/manifest-blobs.ts).
import { OndineError, InvalidArgumentError } from '../errors.js';
import { MAX_PULL_DEADLINE_MS } from './defaults.js';
import { RegistryClient } from '../registry/client.js';
import { parsePlatform } from '../registry/platform.js';
import type { Credentials } from '../registry/credentials.js';
import { parseReference, type ImageReference } from '../registry/reference.js';
import { findBootstrapLayer, isPlainOci } from '../oci/nydus-image.js';
import { BootstrapStore } from '../oci/bootstrap-store.js';
import { DEFAULT_MAX_BOOTSTRAP_BYTES } from '../oci/bootstrap-extract.js';
import { checkBlobsInManifest, checkBootstrapBytesInManifest } from '../oci/manifest-blobs.js';
import type { Bootstrap } from '../format/bootstrap.js';
import { checkDigest } from '../format/identifiers.js';
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
export { MAX_PULL_DEADLINE_MS } from './defaults.js';

export interface PulledImage {
  /** Canonical reference. */
  ref: string;
  manifestDigest: string;
  /** The bootstrap's copy in the cache directory. */
  bootstrapPath: string;
  bootstrap: Buffer;
  /**
   * Its parse, every check passed (the store's, the manifest's): the one parse of a mount by
   * reference, handed to the mount or the catalog so they do not parse it again.
   */
  parsed: Bootstrap;
  /** Where the pull's time went, ms (for the log): the manifest, then the bootstrap's stages. */
  stages: Record<string, number>;
  source: Extract<SourceSpec, { kind: 'registry' }>;
}

export interface PullOptions {
  /** Cap on a bootstrap's (uncompressed) size; default 1 GiB. The layer may not be larger either. */
  maxBootstrapBytes?: number;
}

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
export async function pullBootstrap(req: PullRequest, cacheDir: CacheDir, deps: SourceDeps, signal?: AbortSignal, opts: PullOptions = {}): Promise<PulledImage> {
  const cap = opts.maxBootstrapBytes ?? DEFAULT_MAX_BOOTSTRAP_BYTES;
  const store = new BootstrapStore(cacheDir, { maxBytes: cap });
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
    const t0 = performance.now();
    const manifest = await client.resolve(ref, { ...(platform ? { platform } : {}), ...(signal ? { signal } : {}) });
    const manifestMs = Math.round(performance.now() - t0);
    const layer = findBootstrapLayer(manifest.json);
    if (isPlainOci(manifest.json) || !layer) {
      throw new OndineError('ONDINE_ERR_NOT_LAZY', undefined, `${ref.toString()} is a plain OCI image, not a lazy one${layer ? '' : ' (its manifest has no Nydus bootstrap layer)'}: convert it with \`ondine convert ${ref.toString()} ${lazyTarget(ref)}\` and mount that`);
    }
    checkDigest(layer.digest, `${ref.toString()}: the bootstrap layer's digest`);
    const known = store.find(layer.digest);
    if (known) {
      const t1 = performance.now();
      const parsed = checkBootstrapBytesInManifest(known.bytes, manifest.json, ref.toString());
      const stages = { manifestMs, cachedMs: Math.round(t1 - t0) - manifestMs, checkMs: Math.round(performance.now() - t1) };
      return { ref: ref.toString(), manifestDigest: manifest.digest, bootstrapPath: known.path, bootstrap: known.bytes, parsed, stages, source };
    }
    if (!Number.isSafeInteger(layer.size) || layer.size <= 0) {
      throw new OndineError('ONDINE_ERR_REGISTRY', undefined, `${ref.toString()}: its manifest states no usable size for the bootstrap layer (${JSON.stringify(layer.size)})`);
    }
    if (layer.size > cap) {
      throw new OndineError('ONDINE_ERR_TOO_LARGE', undefined, `${ref.toString()}: its bootstrap layer of ${layer.size} bytes is over the ${cap}-byte cap on a bootstrap`);
    }
    // Every byte counts: the client cuts the body off at the stated size and checks the digest
    // as it streams; the layer reader checks size and digest again at the end of the raw stream.
    // The client's one retry loop covers opening the stream; a body that breaks off fails the pull.
    const stored = await store.pull(layer.digest, {
      name: `bootstrap layer ${layer.digest} of ${ref.toString()}`,
      digest: layer.digest,
      size: layer.size,
      open: () => client.blobStream(ref.registry, ref.repository, layer.digest, signal, layer.size),
    }, (parsed) => { checkBlobsInManifest(parsed, manifest.json, ref.toString()); });
    return { ref: ref.toString(), manifestDigest: manifest.digest, bootstrapPath: stored.path, bootstrap: stored.bytes, parsed: stored.bootstrap, stages: { manifestMs, ...stored.stages }, source };
  } finally {
    await client.close();
  }
}
