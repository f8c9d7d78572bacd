// Pushing a built image: its blobs (skipped when the target has them, mounted from the chunk
// dict's repository when they are dict blobs the build did not write, uploaded otherwise),
// then the bootstrap layer, the config, and the manifest. Blobs go first so the manifest never
// names a blob the registry does not hold.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseBootstrap } from '../format/bootstrap.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { makeBootstrapLayer } from './bootstrap-layer.js';
import { nydusImage, type BlobLayer, type NydusImage } from './nydus-manifest.js';
import type { BlobOutcome, ImageTarget } from './targets.js';
import type { ImageConfig, Platform } from './types.js';

export interface PushSummary {
  blobsUploaded: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesUploaded: number;
}

export function emptySummary(): PushSummary {
  return { blobsUploaded: 0, blobsSkipped: 0, blobsMounted: 0, bytesUploaded: 0 };
}

export function addSummary(into: PushSummary, s: PushSummary): void {
  into.blobsUploaded += s.blobsUploaded;
  into.blobsSkipped += s.blobsSkipped;
  into.blobsMounted += s.blobsMounted;
  into.bytesUploaded += s.bytesUploaded;
}

function count(s: PushSummary, o: BlobOutcome): void {
  if (o.kind === 'uploaded') s.blobsUploaded++;
  else if (o.kind === 'mounted') s.blobsMounted++;
  else s.blobsSkipped++;
  s.bytesUploaded += o.bytes;
}

/** A blob's push already under way (convert starts a layer blob's upload as soon as it is built). */
export type BlobPush = Promise<{ outcome: BlobOutcome; size: number }>;

/**
 * A built image on disk: the bootstrap and its blobs in blob-table order (path absent: a
 * chunk-dict blob not written by this build; `pushed`: its push was started earlier).
 */
export interface LocalImage {
  bootstrap: Buffer;
  blobs: Array<{ blobId: string; path?: string; pushed?: BlobPush }>;
}

/** Pushes one blob this build wrote: skipped when the target has it, uploaded otherwise. */
export async function pushBuiltBlob(target: ImageTarget, blobId: string, path: string): BlobPush {
  const size = (await stat(path)).size;
  return { outcome: await target.putBlob(`sha256:${blobId}`, { path }, size), size };
}

/** Reads `<outDir>/bootstrap` and finds each blob of its blob table under `<outDir>/blobs/`. */
export async function readOutDir(outDir: string): Promise<LocalImage> {
  let bootstrap: Buffer;
  try {
    bootstrap = await readFile(join(outDir, 'bootstrap'));
  } catch {
    throw new NotFoundError(`${outDir}/bootstrap (expected the output directory of ondine build)`);
  }
  const table = parseBootstrap(bootstrap).blobs;
  const present = new Set(await readdir(join(outDir, 'blobs')).catch(() => [] as string[]));
  return {
    bootstrap,
    blobs: table.map((b) => ({ blobId: b.blobId, ...(present.has(b.blobId) ? { path: join(outDir, 'blobs', b.blobId) } : {}) })),
  };
}

export interface PushImageOptions {
  sourceConfig?: ImageConfig;
  platform?: Platform;
  /** Repository (same registry) holding the chunk dict's blobs: mounted instead of uploaded. */
  mountFrom?: string;
  /** Tag the manifest (single image); false pushes it by digest for an index to name. */
  tagged: boolean;
  /** Last resort for a chunk-dict blob the target lacks and cannot mount: a local copy of it (another registry's blob). */
  fetchMissing?: (digest: string) => Promise<string>;
  concurrency?: number;
  onBlob?: (digest: string, outcome: BlobOutcome) => void;
}

export interface PushedImage {
  summary: PushSummary;
  image: NydusImage;
}

export async function pushImage(target: ImageTarget, img: LocalImage, opts: PushImageOptions): Promise<PushedImage> {
  const summary = emptySummary();
  // The bootstrap layer (gzip on the thread pool: a fraction of a second for a large image) is made while
  // the data blobs go up, and goes up beside them, not after the last one.
  const bootLayer = makeBootstrapLayer(img.bootstrap);
  const bootPush = bootLayer.then((l) => target.putBlob(l.digest, { bytes: l.bytes }, l.bytes.length));
  bootPush.catch(() => undefined); // awaited below, after the blobs (their failure comes first)
  const layers: BlobLayer[] = new Array(img.blobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < img.blobs.length) {
      const i = next++;
      const b = img.blobs[i]!;
      const digest = `sha256:${b.blobId}`;
      let outcome: BlobOutcome;
      let size: number;
      if (b.pushed || b.path) {
        ({ outcome, size } = await (b.pushed ?? pushBuiltBlob(target, b.blobId, b.path!)));
      } else {
        // A chunk-dict blob: this build never had its bytes, so the target must hold it or get it by mount.
        let have = await target.blobSize(digest);
        if (have !== undefined) outcome = { kind: 'skipped', bytes: 0 };
        else if (opts.mountFrom && (await target.mountBlob(digest, opts.mountFrom))) {
          outcome = { kind: 'mounted', bytes: 0 };
          have = await target.blobSize(digest);
        } else if (opts.fetchMissing) {
          const path = await opts.fetchMissing(digest);
          have = (await stat(path)).size;
          outcome = await target.putBlob(digest, { path }, have);
        } else {
          throw new InvalidArgumentError(`blob ${b.blobId} (from the chunk dict) is neither in the output directory nor in ${target.name}${opts.mountFrom ? ` and could not be mounted from ${opts.mountFrom}` : ''}`);
        }
        if (have === undefined) throw new NotFoundError(`blob ${digest} in ${target.name} after mounting it`);
        size = have;
      }
      layers[i] = { blobId: b.blobId, size };
      count(summary, outcome);
      opts.onBlob?.(digest, outcome);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 3, img.blobs.length)) }, worker));
  } catch (err) {
    await bootPush.catch(() => undefined); // nothing left running behind the failure
    throw err;
  }

  const boot = await bootLayer;
  const image = nydusImage({
    blobs: layers, bootstrap: boot,
    ...(opts.sourceConfig ? { sourceConfig: opts.sourceConfig } : {}),
    ...(opts.platform ? { platform: opts.platform } : {}),
  });
  const bootOutcome = await bootPush;
  count(summary, bootOutcome);
  opts.onBlob?.(boot.digest, bootOutcome);
  const o = await target.putBlob(image.config.digest, { bytes: image.config.bytes }, image.config.bytes.length);
  count(summary, o);
  opts.onBlob?.(image.config.digest, o);
  await target.putManifest(image.manifest.descriptor.mediaType, image.manifest.bytes, image.manifest.digest, opts.tagged);
  return { summary, image };
}

/** `ondine push <outdir> <ref>`: the output of `ondine build` as a tagged single-platform image. */
export async function pushOutDir(target: ImageTarget, outDir: string, opts: Omit<PushImageOptions, 'tagged'> = {}): Promise<PushedImage> {
  return pushImage(target, await readOutDir(outDir), { ...opts, tagged: true });
}
