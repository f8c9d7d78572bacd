// `ondine build`: sources (one directory, or layers applied in order: tarball paths or
// streams such as registry blobs) → a bootstrap and one blob per layer. Wires importers, the chunk store and the bootstrap writer; owns the
// output directory's shape: <out>/bootstrap and <out>/blobs/<sha256>.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { parseBootstrap } from '../format/bootstrap.js';
import type { BlobTableEntry } from '../format/blob-table.js';
import { InvalidArgumentError } from '../errors.js';
import { codecByName } from '../storage/codecs.js';
import { digesterByName } from '../storage/digests.js';
import { ChunkPool } from './chunk-pool.js';
import { ChunkStore, type BuildProgress, type ChunkedContent, type ChunkLocation } from './chunk-store.js';
import { writeBootstrap } from './bootstrap-writer.js';
import type { BlobWriter, FinishedBlob } from './blob-writer.js';
import type { TreeNode } from './tree.js';
import { importDirectory } from './import/directory.js';
import { applyLayers, type LayerProgress } from './import/tar/layers.js';
import type { LayerInput } from './import/tar/source.js';
import type { StageClock } from './stages.js';

export interface BuildOptions {
  /** One directory, or layers lowest first: tarball paths or stream sources. */
  sources: LayerInput[];
  outDir: string;
  chunkSize?: number;
  compressor?: 'zstd' | 'lz4' | 'none' | 'gzip';
  level?: number;
  digest?: 'blake3' | 'sha256';
  chunkDict?: string;
  workers?: number;
  onProgress?: (p: BuildProgress) => void;
  /** Per layer: stored bytes read (the compressed size of what was fetched). */
  onLayerProgress?: (p: LayerProgress) => void;
  onWarning?: (message: string) => void;
  /**
   * A layer's blob is complete (named, on disk) and the next layers are still building: convert
   * uploads it from here. Not called for layers that stored no new chunk.
   */
  onBlob?: (layerIndex: number, blob: BuiltBlob) => void;
  /** False: blobs are not fsynced (default true; convert's scratch blobs are uploaded, then deleted). */
  durable?: boolean;
  /** Per-stage bytes and time (fetch, gunzip, digest, compress, hash, write). */
  stages?: StageClock;
}

export interface BuiltBlob {
  blobId: string;
  path: string;
  compressedSize: number;
  uncompressedSize: number;
  chunkCount: number;
  fromDict: boolean;
}

export interface BuildResult {
  bootstrapPath: string;
  blobs: BuiltBlob[];
  inodes: number;
  bytesIn: number;
  chunks: number;
  uniqueChunks: number;
  holeChunks: number;
  chunkRefs: number;
  storedBytes: number;
  /** Chunks read / chunks stored (holes excluded): what dedup saved. */
  dedupRatio: number;
  elapsedMs: number;
}

function builtBlob(f: FinishedBlob): BuiltBlob {
  return { blobId: f.blobId, path: f.path, compressedSize: f.entry.compressedSize, uncompressedSize: f.entry.uncompressedSize, chunkCount: f.entry.chunkCount, fromDict: false };
}

async function sourceKind(path: LayerInput): Promise<'dir' | 'file'> {
  if (typeof path !== 'string') return 'file';
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new InvalidArgumentError(`source "${path}" does not exist`);
  }
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  throw new InvalidArgumentError(`source "${path}" is neither a directory nor a tarball`);
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  if (opts.sources.length === 0) throw new InvalidArgumentError('no source given');
  const kinds = await Promise.all(opts.sources.map(sourceKind));
  if (kinds.includes('dir') && opts.sources.length > 1) {
    throw new InvalidArgumentError('a directory source must be the only source (layers are tarballs)');
  }
  const chunkSize = opts.chunkSize ?? 1 << 20;
  const codec = codecByName(opts.compressor ?? 'zstd');
  const digester = digesterByName(opts.digest ?? 'blake3');
  const blobDir = join(opts.outDir, 'blobs');
  await mkdir(blobDir, { recursive: true });

  const pool = new ChunkPool(opts.workers ?? availableParallelism());
  let store: ChunkStore;
  try {
    store = new ChunkStore(pool, {
      outDir: blobDir, chunkSize, compressor: codec.id, level: opts.level, digester: digester.id,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.durable !== undefined ? { durable: opts.durable } : {}),
      ...(opts.stages ? { stages: opts.stages } : {}),
    });
  } catch (err) {
    await pool.close(); // live worker threads would keep the process from exiting after the error
    throw err;
  }
  try {
    if (opts.chunkDict) {
      const dict = parseBootstrap(await readFile(opts.chunkDict));
      const added = store.addDict(dict.blobs, dict.chunks);
      if (added === 0) opts.onWarning?.(`chunk dict ${opts.chunkDict} offers no chunks with ${digester.name} digests`);
    }
    let root: TreeNode;
    if (kinds[0] === 'dir') {
      root = await importDirectory(opts.sources[0] as string, store.sinkForLayer(0));
    } else {
      const onBlob = opts.onBlob;
      root = await applyLayers(opts.sources, (i) => store.sinkForLayer(i), {
        onWarning: (w) => opts.onWarning?.(`${w.source}: ${w.message}`),
        ...(opts.onLayerProgress ? { onProgress: opts.onLayerProgress } : {}),
        ...(opts.stages ? { stages: opts.stages } : {}),
        // Each layer's blob is finished as soon as the layer is read (its commits come first,
        // the next layer's after), so it can leave while the next layers build.
        ...(onBlob ? {
          onLayerRead: (i: number) => {
            store.finishLayer(i).then((f) => { if (f) onBlob(i, builtBlob(f)); }, () => undefined);
          },
        } : {}),
      });
    }
    const finished = await store.finish();

    // Blob order: this build's layer blobs, then chunk-dict blobs it references.
    const blobs: BlobTableEntry[] = [];
    const writerIndex = new Map<BlobWriter, number>();
    const built: BuiltBlob[] = [];
    for (const [writer, f] of finished) {
      writerIndex.set(writer, blobs.length);
      blobs.push({ ...f.entry, blobIndex: blobs.length });
      built.push(builtBlob(f));
    }
    const dictIndex = new Map<BlobTableEntry, number>();
    for (const entry of store.dictBlobsUsed) {
      dictIndex.set(entry, blobs.length);
      blobs.push({ ...entry, blobIndex: blobs.length });
      built.push({ blobId: entry.blobId, path: '', compressedSize: entry.compressedSize, uncompressedSize: entry.uncompressedSize, chunkCount: entry.chunkCount, fromDict: true });
    }
    if (blobs.length > 255) throw new InvalidArgumentError(`${blobs.length} blobs: an image can reference at most 255`);
    const blobIndexOf = (loc: ChunkLocation): number => {
      const i = loc.blob.kind === 'layer' ? writerIndex.get(loc.blob.writer) : dictIndex.get(loc.blob.entry);
      if (i === undefined) throw new Error('internal: chunk in a blob that was not finished');
      return i;
    };
    const { bootstrap, stats } = writeBootstrap({ root, chunkSize, compressor: codec.id, digester: digester.id, blobs, blobIndexOf });
    const bootstrapPath = join(opts.outDir, 'bootstrap');
    await writeFile(`${bootstrapPath}.tmp`, bootstrap);
    await rename(`${bootstrapPath}.tmp`, bootstrapPath);
    const p = store.progress;
    const nonHole = p.chunks - p.holeChunks;
    return {
      bootstrapPath, blobs: built, inodes: stats.inodes, bytesIn: p.bytesIn, chunks: p.chunks,
      uniqueChunks: p.uniqueChunks, holeChunks: p.holeChunks, chunkRefs: stats.chunkRefs, storedBytes: p.storedBytes,
      dedupRatio: p.uniqueChunks ? nonHole / p.uniqueChunks : 1, elapsedMs: performance.now() - started,
    };
  } catch (err) {
    await store.abort();
    throw err;
  } finally {
    await pool.close();
  }
}

export type { ChunkedContent };
