// Mount by reference, daemon side: resolve a reference to the manifest of this platform,
// refuse an image that is not lazy (a plain OCI image, or one without a bootstrap layer),
// fetch the bootstrap layer, verify it against its digest, take `image/image.boot` out of it
// and store it in the cache directory. The blobs are left in the registry: the mount reads
// them through a registry source (source-spec.ts). A bootstrap layer pulled before is not
// fetched again: <cache>/ondine/bootstraps/by-layer/<layer hex> names the stored bootstrap,
// which is checked against its own sha256 (its file name) when used. Every blob id of the
// bootstrap must be a data layer of the manifest (oci/manifest-blobs.ts).
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { OndineError, InvalidArgumentError } from '../errors.js';
import { RegistryClient } from '../registry/client.js';
import { parsePlatform } from '../registry/platform.js';
import type { Credentials } from '../registry/credentials.js';
import { parseReference, type ImageReference } from '../registry/reference.js';
import { findBootstrapLayer, isPlainOci, extractBootstrap } from '../oci/nydus-image.js';
import { checkBootstrapBytesInManifest } from '../oci/manifest-blobs.js';
import { checkDigest } from '../format/identifiers.js';
import { CacheDir } from '../storage/cache-dir.js';
import { withRetries } from '../storage/retrying-source.js';
import { registryOptions, retryPolicy, type SourceDeps, type SourceSpec } from '../storage/source-spec.js';

/** What the API takes to mount or register an image by reference. */
export interface PullRequest {
  ref: string;
  credentials?: Credentials;
  insecure?: boolean;
  caFile?: string;
  /** os/arch[/variant], e.g. linux/arm64/v8 (default: this machine's). */
  platform?: string;
}

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

export async function pullBootstrap(req: PullRequest, cacheDir: CacheDir, deps: SourceDeps): Promise<PulledImage> {
  const ref = parseReference(req.ref);
  const source: PulledImage['source'] = {
    kind: 'registry', registry: ref.registry, repository: ref.repository,
    ...(req.insecure ? { insecure: true } : {}),
    ...(req.caFile ? { caFile: req.caFile } : {}),
    ...(req.credentials ? { credentials: req.credentials } : {}),
  };
  const platform = req.platform ? parsePlatform(req.platform) : undefined;
  const client = new RegistryClient(registryOptions(source, deps, 0));
  const policy = retryPolicy(deps, `${ref.registry}/${ref.repository}`);
  try {
    const manifest = await withRetries(policy, () => client.resolve(ref, platform ? { platform } : {}));
    const layer = findBootstrapLayer(manifest.json);
    if (isPlainOci(manifest.json) || !layer) {
      throw new OndineError('ONDINE_ERR_NOT_LAZY', undefined, `${ref.toString()} is a plain OCI image, not a lazy one${layer ? '' : ' (its manifest has no Nydus bootstrap layer)'}: convert it with \`ondine convert ${ref.toString()} ${lazyTarget(ref)}\` and mount that`);
    }
    checkDigest(layer.digest, `${ref.toString()}: the bootstrap layer's digest`);
    const known = storedFor(cacheDir, layer.digest);
    if (known) checkBootstrapBytesInManifest(known.bytes, manifest.json, ref.toString());
    if (known) return { ref: ref.toString(), manifestDigest: manifest.digest, bootstrapPath: known.path, bootstrap: known.bytes, source };
    if (layer.size > MAX_BOOTSTRAP_LAYER) throw new OndineError('ONDINE_ERR_NOT_LAZY', undefined, `${ref.toString()}: its bootstrap layer of ${layer.size} bytes is implausibly large`);
    const tgz = await withRetries(policy, async () => {
      const stream = await client.blobStream(ref.registry, ref.repository, layer.digest);
      const parts: Buffer[] = [];
      let n = 0;
      for await (const c of stream) {
        n += (c as Buffer).length;
        if (n > MAX_BOOTSTRAP_LAYER) {
          stream.destroy();
          throw new OndineError('ONDINE_ERR_REGISTRY', undefined, `${ref.toString()}: the bootstrap layer is larger than its manifest says`);
        }
        parts.push(c as Buffer);
      }
      return Buffer.concat(parts);
    });
    // The client verifies as it streams; checked here as well, since this is what the whole
    // mount's trust rests on (every chunk is verified against digests in the bootstrap).
    const got = `sha256:${createHash('sha256').update(tgz).digest('hex')}`;
    if (got !== layer.digest) {
      throw new OndineError('ONDINE_ERR_DIGEST_MISMATCH', undefined, `${ref.toString()}: the bootstrap layer hashes to ${got}, not ${layer.digest}`);
    }
    const bootstrap = await extractBootstrap(tgz);
    checkBootstrapBytesInManifest(bootstrap, manifest.json, ref.toString());
    const bootstrapPath = cacheDir.storeBootstrap(bootstrap);
    remember(cacheDir, layer.digest, bootstrapPath);
    return { ref: ref.toString(), manifestDigest: manifest.digest, bootstrapPath, bootstrap, source };
  } finally {
    await client.close();
  }
}

/** The hex of a sha256 layer digest: the name of its by-layer record. */
function byLayer(layerDigest: string): string | undefined {
  const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
  return m ? m[1]! : undefined;
}

/** The bootstrap stored for a layer digest, if any and intact (read beneath the cache dir only). */
function storedFor(cacheDir: CacheDir, layerDigest: string): { path: string; bytes: Buffer } | undefined {
  const link = byLayer(layerDigest);
  if (!link) return undefined;
  try {
    const name = cacheDir.readFile('bootstraps/by-layer', link, 128)?.toString('utf8').trim();
    if (!name || !/^[0-9a-f]{64}$/.test(name)) return undefined;
    const bytes = cacheDir.readFile('bootstraps', name, MAX_BOOTSTRAP_LAYER);
    return bytes && createHash('sha256').update(bytes).digest('hex') === name ? { path: join(cacheDir.root, 'bootstraps', name), bytes } : undefined;
  } catch {
    return undefined;
  }
}

function remember(cacheDir: CacheDir, layerDigest: string, bootstrapPath: string): void {
  const link = byLayer(layerDigest);
  if (!link) return;
  try {
    cacheDir.writeFile('bootstraps/by-layer', link, Buffer.from(basename(bootstrapPath)));
  } catch {
    // Only a shortcut: the next pull fetches the layer again.
  }
}
