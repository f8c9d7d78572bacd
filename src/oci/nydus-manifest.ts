// The documents of a Nydus image: config (the source image's config with the new rootfs),
// manifest (blob layers, then the bootstrap layer) and, for several platforms, an index whose
// entries say `nydus.remoteimage.v1`. What Nydus's converter produces, so its tools and
// nydus-snapshotter take our images.
import { createHash } from 'node:crypto';
import { ANNOTATION, MEDIA_TYPE, NYDUS_OS_FEATURE } from '../registry/media-types.js';
import type { BootstrapLayer } from './bootstrap-layer.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

export interface BlobLayer {
  /** sha256 hex of the blob file (the blob id). */
  blobId: string;
  size: number;
}

export interface Document {
  bytes: Buffer;
  digest: string;
  descriptor: Descriptor;
}

function doc(mediaType: string, value: unknown): Document {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { bytes, digest, descriptor: { mediaType, digest, size: bytes.length } };
}

export function blobDescriptor(b: BlobLayer): Descriptor {
  return { mediaType: MEDIA_TYPE.nydusBlob, digest: `sha256:${b.blobId}`, size: b.size, annotations: { [ANNOTATION.nydusBlob]: 'true' } };
}

/**
 * The source config kept (env, entrypoint, cmd, user, workdir, labels, platform, history),
 * `rootfs` made to describe the new layers. A blob is stored uncompressed as a layer (its
 * chunks are compressed inside), so its diff id is its digest; the bootstrap's is the sha256
 * of its tar. History gains one entry for the bootstrap layer, as Nydus's converter does.
 */
export function nydusConfig(source: ImageConfig | undefined, blobs: readonly BlobLayer[], bootstrapDiffId: string, platform?: Platform): ImageConfig {
  const { rootfs: _rootfs, ...kept } = source ?? ({} as ImageConfig);
  const cfg: ImageConfig = {
    ...kept,
    architecture: source?.architecture ?? platform?.architecture ?? 'amd64',
    os: source?.os ?? platform?.os ?? 'linux',
    rootfs: { type: 'layers', diff_ids: [...blobs.map((b) => `sha256:${b.blobId}`), bootstrapDiffId] },
    history: [...(source?.history ?? []), { created_by: 'ondine', comment: 'Nydus bootstrap layer' }],
  };
  const variant = source?.variant ?? platform?.variant;
  if (variant) cfg.variant = variant;
  if (!cfg.config) cfg.config = {};
  return cfg;
}

export interface NydusImage {
  config: Document;
  manifest: Document;
  /** The manifest's entry for an index: platform with the Nydus os feature. */
  indexEntry: Descriptor;
}

export function nydusImage(opts: { blobs: readonly BlobLayer[]; bootstrap: BootstrapLayer; sourceConfig?: ImageConfig; platform?: Platform; annotations?: Record<string, string> }): NydusImage {
  const cfg = nydusConfig(opts.sourceConfig, opts.blobs, opts.bootstrap.diffId, opts.platform);
  const config = doc(MEDIA_TYPE.ociConfig, cfg);
  const manifestValue: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.ociManifest,
    config: config.descriptor,
    layers: [...opts.blobs.map(blobDescriptor), opts.bootstrap.descriptor],
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const manifest = doc(MEDIA_TYPE.ociManifest, manifestValue);
  const platform: Platform = { os: cfg.os!, architecture: cfg.architecture!, ...(cfg.variant ? { variant: cfg.variant } : {}) };
  const features = [...new Set([...(opts.platform?.['os.features'] ?? []), NYDUS_OS_FEATURE])];
  return { config, manifest, indexEntry: { ...manifest.descriptor, platform: { ...platform, 'os.features': features } } };
}

export function nydusIndex(entries: readonly Descriptor[], annotations?: Record<string, string>): Document {
  const value: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex, manifests: [...entries], ...(annotations ? { annotations } : {}) };
  return doc(MEDIA_TYPE.ociIndex, value);
}
