// Read hints, decided where reads are allowed without the worker: the supervisor's
// native/supervisor/hints.c, and this mirror for the group reader (no supervisor, or after a
// take-over). A sequential reader inside read-ahead that already landed raises no fill, so
// the blob cache's read-ahead would move on only at the reader's next miss, a stall per
// window. A read that continues the previous read of its file, lies a step past the last read
// the filler heard of, and has a hole within the look-ahead past it, is passed on to the
// filler (BlobCache.advise). Pure: the caller checks the hole. Keep in step with hints.h.

/** Files remembered (cache files being read now). */
export const HINT_FILES = 16;
/** A read starting within this of the previous read's end continues it. */
export const HINT_SLACK = 128 << 10;
/** At most one hint per this many bytes a stream moves. */
export const HINT_STEP = 1 << 20;
/** A hole this close past the read means its read-ahead must move. */
export const HINT_LOOKAHEAD = 4 << 20;

/** st_dev/st_ino as the caller has them (numbers from fstat, bigints from the link); one kind per table. */
type Id = number | bigint;

interface HintFile {
  dev: Id;
  ino: Id;
  prevEnd: number;
  hintedAt: number;
}

export class ReadHints {
  private readonly files: HintFile[] = [];
  private next = 0;

  /**
   * Notes a read [offset, end) of the file. For a read that goes to the filler anyway
   * (`forwarded`), returns false. For one allowed at once, returns the range [end, lookEnd)
   * past it to check for a hole, when a hint is due; undefined when none is.
   */
  note(dev: Id, ino: Id, offset: number, end: number, size: number, forwarded: boolean): { lookEnd: number } | undefined {
    let f = this.files.find((x) => x.dev === dev && x.ino === ino);
    if (!f) {
      f = { dev, ino, prevEnd: end, hintedAt: offset };
      this.files[this.next] = f;
      this.next = (this.next + 1) % HINT_FILES;
      return undefined;
    }
    const continues = offset + HINT_SLACK >= f.prevEnd && offset <= f.prevEnd + HINT_SLACK;
    f.prevEnd = end;
    if (forwarded) {
      f.hintedAt = offset;
      return undefined;
    }
    const stepDue = offset < f.hintedAt || offset - f.hintedAt >= HINT_STEP;
    if (!continues || !stepDue || end >= size) return undefined;
    return { lookEnd: Math.min(size, end + HINT_LOOKAHEAD) };
  }

  /** The hint for this read was sent: the next is due a step further on. */
  sent(dev: Id, ino: Id, offset: number): void {
    const f = this.files.find((x) => x.dev === dev && x.ino === ino);
    if (f) f.hintedAt = offset;
  }
}
