// A ChunkSink that keeps each file's segments in memory, for tests: it records exactly which
// ranges an importer handed over (so a test can prove holes were never read) and rejects any
// stream that breaks the ChunkSink contract (unordered, overlapping or out-of-range segments).
import type { ChunkSink, Segment } from '../../src/builder/tree.js';

export interface MemoryContent {
  readonly kind: 'chunks';
  readonly id: number;
  readonly size: number;
  /** Copies of the segments as received. */
  readonly segments: readonly Segment[];
  /** Sum of the segment lengths: the bytes the importer actually read. */
  readonly bytesReceived: number;
}

export interface MemorySinkOptions {
  /** Wait this long after every segment: a slow consumer, to exercise backpressure. */
  delayMs?: number;
  /** Throw when asked to store the n-th file (0-based). */
  failOnFile?: number;
}

export class MemorySink implements ChunkSink<MemoryContent> {
  readonly files: MemoryContent[] = [];
  readonly #opts: MemorySinkOptions;

  constructor(opts: MemorySinkOptions = {}) {
    this.#opts = opts;
  }

  get bytesReceived(): number {
    return this.files.reduce((n, f) => n + f.bytesReceived, 0);
  }

  async storeFile(size: number, segments: AsyncIterable<Segment>): Promise<MemoryContent> {
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`memory sink: bad size ${size}`);
    if (this.#opts.failOnFile === this.files.length) throw new Error(`memory sink: refusing file #${this.files.length}`);
    const kept: Segment[] = [];
    let end = 0;
    let received = 0;
    for await (const seg of segments) {
      if (!Number.isSafeInteger(seg.offset) || seg.offset < end) throw new Error(`memory sink: segment at ${seg.offset} is out of order (previous ended at ${end})`);
      if (seg.offset + seg.data.length > size) throw new Error(`memory sink: segment ${seg.offset}+${seg.data.length} beyond size ${size}`);
      if (seg.data.length === 0) throw new Error(`memory sink: empty segment at ${seg.offset}`);
      kept.push({ offset: seg.offset, data: Buffer.from(seg.data) });
      end = seg.offset + seg.data.length;
      received += seg.data.length;
      if (this.#opts.delayMs) await new Promise((r) => setTimeout(r, this.#opts.delayMs));
    }
    const content: MemoryContent = { kind: 'chunks', id: this.files.length, size, segments: kept, bytesReceived: received };
    this.files.push(content);
    return content;
  }
}

/** Bytes [offset, offset+length) of a stored file, zeros in the holes. */
export function readContent(c: MemoryContent, offset = 0, length = c.size - offset): Buffer {
  if (offset < 0 || offset + length > c.size) throw new RangeError(`read ${offset}+${length} beyond size ${c.size}`);
  const out = Buffer.alloc(length);
  for (const s of c.segments) {
    const from = Math.max(offset, s.offset);
    const to = Math.min(offset + length, s.offset + s.data.length);
    if (from < to) s.data.copy(out, from - offset, from - s.offset, to - s.offset);
  }
  return out;
}

/** Narrows an unknown content handle (TreeNode.content) to what this sink produced. */
export function asMemory(content: unknown): MemoryContent {
  const c = content as MemoryContent | undefined;
  if (c?.kind !== 'chunks' || !Array.isArray(c.segments)) throw new TypeError('not a memory-sink content handle');
  return c;
}
