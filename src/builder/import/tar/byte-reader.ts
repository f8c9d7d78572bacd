// Pull-based byte access over an async stream of buffers. The tar reader asks for exactly what
// it needs next, so nothing is read ahead of the consumer: while the chunk sink is busy with a
// file, the decompressor and the file read are paused (backpressure by construction). Buffers
// handed out are views of the stream's chunks, which streams never reuse once pushed.

const EMPTY = Buffer.alloc(0);

export class ByteReader {
  readonly #it: AsyncIterator<Buffer>;
  #cur: Buffer = EMPTY;
  #pos = 0;
  #offset = 0;
  #eof = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  async #fill(): Promise<boolean> {
    while (this.#pos >= this.#cur.length) {
      if (this.#eof) return false;
      const r = await this.#it.next();
      if (r.done) {
        this.#eof = true;
        this.#cur = EMPTY;
        this.#pos = 0;
        return false;
      }
      this.#cur = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      this.#pos = 0;
    }
    return true;
  }

  /** Up to `max` bytes, at least one unless the stream has ended (then an empty buffer). */
  async readUpTo(max: number): Promise<Buffer> {
    if (max <= 0 || !(await this.#fill())) return EMPTY;
    const n = Math.min(max, this.#cur.length - this.#pos);
    const out = this.#cur.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.#offset += n;
    return out;
  }

  /** Exactly `n` bytes, or fewer only when the stream ends first. */
  async readExact(n: number): Promise<Buffer> {
    const first = await this.readUpTo(n);
    if (first.length === n || first.length === 0) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const more = await this.readUpTo(n - got);
      if (more.length === 0) break;
      parts.push(more);
      got += more.length;
    }
    return Buffer.concat(parts, got);
  }

  /** Discards up to `n` bytes; returns how many were there. */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      const got = await this.readUpTo(n - done);
      if (got.length === 0) break;
      done += got.length;
    }
    return done;
  }

  /** Stops the underlying stream early (it is destroyed, its file closed). */
  async close(): Promise<void> {
    this.#eof = true;
    await this.#it.return?.();
  }
}
