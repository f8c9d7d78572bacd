// Reading a Nydus image's manifest: which layer is the bootstrap, which are data blobs, and
// whether the image is a plain OCI image that was never converted. Shared by `ondine mount
// <ref>` (daemon side) and convert/push (chunk dict from a reference).
import { Readable } from 'node:stream';
import { CorruptError } from '../errors.js';
import { readTar } from '../builder/import/tar/reader.js';
import { openLayer } from '../builder/import/tar/source.js';
import { ANNOTATION, BOOTSTRAP_ENTRY, MEDIA_TYPE } from '../registry/media-types.js';
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

function entryName(path: string): string {
  let p = path;
  while (p.startsWith('./') || p.startsWith('/')) p = p.startsWith('/') ? p.slice(1) : p.slice(2);
  return p;
}

/**
 * The bootstrap out of a bootstrap layer (gzip tar as Nydus writes it; zstd and plain tar are
 * accepted too). Broken archives fail with the tar reader's typed errors; an archive without
 * `image/image.boot` with CorruptError.
 */
export async function extractBootstrap(tgz: Buffer): Promise<Buffer> {
  const name = 'bootstrap layer';
  const layer = await openLayer({ name, size: tgz.length, open: async () => Readable.from([tgz]) });
  let found: Buffer | undefined;
  for await (const entry of readTar(layer.data, { source: name })) {
    const n = entryName(entry.path);
    if (entry.type !== 'file' || (n !== BOOTSTRAP_ENTRY && n !== 'image.boot')) continue;
    const out = Buffer.alloc(entry.size);
    for await (const seg of entry.segments()) seg.data.copy(out, seg.offset);
    // A later member of the same name wins, as it would when the tar is unpacked.
    found = out;
  }
  if (!found) throw new CorruptError(name, 0, `no ${BOOTSTRAP_ENTRY} in the archive`);
  return found;
}
