// Reading a Nydus image's manifest: which layer is the bootstrap, which are data blobs, and
// whether the image is a plain OCI image that was never converted. Shared by `ondine mount
// <ref>` (daemon side) and convert/push (chunk dict from a reference).
import { Readable } from 'node:stream';
import { extractBootstrapBuffer } from './bootstrap-extract.js';
import { ANNOTATION, MEDIA_TYPE } from '../registry/media-types.js';
import type { Descriptor } from './types.js';

interface ManifestLike {
  layers?: ReadonlyArray<Partial<Descriptor>>;
}

function layersOf(manifest: unknown): Array<Partial<Descriptor>> {
  const layers = (manifest as ManifestLike | undefined)?.layers;
  return Array.isArray(layers) ? layers : [];
}

// Nydus's own tools go by the presence of these annotations, not their value.
function isBootstrap(l: Partial<Descriptor>): boolean {
  return l.annotations?.[ANNOTATION.nydusBootstrap] !== undefined;
}

function isBlob(l: Partial<Descriptor>): boolean {
  return !isBootstrap(l) && (l.mediaType === MEDIA_TYPE.nydusBlob || l.annotations?.[ANNOTATION.nydusBlob] !== undefined);
}

/** The last layer annotated as the Nydus bootstrap. */
export function findBootstrapLayer(manifest: unknown): { digest: string; size: number } | undefined {
  const layers = layersOf(manifest);
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    if (isBootstrap(l) && typeof l.digest === 'string') return { digest: l.digest, size: Number(l.size ?? 0) };
  }
  return undefined;
}

/** The data blob layers, in manifest order (the order of the bootstrap's blob table). */
export function blobLayers(manifest: unknown): { digest: string; size: number }[] {
  return layersOf(manifest).filter(isBlob).filter((l) => typeof l.digest === 'string')
    .map((l) => ({ digest: l.digest!, size: Number(l.size ?? 0) }));
}

/** An image with neither a bootstrap layer nor Nydus blob layers: it needs `ondine convert`. */
export function isPlainOci(manifest: unknown): boolean {
  const layers = layersOf(manifest);
  return !layers.some((l) => isBootstrap(l) || isBlob(l));
}

/**
 * The bootstrap out of a bootstrap layer held in memory (gzip tar as Nydus writes it; zstd and
 * plain tar are accepted too), under the rules of bootstrap-extract.ts. Broken archives fail
 * with the tar reader's typed errors; an archive without `image/image.boot` with CorruptError.
 */
export async function extractBootstrap(tgz: Buffer, digest?: string): Promise<Buffer> {
  return extractBootstrapBuffer({
    name: 'bootstrap layer', size: tgz.length, ...(digest !== undefined ? { digest } : {}),
    open: async () => Readable.from([tgz]),
  });
}
