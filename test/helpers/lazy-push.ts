// Pushes an `ondine build` output directory to a test registry as a lazy (Nydus-convention)
// image, with plain HTTP seeding (not the client under test): each blob as a Nydus blob
// layer, then the bootstrap as the gzip tar layer made by src/oci/bootstrap-layer.ts, a config
// and the manifest. Also pushes plain OCI images, for the "not lazy" refusal.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeBootstrapLayer } from '../../src/oci/bootstrap-layer.js';
import { ANNOTATION, MEDIA_TYPE } from '../../src/registry/media-types.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { pushTestBlob, putTestManifest, sha256, type RegistryServer } from './registry-env.js';

export interface PushedLazyImage {
  manifestDigest: string;
  bootstrapLayerDigest: string;
  /** Blob ids in bootstrap order, with their sizes. */
  blobs: Array<{ id: string; size: number }>;
}

type Server = Pick<RegistryServer, 'url' | 'seedAuth'>;

/**
 * Pushes a bootstrap and its blobs (files named by id in `blobDir`) as `<repository>:<tag>`.
 * `layerBootstrap` replaces the bootstrap in the bootstrap layer (the data layers still come
 * from `bootstrapPath`): an image whose bootstrap names blobs its manifest does not list.
 */
export async function pushLazy(server: Server, repository: string, tag: string, bootstrapPath: string, blobDir: string, opts: { layerBootstrap?: Buffer } = {}): Promise<PushedLazyImage> {
  const bootstrap = readFileSync(bootstrapPath);
  const ids = parseBootstrap(bootstrap).blobs.map((b) => b.blobId);
  const present = new Set(readdirSync(blobDir));
  const blobs: PushedLazyImage['blobs'] = [];
  const layers: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }> = [];
  for (const id of ids) {
    if (!present.has(id)) throw new Error(`blob ${id} is not in ${blobDir}`);
    const bytes = readFileSync(join(blobDir, id));
    const digest = await pushTestBlob(server, repository, bytes);
    if (digest !== `sha256:${id}`) throw new Error(`blob ${id} hashes to ${digest}: a registry can only hold it under its digest`);
    blobs.push({ id, size: bytes.length });
    layers.push({ mediaType: MEDIA_TYPE.nydusBlob, digest, size: bytes.length, annotations: { [ANNOTATION.nydusBlob]: 'true' } });
  }
  const boot = await makeBootstrapLayer(opts.layerBootstrap ?? bootstrap);
  await pushTestBlob(server, repository, boot.bytes);
  layers.push({ mediaType: boot.descriptor.mediaType, digest: boot.digest, size: boot.size, annotations: boot.descriptor.annotations! });
  const config = Buffer.from(JSON.stringify({
    os: 'linux', architecture: 'amd64', config: {},
    rootfs: { type: 'layers', diff_ids: [...blobs.map((b) => `sha256:${b.id}`), boot.diffId] },
  }));
  const configDigest = await pushTestBlob(server, repository, config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest,
    config: { mediaType: MEDIA_TYPE.ociConfig, digest: configDigest, size: config.length },
    layers,
  }));
  await putTestManifest(server, repository, tag, MEDIA_TYPE.ociManifest, manifest);
  return { manifestDigest: sha256(manifest), bootstrapLayerDigest: boot.digest, blobs };
}
