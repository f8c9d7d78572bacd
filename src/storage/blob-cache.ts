// One cache file (the uncompressed blob layout) filled on demand, shared by every front end
// and every reader of it: a front end (cachefiles READ, fanotify pre-access) asks for a range
// and passes the writer (the fd) to write through for that call; the cache works out which
// chunks cover it, adds read-ahead for sequential readers (a window per stream that opens at
// nothing and doubles as reads prove the stream sequential), fetches each chunk at most once
// however many readers want it, verifies, and writes it. It owns in-flight chunk sharing,
// what is known present, and read-ahead history; never paths, inodes or kernel messages.
// A range is either written whole and verified, or fill() rejects: nothing unverified is
// ever written. A chunk whose fetch timed out (or the fill that started it was cancelled at its
// deadline) is refused at once for `failedChunkMs`: the two or three events one read()
// raises in turn then end together instead of each waiting out its own deadline; the first
// fill after that fetches it again.
import { FetchError } from '../errors.js';
import { alignUp } from '../format/bytes.js';
import { FAILED_CHUNK_MS } from '../registry/time-ladder.js';
import { BLOCK_SIZE } from '../format/constants.js';
import type { BlobSource } from './blob-source.js';
import type { BlobChunk, BlobChunkMap } from './blob-chunk-map.js';
import { ChunkReader, type ChunkReaderOptions, type VerifiedChunk } from './chunk-reader.js';

export interface RangeWriter {
  /** Writes `data` at `offset` (block aligned); pads the tail to a block with zeros. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Whether [offset, offset + length) already holds valid data (survives daemon restarts). */
  isCached?(offset: number, length: number): boolean;
  /**
   * Memory for a write of `size` bytes that write() can take without copying (contents
   * undefined; owned by the writer again once passed to write()).
   */
  alloc?(size: number): Uint8Array;
  /**
   * Keeps the writer's fd usable until the returned release is called: a fill holds it for
   * every write it started, including read-ahead written after the fill itself resolved.
   * Closing the fd any earlier would fail those writes, or send them into whatever file
   * reused the fd number.
   */
  hold?(): () => void;
}

/** What a fill may be cancelled through: an AbortController, whose signal is only made when needed. */
export interface FillAbort {
  readonly signal: AbortSignal;
}

/** A cache file's contents on demand: fill() writes [offset, offset + length) through `writer`. */
export interface BlobCache {
  readonly size: number;
  fill(offset: number, length: number, writer: RangeWriter, abort?: FillAbort): Promise<void>;
  /**
   * A reader read [offset, offset+length) without a fill (already present); the cache may
   * continue read-ahead past it, writing through `writer`. Never throws or rejects; resolves
   * once any read-ahead it started holds `writer` (close the writer's fd only when idle).
   */
  advise?(offset: number, length: number, writer: RangeWriter): Promise<void>;
  /** Whether every byte of the cache file is known written (no fill can be needed again). */
  readonly complete: boolean;
}

export interface FillStats {
  chunksWritten: number;
  bytesWritten: number;
  amplifiedChunks: number;
}

/**
 * One blob as the daemon knows it: its source and (lazily, once) its chunk map. `readerOpts`
 * go to its ChunkReader (e.g. the daemon's decode pool, shared by all blobs).
 */
export class BlobHandle {
  private mapPromise: Promise<BlobChunkMap> | undefined;
  private reader: ChunkReader | undefined;

  constructor(
    readonly blobId: string,
    readonly source: BlobSource,
    private readonly load: () => Promise<BlobChunkMap>,
    private readonly readerOpts: ChunkReaderOptions = {},
  ) {}

  async chunkReader(): Promise<ChunkReader> {
    if (!this.mapPromise) {
      this.mapPromise = this.load();
      // A failed load (source down) must not stay cached: the next READ tries again.
      this.mapPromise.catch(() => { this.mapPromise = undefined; });
    }
    const map = await this.mapPromise;
    this.reader ??= new ChunkReader(this.source, map, this.readerOpts);
    return this.reader;
  }
}

export interface ChunkedCacheOptions {
  /**
   * Largest read-ahead window, in compressed bytes (default 8 MiB; 0: no read-ahead). A
   * stream's window opens at 0 (its first READ fetches only the chunks it covers), opens to
   * `readAheadStartBytes` on the first READ that continues it, and doubles with each further
   * one up to this; the chunks in the window past a READ that are neither cached nor in flight
   * are fetched (as read-ahead) with it.
   */
  amplifyBytes?: number;
  /** A stream's first read-ahead window, compressed bytes (default 128 KiB; at most amplifyBytes). */
  readAheadStartBytes?: number;
  /**
   * Compressed bytes one read-ahead source read spans at most (default 1 MiB): a wide window
   * goes out as several range requests in flight, which keeps a long, slow link full.
   */
  readAheadReadBytes?: number;
  /** Called once when the last chunk has been written (read-ahead included). */
  onComplete?: () => void;
  /** How long a chunk whose fetch failed is refused without a fetch (default 5 s; 0: never). */
  failedChunkMs?: number;
  now?: () => number;
}

/** Streams remembered per cache object for telling sequential readers (several at once) from random ones. */
const RECENT_READS = 8;
export const DEFAULT_READ_AHEAD_MAX = 8 << 20;
export const DEFAULT_READ_AHEAD_START = 128 << 10;
export const DEFAULT_READ_AHEAD_READ = 1 << 20;

/**
 * A reader's position (the chunk just past its last READ), how far its read-ahead reached
 * (the chunk just past the window last fetched for it), and its window.
 */
interface Stream {
  next: number;
  ahead: number;
  window: number;
  /** Compressed offset where the stream began: its window never exceeds what it has read. */
  from: number;
}
/** Chunks a sequential reader may skip (files with no data, a READ the kernel did not need). */
const SEQUENTIAL_SLACK = 2;

/** Read-ahead chunks are written in runs of up to this many bytes: one write, not one per chunk. */
const MAX_RUN_BYTES = 1 << 20;

/** Chunks written together: contiguous in the cache file, all wanted by a reader or all read-ahead. */
interface Run {
  chunks: BlobChunk[];
  /** A reader waits for these: write as soon as they are verified. */
  urgent: boolean;
  got: VerifiedChunk[];
  failed: number;
  written: boolean;
  /** The writer's memory for the whole run, chunks decompressed straight into their slots. */
  buf?: Uint8Array;
}

function chunkEnd(c: BlobChunk): number {
  return alignUp(c.uncompressedOffset + c.uncompressedSize, BLOCK_SIZE);
}

/**
 * Lays verified chunks (sorted) out in `buf`, which starts at uncompressed offset `at`: each
 * chunk's bytes at its place (copied, unless they were decompressed there), zeros around them.
 */
function layOut(buf: Uint8Array, at: number, parts: readonly VerifiedChunk[]): void {
  let pos = 0;
  for (const p of parts) {
    const rel = p.chunk.uncompressedOffset - at;
    if (rel > pos) buf.fill(0, pos, rel);
    if (p.data.buffer !== buf.buffer || p.data.byteOffset !== buf.byteOffset + rel) buf.set(p.data, rel);
    pos = rel + p.data.length;
  }
  buf.fill(0, pos, buf.length);
}

/**
 * Whether a chunk's fetch ended for want of time: its source timed out (every attempt, or a
 * body too slow), or the fill that started it was cancelled at its deadline. Other failures
 * (a corrupt chunk, a missing blob) are the failure memo's business, not this one's.
 */
function timedOut(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return true;
  const e = err as { code?: unknown; name?: unknown };
  return e?.code === 'ONDINE_ERR_TIMEOUT' || e?.name === 'AbortError' || e?.name === 'TimeoutError';
}

/** Groups chunks into runs of neighbours in the uncompressed layout. */
function planRuns(chunks: readonly BlobChunk[], urgent: boolean): Run[] {
  const sorted = [...chunks].sort((a, b) => a.uncompressedOffset - b.uncompressedOffset);
  const runs: Run[] = [];
  let cur: Run | undefined;
  let start = 0;
  for (const c of sorted) {
    const last = cur?.chunks[cur.chunks.length - 1];
    if (cur && last && c.uncompressedOffset === chunkEnd(last) && chunkEnd(c) - start <= MAX_RUN_BYTES) {
      cur.chunks.push(c);
    } else {
      cur = { chunks: [c], urgent, got: [], failed: 0, written: false };
      start = c.uncompressedOffset;
      runs.push(cur);
    }
  }
  return runs;
}

/** A chunked (Nydus/Ondine) blob's cache file. One instance per cache file, not per open. */
export class ChunkedBlobCache implements BlobCache {
  private readonly inFlight = new Map<number, Promise<void>>();
  private readonly done = new Set<number>();
  /** Chunks whose fetch failed lately, until when they are refused, and why. */
  private readonly failedUntil = new Map<number, { until: number; err: Error }>();
  /**
   * Chunks the cache file was found not to hold. Only this filler writes its cache file, so
   * the answer stays true until it writes them: asking the kernel once is enough.
   */
  private readonly absent = new Set<number>();
  /** The last few streams: a READ starting where one ended continues it. */
  private readonly streams: Stream[] = [];
  private recentAt = 0;
  readonly stats: FillStats = { chunksWritten: 0, bytesWritten: 0, amplifiedChunks: 0 };

  constructor(
    readonly size: number,
    private readonly blob: BlobHandle,
    private readonly opts: ChunkedCacheOptions = {},
  ) {}

  /** Chunks in the blob, once its chunk map has been loaded (until then, not complete). */
  private chunkCount = -1;

  /**
   * Forgets what is known present (not what is in flight): for a cache file the kernel may
   * have replaced, e.g. on a new cachefiles OPEN. The next fills ask the file again.
   */
  resetPresence(): void {
    this.done.clear();
    this.absent.clear();
  }

  get complete(): boolean {
    return this.chunkCount >= 0 && this.done.size >= this.chunkCount;
  }

  private cached(c: BlobChunk, writer: RangeWriter): boolean {
    if (this.done.has(c.index)) return true;
    if (this.absent.has(c.index) || !writer.isCached) return false;
    if (writer.isCached(c.uncompressedOffset, c.uncompressedSize)) {
      this.done.add(c.index);
      return true;
    }
    this.absent.add(c.index);
    return false;
  }

  async fill(offset: number, length: number, writer: RangeWriter, abort?: FillAbort): Promise<void> {
    if (offset >= Math.min(offset + length, this.size)) return;
    // Whole blocks: a block is written whole, so every chunk sharing a block with the range
    // must be part of it (or the gap fill would zero a chunk's tail).
    const end = Math.min(alignUp(offset + length, BLOCK_SIZE), this.size);
    offset = Math.floor(offset / BLOCK_SIZE) * BLOCK_SIZE;
    const reader = await this.blob.chunkReader();
    const map = reader.map;
    this.chunkCount = map.chunks.length;
    const covering = map.covering(offset, end - offset);
    const waits: Promise<void>[] = [];
    const fetch: BlobChunk[] = [];
    const refused = this.refused(covering);
    if (refused) throw refused;
    for (const c of covering) {
      if (this.cached(c, writer)) continue;
      const pending = this.inFlight.get(c.index);
      if (pending) waits.push(pending);
      else fetch.push(c);
    }
    const extra = this.readAhead(map, covering, writer);
    if (fetch.length || extra.length) {
      this.stats.amplifiedChunks += extra.length;
      // Making an AbortSignal costs more than the rest of a small READ's JS work: make one
      // only for a source that honours it.
      const signal = reader.source.cancellable === false ? undefined : abort?.signal;
      waits.push(...this.start(reader, writer, fetch, extra, signal));
    }
    await this.fillGaps(writer, covering, offset, end);
    // Settle only once every needed chunk has: a READ that fails must not leave writes of its
    // other chunks running (chunks decoded on worker threads finish after the failing one,
    // and the front end may close the cache file once the READ is answered).
    for (const r of await Promise.allSettled(waits)) if (r.status === 'rejected') throw r.reason;
  }

  async advise(offset: number, length: number, writer: RangeWriter): Promise<void> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset >= this.size) return;
    if ((this.opts.amplifyBytes ?? DEFAULT_READ_AHEAD_MAX) <= 0) return;
    await this.adviseNow(offset, Math.min(length, this.size - offset), writer).catch(() => undefined);
  }

  /** advise(): the READ moves its stream on (and may widen it) like a fill; only read-ahead is fetched. */
  private async adviseNow(offset: number, length: number, writer: RangeWriter): Promise<void> {
    const reader = await this.blob.chunkReader();
    const map = reader.map;
    this.chunkCount = map.chunks.length;
    const covering = map.covering(offset, length);
    const extra = this.readAhead(map, covering, writer);
    if (!extra.length) return;
    this.stats.amplifiedChunks += extra.length;
    this.start(reader, writer, [], extra);
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** The error to refuse a fill with when a chunk it needs failed lately; forgets expired marks. */
  private refused(covering: readonly BlobChunk[]): Error | undefined {
    if (this.failedUntil.size === 0) return undefined;
    const now = this.now();
    for (const c of covering) {
      const mark = this.failedUntil.get(c.index);
      if (!mark) continue;
      if (mark.until <= now) {
        this.failedUntil.delete(c.index);
        continue;
      }
      return new FetchError(`chunk ${c.index} of blob ${this.blob.blobId} failed ${Math.round((this.failedChunkMs - (mark.until - now)) / 100) / 10} s ago (${mark.err.message}); refused for ${Math.ceil((mark.until - now) / 1000)} s more`, { cause: mark.err });
    }
    return undefined;
  }

  private get failedChunkMs(): number {
    return this.opts.failedChunkMs ?? FAILED_CHUNK_MS;
  }

  private markFailed(index: number, err: Error): void {
    if (this.failedChunkMs <= 0) return;
    // Bounded like the blob's chunk count; a storm over a huge blob drops the oldest marks.
    if (this.failedUntil.size >= 65_536) this.failedUntil.delete(this.failedUntil.keys().next().value!);
    this.failedUntil.set(index, { until: this.now() + this.failedChunkMs, err });
  }

  /**
   * Read-ahead for sequential access: a READ that starts where one of the last few streams
   * ended (or within the chunk it ended in) continues that stream; one that starts just past
   * it widens the stream's window (0, then readAheadStartBytes, then doubling up to
   * amplifyBytes). The chunks of the window past the READ that are neither cached nor in
   * flight are fetched now (keeping the window full, so fetching runs ahead of the reader).
   * A READ elsewhere (random access, or a file's first read) starts a stream with no window
   * and fetches only what it needs: read-ahead there would fetch, decompress and verify bytes
   * nobody may ask for.
   */
  private readAhead(map: BlobChunkMap, covering: BlobChunk[], writer: RangeWriter): BlobChunk[] {
    const cap = this.opts.amplifyBytes ?? DEFAULT_READ_AHEAD_MAX;
    if (cap <= 0 || covering.length === 0) return [];
    const first = map.position(covering[0]!);
    const next = first + covering.length;
    let stream: Stream | undefined;
    let grows = false;
    // Read-ahead fills the chunks past the reader, and the kernel asks only for what is not
    // filled: the next READ of a sequential reader that reaches us may start anywhere up to the
    // end of its read-ahead (or just past it), not only where its last READ ended.
    for (const s of this.streams) {
      if (first >= s.next && first <= Math.max(s.next, s.ahead) + SEQUENTIAL_SLACK) {
        stream = s;
        grows = true;
        break;
      }
      if (first === s.next - 1) stream = s;
    }
    if (!stream) {
      this.streams[this.recentAt] = { next, ahead: next, window: 0, from: covering[0]!.compressedOffset };
      this.recentAt = (this.recentAt + 1) % RECENT_READS;
      return [];
    }
    stream.next = Math.max(stream.next, next);
    if (grows) {
      const start = Math.min(cap, this.opts.readAheadStartBytes ?? DEFAULT_READ_AHEAD_START);
      // Doubling, but never past the bytes the stream has read so far: read hints make
      // continuing READs frequent, and a short sequential read (two small files) must not
      // pull in megabytes nobody reads.
      const last = covering[covering.length - 1]!;
      const run = last.compressedOffset + last.compressedSize - stream.from;
      stream.window = stream.window === 0 ? start : Math.min(cap, Math.max(start, Math.min(stream.window * 2, run)));
    }
    const budget = stream.window;
    const extra: BlobChunk[] = [];
    let bytes = 0;
    let i = first + covering.length;
    for (; i < map.chunks.length && bytes < budget; i++) {
      const c = map.chunks[i]!;
      bytes += c.compressedSize;
      if (this.inFlight.has(c.index) || this.cached(c, writer)) continue;
      extra.push(c);
    }
    stream.ahead = Math.max(stream.ahead, i);
    return extra;
  }

  /**
   * Starts one fetch for `needed` + `extra`, written through `writer` (the fd of the fill that
   * started it; later fills of the same chunks wait on it); returns the needed chunks' promises.
   */
  private start(reader: ChunkReader, writer: RangeWriter, needed: BlobChunk[], extra: BlobChunk[], signal?: AbortSignal): Promise<void>[] {
    const deferred = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
    const out: Promise<void>[] = [];
    const neededIdx = new Set(needed.map((c) => c.index));
    const all = [...needed, ...extra];
    for (const c of all) {
      const p = new Promise<void>((resolve, reject) => deferred.set(c.index, { resolve, reject }));
      // Read-ahead failures are nobody's business until someone reads that chunk.
      p.catch(() => undefined);
      const tracked = p.finally(() => this.inFlight.delete(c.index));
      tracked.catch(() => undefined);
      this.inFlight.set(c.index, tracked);
      if (neededIdx.has(c.index)) out.push(tracked);
    }
    const settle = (index: number, err?: Error) => {
      const d = deferred.get(index);
      if (!d) return;
      deferred.delete(index);
      if (err) d.reject(err);
      else d.resolve();
    };
    const runOf = new Map<number, Run>();
    const runs = [...planRuns(needed, true), ...planRuns(extra, false)];
    for (const r of runs) for (const c of r.chunks) runOf.set(c.index, r);
    const delivered = new Set<number>();
    // Writes a run once every chunk of it was verified (or failed); what failed stays a hole.
    const release = writer.hold?.();
    const writes: Promise<void>[] = [];
    const maybeWrite = (run: Run): Promise<void> | undefined => {
      if (run.written || run.got.length + run.failed < run.chunks.length) return undefined;
      run.written = true;
      const w = this.writeRun(writer, run, settle);
      writes.push(w);
      return w;
    };
    // With writer memory, each chunk is decompressed into its slot of its run's buffer: the
    // write then takes the buffer as is, no copy.
    const alloc = writer.alloc?.bind(writer);
    const into = alloc && ((c: BlobChunk): Uint8Array | undefined => {
      const run = runOf.get(c.index)!;
      const first = run.chunks[0]!;
      run.buf ??= alloc(chunkEnd(run.chunks[run.chunks.length - 1]!) - first.uncompressedOffset);
      const rel = c.uncompressedOffset - first.uncompressedOffset;
      return run.buf.subarray(rel, rel + c.uncompressedSize);
    });
    let fetchError: Error | undefined;
    const onChunk = ({ chunk, data }: VerifiedChunk) => {
      delivered.add(chunk.index);
      const run = runOf.get(chunk.index)!;
      run.got.push({ chunk, data });
      const w = maybeWrite(run);
      // Awaiting lets the event loop complete the waiting READ before the read-ahead chunks
      // behind it are verified; read-ahead writes run while the next chunks are verified.
      return run.urgent ? w : undefined;
    };
    const onError = (c: BlobChunk, err: Error) => {
      delivered.add(c.index);
      if (timedOut(err, neededIdx.has(c.index) ? signal : undefined)) this.markFailed(c.index, err);
      settle(c.index, err);
      const run = runOf.get(c.index)!;
      run.failed++;
      void maybeWrite(run);
    };
    // A gap between the chunks fetched here is chunks in flight or cached: reading through it
    // would fetch their bytes a second time. What a reader waits for goes to the scheduler as
    // demand; read-ahead as its own class, in reads small enough to keep several in flight
    // (and cancelled with the fill that started it only while queued: its bytes are wanted
    // by the reader's next READs, so a read in flight is left to land).
    const common = { maxGap: 0, ...(into ? { into } : {}), onError };
    const fetches: Promise<void>[] = [];
    if (needed.length) fetches.push(reader.fetch(needed, onChunk, { ...common, ...(signal ? { signal } : {}), urgent: () => true, fillClass: 'demand' }));
    if (extra.length) fetches.push(reader.fetch(extra, onChunk, { ...common, urgent: () => false, fillClass: 'readahead', maxRead: this.opts.readAheadReadBytes ?? DEFAULT_READ_AHEAD_READ }));
    void Promise.all(fetches)
      .catch((err: Error) => { fetchError = err; })
      .finally(() => {
        // Chunks the fetch never delivered fail (a run waiting on them then writes the rest).
        for (const c of all) {
          if (delivered.has(c.index)) continue;
          const err = fetchError ?? new Error(`chunk ${c.index} was not delivered`);
          if (timedOut(err, neededIdx.has(c.index) ? signal : undefined)) this.markFailed(c.index, err);
          settle(c.index, err);
          runOf.get(c.index)!.failed++;
        }
        for (const r of runs) void maybeWrite(r);
        // Every run has been written (or has failed) once these settle: the fd may go.
        void Promise.allSettled(writes).then(() => release?.());
      });
    return out;
  }

  /**
   * One write for the verified chunks of a run (when they are neighbours, as they are unless
   * one failed); each chunk's promise settles when the write that holds it does.
   */
  private writeRun(writer: RangeWriter, run: Run, settle: (index: number, err?: Error) => void): Promise<void> {
    const parts = run.got.sort((a, b) => a.chunk.uncompressedOffset - b.chunk.uncompressedOffset);
    if (!parts.length) return Promise.resolve();
    if (run.buf && run.failed === 0) {
      const at = run.chunks[0]!.uncompressedOffset;
      layOut(run.buf, at, parts);
      return this.writeParts(writer, at, run.buf, parts, settle);
    }
    const groups: VerifiedChunk[][] = [];
    for (const p of parts) {
      const g = groups[groups.length - 1];
      const last = g?.[g.length - 1];
      if (g && last && p.chunk.uncompressedOffset === chunkEnd(last.chunk)) g.push(p);
      else groups.push([p]);
    }
    // Some chunk failed (its slot, if any, holds unverified bytes): write the verified
    // neighbours group by group, each in memory of its own.
    return Promise.all(groups.map((g) => {
      const at = g[0]!.chunk.uncompressedOffset;
      if (g.length === 1) return this.writeParts(writer, at, g[0]!.data, g, settle);
      const data = Buffer.allocUnsafe(chunkEnd(g[g.length - 1]!.chunk) - at);
      layOut(data, at, g);
      return this.writeParts(writer, at, data, g, settle);
    })).then(() => undefined);
  }

  private async writeParts(writer: RangeWriter, at: number, data: Uint8Array, parts: VerifiedChunk[], settle: (index: number, err?: Error) => void): Promise<void> {
    try {
      await writer.write(at, data);
    } catch (err) {
      for (const p of parts) settle(p.chunk.index, err as Error);
      return;
    }
    const wasComplete = this.complete;
    for (const p of parts) {
      this.done.add(p.chunk.index);
      this.absent.delete(p.chunk.index);
      this.stats.chunksWritten++;
      this.stats.bytesWritten += p.data.length;
      settle(p.chunk.index);
    }
    if (!wasComplete && this.complete) this.opts.onComplete?.();
  }

  /**
   * Blocks of the range (block aligned at `offset`) that no chunk covers hold no data; the
   * kernel still needs them filled.
   */
  private async fillGaps(writer: RangeWriter, covering: BlobChunk[], offset: number, end: number): Promise<void> {
    let pos = offset;
    const gaps: Array<[number, number]> = [];
    for (const c of covering) {
      if (c.uncompressedOffset > pos) gaps.push([pos, c.uncompressedOffset]);
      pos = Math.max(pos, chunkEnd(c));
    }
    const tail = alignUp(end, BLOCK_SIZE);
    if (pos < tail) gaps.push([pos, tail]);
    for (const [a, b] of gaps) {
      if (writer.isCached?.(a, b - a)) continue;
      await writer.write(a, Buffer.alloc(b - a));
    }
  }
}

export interface FlatCacheOptions {
  /**
   * Fill whole aligned windows of this many bytes around each READ (a power-of-two multiple
   * of the block size). For the bootstrap, whose bytes the daemon holds in memory, one
   * window covering all of it turns every later metadata READ into a cache hit.
   */
  window?: number;
}

/** A cache file filled from a flat, uncompressed file-like source (the bootstrap, mkfs.erofs blobs). */
export class FlatBlobCache implements BlobCache {
  constructor(
    readonly size: number,
    private readonly read: (offset: number, length: number) => Promise<Buffer>,
    private readonly opts: FlatCacheOptions = {},
  ) {}

  /** Flat caches are small or device images; nothing asks whether they are complete. */
  readonly complete = false;

  /** Windows being filled, by start: concurrent READs of one window share its fill. */
  private readonly windows = new Map<number, Promise<void>>();

  async fill(offset: number, length: number, writer: RangeWriter): Promise<void> {
    const window = this.opts.window ?? 0;
    if (window <= BLOCK_SIZE) return this.fillRange(writer, Math.floor(offset / BLOCK_SIZE) * BLOCK_SIZE, Math.min(offset + length, this.size));
    const waits: Promise<void>[] = [];
    for (let at = Math.floor(offset / window) * window; at < Math.min(offset + length, this.size); at += window) {
      let p = this.windows.get(at);
      if (!p) {
        const start = at;
        const end = Math.min(at + window, this.size);
        p = (writer.isCached?.(start, end - start) ? Promise.resolve() : this.fillRange(writer, start, end))
          .finally(() => this.windows.delete(start));
        this.windows.set(start, p);
      }
      waits.push(p);
    }
    await Promise.all(waits);
  }

  private async fillRange(writer: RangeWriter, start: number, end: number): Promise<void> {
    if (start >= end) return;
    const step = 4 << 20;
    for (let at = start; at < end; at += step) {
      const n = Math.min(step, end - at);
      await writer.write(at, await this.read(at, n));
    }
  }
}
