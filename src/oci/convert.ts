// `ondine convert`: an OCI image (registry reference or OCI layout) → a Nydus image pushed to a
// registry or an OCI layout. Each platform's layers stream from the source through the builder
// (one blob per layer, chunks deduplicated across layers and against an optional chunk dict);
// blobs land in a scratch directory (a blob's digest is known only when it is complete) and each
// is pushed as soon as it is, while the next layers build; the bootstrap, config and manifest
// follow once all are in. Several platforms end as an index whose entries carry the Nydus os
// feature. Bytes and time per stage are kept in a StageClock.
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type BuildOptions, type BuildResult } from '../builder/builder.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';
import { RegistryImageSource, LayoutSource, layoutRefOf, type ImageSource, type SourceDocument } from './image-source.js';
import { isIndexMediaType, isTarLayerMediaType } from '../registry/media-types.js';
import { findBootstrapLayer, isPlainOci } from './nydus-image.js';
import { extractBootstrapBuffer } from './bootstrap-extract.js';
import { nydusIndex } from './nydus-manifest.js';
import { pickManifests } from './platform.js';
import { formatPlatform } from '../registry/platform.js';
import { addSummary, emptySummary, pushBuiltBlob, pushImage, type BlobPush, type PushSummary } from './push.js';
import { StageClock, type StageStat, type StageName } from '../builder/stages.js';
import { LayoutTarget, RegistryTarget, type ImageTarget, type RefLike, type RegistryApi } from './targets.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from './types.js';
import { parseLayoutRef } from './oci-layout.js';

export interface ConvertDeps {
  client: RegistryApi;
  parseReference(s: string): RefLike;
}

export interface ConvertProgress {
  phase: 'build' | 'push';
  platform: string;
  platformIndex: number;
  platformCount: number;
  layerIndex: number;
  layerCount: number;
  /** Compressed source bytes read so far, over all platforms. */
  bytesRead: number;
  /** Chunk data stored in blobs so far in this platform's build. */
  storedBytes: number;
  /** Push phase: registry blobs of this platform handled so far (data blobs, bootstrap layer, config), and bytes sent. */
  blobsPushed: number;
  blobsToPush: number;
  bytesUploaded: number;
}

export interface ConvertOptions extends Pick<BuildOptions, 'chunkSize' | 'compressor' | 'level' | 'digest' | 'workers'> {
  /** Only this platform of an index (the result is then a single manifest). */
  platform?: Platform;
  /** A bootstrap file, or a reference to a Nydus image whose bootstrap is the dict. */
  chunkDict?: string;
  /** Scratch space for blobs before upload (default: a new directory under $TMPDIR). */
  workDir?: string;
  keepWorkDir?: boolean;
  onProgress?: (p: ConvertProgress) => void;
  onWarning?: (message: string) => void;
  /** Where the stages report (default: a clock of its own); its summary is in the result. */
  stages?: StageClock;
}

export interface ConvertedPlatform {
  platform: string;
  manifestDigest: string;
  layers: number;
  blobs: number;
  build: BuildResult;
  push: PushSummary;
}

export interface ConvertResult {
  source: string;
  target: string;
  /** Digest of what the target reference now names (manifest, or index for several platforms). */
  digest: string;
  mediaType: string;
  platforms: ConvertedPlatform[];
  /** Compressed source layer bytes read. */
  bytesRead: number;
  /** Blob and bootstrap bytes written to the work directory. */
  bytesWritten: number;
  push: PushSummary;
  elapsedMs: number;
  /** Bytes and time per stage (fetch, gunzip, digest, compress, hash, write, upload), in pipeline order. */
  stages: Array<{ stage: StageName } & StageStat>;
}

export async function openImageSource(s: string, deps: ConvertDeps): Promise<ImageSource> {
  const layout = await layoutRefOf(s);
  if (layout) return LayoutSource.open(layout.dir, layout.tag);
  return new RegistryImageSource(deps.client, deps.parseReference(s));
}

export async function openImageTarget(s: string, deps: ConvertDeps): Promise<ImageTarget> {
  const layout = parseLayoutRef(s);
  if (layout) return LayoutTarget.create(layout.dir, layout.tag ?? 'latest');
  return new RegistryTarget(deps.client, deps.parseReference(s));
}

function platformOf(desc: Descriptor | undefined, config: ImageConfig): Platform {
  if (desc?.platform) return desc.platform;
  return { os: config.os ?? 'linux', architecture: config.architecture ?? 'amd64', ...(config.variant ? { variant: config.variant } : {}) };
}

/** The chunk dict's bootstrap as a file, and the repository its blobs live in (for mounts). */
async function chunkDictFor(spec: string, platform: Platform, deps: ConvertDeps, workDir: string, n: number): Promise<{ path: string; repo?: { registry: string; repository: string } }> {
  if (await stat(spec).then((s) => s.isFile(), () => false)) return { path: spec };
  const ref = deps.parseReference(spec);
  const src = new RegistryImageSource(deps.client, ref);
  let doc: SourceDocument = await src.root();
  if (isIndexMediaType(doc.mediaType)) {
    const [m] = pickManifests(doc.json.manifests ?? [], platform);
    if (!m) throw new NotFoundError(`chunk dict ${spec}: no manifest for ${formatPlatform(platform)}`);
    doc = await src.document(m);
  }
  const boot = findBootstrapLayer(doc.json);
  if (!boot) throw new OndineError('ONDINE_ERR_NOT_LAZY', undefined, `chunk dict ${spec} is not a Nydus image (no bootstrap layer)`);
  const path = join(workDir, `chunk-dict-${n}.boot`);
  await writeFile(path, await extractBootstrapBuffer({ ...src.layer({ mediaType: '', digest: boot.digest, size: boot.size }), digest: boot.digest }));
  return { path, repo: src.repo };
}

async function downloadBlob(client: RegistryApi, repo: { registry: string; repository: string }, digest: string, path: string): Promise<string> {
  const body = await client.blobStream(repo.registry, repo.repository, digest);
  await pipeline(body, createWriteStream(path));
  return path;
}

/** The target, its blob uploads counted as the upload stage (bytes sent, time per blob). */
function timedUploads(target: ImageTarget, stages: StageClock): ImageTarget {
  const timed = Object.create(target) as ImageTarget;
  timed.putBlob = async (...args) => {
    const t = performance.now();
    const o = await target.putBlob(...args);
    stages.add('upload', o.bytes, performance.now() - t);
    return o;
  };
  return timed;
}

export async function convert(sourceSpec: string, targetSpec: string, deps: ConvertDeps, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const started = performance.now();
  const source = await openImageSource(sourceSpec, deps);
  const root = await source.root();
  const target = await openImageTarget(targetSpec, deps);
  const stages = opts.stages ?? new StageClock();
  const uploads = timedUploads(target, stages);

  let picked: Array<Descriptor | undefined>;
  const fromIndex = isIndexMediaType(root.mediaType);
  if (fromIndex) {
    picked = pickManifests(root.json.manifests ?? [], opts.platform);
    if (picked.length === 0) {
      throw new NotFoundError(opts.platform ? `a manifest for ${formatPlatform(opts.platform)} in ${source.name}` : `an image manifest in the index of ${source.name}`);
    }
  } else {
    picked = [undefined];
  }
  // One platform out of an index becomes a plain manifest, as Nydus's converter does.
  const asIndex = fromIndex && !opts.platform && picked.length > 1;

  const workDir = opts.workDir ?? (await mkdtemp(join(process.env.TMPDIR ?? tmpdir(), 'ondine-convert-')));
  const result: ConvertResult = {
    source: source.name, target: target.reference, digest: '', mediaType: '', platforms: [],
    bytesRead: 0, bytesWritten: 0, push: emptySummary(), elapsedMs: 0, stages: [],
  };
  // Layer blobs' uploads started during the build: settled before the work dir goes.
  const early: BlobPush[] = [];
  try {
    const entries: Descriptor[] = [];
    for (let pi = 0; pi < picked.length; pi++) {
      const desc = picked[pi];
      const doc = desc ? await source.document(desc) : root;
      if (isIndexMediaType(doc.mediaType)) throw new InvalidArgumentError(`${source.name}: nested indexes are not supported`);
      const manifest = doc.json as ImageManifest;
      if (!isPlainOci(manifest)) throw new InvalidArgumentError(`${source.name} is already a Nydus image`);
      const config = JSON.parse((await source.blob(manifest.config)).toString('utf8')) as ImageConfig;
      const platform = platformOf(desc, config);
      const pname = formatPlatform(platform);
      for (const l of manifest.layers) {
        if (!isTarLayerMediaType(l.mediaType)) throw new InvalidArgumentError(`${source.name} (${pname}): layer ${l.digest} has media type ${l.mediaType}, not a tar layer`);
      }
      const dict = opts.chunkDict ? await chunkDictFor(opts.chunkDict, platform, deps, workDir, pi) : undefined;
      const outDir = join(workDir, `platform-${pi}`);
      const readBefore = result.bytesRead;
      const layerRead = new Array<number>(manifest.layers.length).fill(0);
      let stored = 0;
      let layerIndex = 0;
      const pushing = { done: 0, total: 0, bytes: result.push.bytesUploaded };
      // One upload at a time beside the build (the build has the cores), in layer order.
      const pushes = new Map<string, BlobPush>();
      let uploadTail: Promise<unknown> = Promise.resolve();
      const startPush = (blobId: string, path: string): void => {
        const p: BlobPush = uploadTail.then(async () => {
          return pushBuiltBlob(uploads, blobId, path);
        });
        p.catch(() => undefined); // awaited by pushImage, or settled in the finally below
        uploadTail = p.catch(() => undefined);
        pushes.set(blobId, p);
        early.push(p);
      };
      const report = (phase: ConvertProgress['phase']): void => opts.onProgress?.({
        phase, platform: pname, platformIndex: pi, platformCount: picked.length, layerIndex, layerCount: manifest.layers.length,
        bytesRead: readBefore + layerRead.reduce((a, b) => a + b, 0), storedBytes: stored,
        blobsPushed: pushing.done, blobsToPush: pushing.total, bytesUploaded: pushing.bytes,
      });
      const built = await build({
        sources: manifest.layers.map((l) => source.layer(l)),
        outDir,
        ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.compressor ? { compressor: opts.compressor } : {}),
        ...(opts.level !== undefined ? { level: opts.level } : {}),
        ...(opts.digest ? { digest: opts.digest } : {}),
        ...(opts.workers ? { workers: opts.workers } : {}),
        ...(dict ? { chunkDict: dict.path } : {}),
        durable: false,
        stages,
        onBlob: (_i, b) => startPush(b.blobId, b.path),
        onProgress: (p) => { stored = p.storedBytes; report('build'); },
        onLayerProgress: (p) => { layerIndex = p.layerIndex; layerRead[p.layerIndex] = p.compressedBytesRead; report('build'); },
        ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      });
      result.bytesRead = readBefore + layerRead.reduce((a, b) => a + b, 0);
      const bootstrap = await readFile(built.bootstrapPath);
      result.bytesWritten += bootstrap.length;
      for (const b of built.blobs) if (!b.fromDict) result.bytesWritten += (await stat(b.path)).size;
      pushing.total = built.blobs.length + 2;
      report('push');
      const mountFrom = dict?.repo && target instanceof RegistryTarget && dict.repo.registry === target.ref.registry ? dict.repo.repository : undefined;
      // A dict on another registry (or a target that refuses mounts): copy its blobs through here.
      const fetchMissing = dict?.repo ? (digest: string) => downloadBlob(deps.client, dict.repo!, digest, join(workDir, `dict-${digest.slice(7)}`)) : undefined;
      const pushed = await pushImage(uploads, {
        bootstrap,
        blobs: built.blobs.map((b) => {
          const pushed = b.fromDict ? undefined : pushes.get(b.blobId);
          return { blobId: b.blobId, ...(b.fromDict ? {} : { path: b.path }), ...(pushed ? { pushed } : {}) };
        }),
      }, { sourceConfig: config, platform, tagged: !asIndex, ...(mountFrom ? { mountFrom } : {}), ...(fetchMissing ? { fetchMissing } : {}),
        onBlob: (_d, o) => { pushing.done++; pushing.bytes += o.bytes; report('push'); } });
      addSummary(result.push, pushed.summary);
      entries.push(pushed.image.indexEntry);
      result.platforms.push({
        platform: pname, manifestDigest: pushed.image.manifest.digest, layers: manifest.layers.length,
        blobs: built.blobs.length, build: built, push: pushed.summary,
      });
      result.digest = pushed.image.manifest.digest;
      result.mediaType = pushed.image.manifest.descriptor.mediaType;
      if (!opts.keepWorkDir) await rm(outDir, { recursive: true, force: true }).catch(() => undefined);
    }
    if (asIndex) {
      const index = nydusIndex(entries);
      await target.putManifest(index.descriptor.mediaType, index.bytes, index.digest, true);
      result.digest = index.digest;
      result.mediaType = index.descriptor.mediaType;
    }
  } finally {
    await Promise.allSettled(early);
    if (!opts.workDir && !opts.keepWorkDir) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
  result.elapsedMs = performance.now() - started;
  result.stages = stages.summary();
  return result;
}

