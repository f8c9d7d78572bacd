// Entry point for OCI layers: opens each layer (a file, or a stream such as a registry blob;
// any supported compression), streams its entries through the tar reader into the overlay
// applier, and reports progress. Layers are applied strictly in order to one tree; each
// layer's files go to that layer's chunk sink.
import { IMPLICIT_DIR_META, newDir, type ChunkSink, type TreeNode } from '../../tree.js';
import { readTar, type TarWarning } from './reader.js';
import { LayerApplier } from './overlay.js';
import { layerName, openLayer, type Compression, type LayerInput } from './source.js';
import { SourceIoError } from '../errors.js';
import type { StageClock } from '../../stages.js';

export interface LayerProgress {
  layerIndex: number;
  layerCount: number;
  /** The layer file, or the stream source's name. */
  source: string;
  /** Entries of this layer handled so far (whiteouts included). */
  entries: number;
  /** File bytes of this layer handed to the sink so far (holes not counted). */
  dataBytes: number;
  /** Bytes of the layer file read so far, and its size: the ratio is the layer's progress. */
  compressedBytesRead: number;
  compressedSize: number;
  done: boolean;
}

export interface ApplyLayerOptions {
  onProgress?: (p: LayerProgress) => void;
  onWarning?: (w: TarWarning) => void;
  /** Largest segment handed to the sink, default 1 MiB. */
  segmentSize?: number;
  /** Where fetching and decoding report their bytes and time. */
  stages?: StageClock;
}

export interface ApplyLayersOptions<C> extends ApplyLayerOptions {
  /** Tree to apply onto (default: an empty root, mode 0755, owned by 0:0, mtime 0). */
  root?: TreeNode<C>;
  /**
   * Called once a layer has been read to its verified end, before the next layer is opened:
   * every file of it has been handed to its sink by then (the builder finishes its blob).
   */
  onLayerRead?: (layerIndex: number) => void;
}

export interface LayerStats {
  source: string;
  compression: Compression;
  entries: number;
  files: number;
  dataBytes: number;
  whiteouts: number;
}

export async function applyLayers<C>(
  layers: readonly LayerInput[],
  sinkForLayer: (layerIndex: number) => ChunkSink<C>,
  opts: ApplyLayersOptions<C> = {},
): Promise<TreeNode<C>> {
  const root = opts.root ?? newDir<C>({ ...IMPLICIT_DIR_META });
  for (let i = 0; i < layers.length; i++) {
    await applyLayer(root, layers[i]!, sinkForLayer(i), opts, i, layers.length);
    opts.onLayerRead?.(i);
  }
  return root;
}

/** Applies one layer onto `root` in place. */
export async function applyLayer<C>(
  root: TreeNode<C>,
  input: LayerInput,
  sink: ChunkSink<C>,
  opts: ApplyLayerOptions = {},
  layerIndex = 0,
  layerCount = 1,
): Promise<LayerStats> {
  const path = layerName(input);
  const layer = await openLayer(input, opts.stages ? { stages: opts.stages } : {});
  const stats: LayerStats = { source: path, compression: layer.compression, entries: 0, files: 0, dataBytes: 0, whiteouts: 0 };
  const report = (done: boolean): void =>
    opts.onProgress?.({
      layerIndex,
      layerCount,
      source: path,
      entries: stats.entries,
      dataBytes: stats.dataBytes,
      compressedBytesRead: layer.bytesRead,
      compressedSize: layer.fileSize,
      done,
    });
  const applier = new LayerApplier<C>(root, sink, {
    source: path,
    onWarning: opts.onWarning,
    onData: (n) => {
      stats.dataBytes += n;
      report(false);
    },
  });
  const entries = readTar(layer.data, { source: path, onWarning: opts.onWarning, segmentSize: opts.segmentSize ?? 1 << 20 });
  for await (const entry of entries) {
    await applier.apply(entry);
    stats.entries++;
    report(false);
  }
  // readTar reads on to the end of the stream; a layer whose stream did not end with every
  // byte checked (digest, size, nothing after the compressed data) is not a layer read.
  if (!layer.verified) throw new SourceIoError(path, new Error('the layer stream was not read to its verified end'));
  applier.finish();
  stats.whiteouts = applier.whiteoutCount;
  stats.files = applier.fileCount;
  report(true);
  return stats;
}
