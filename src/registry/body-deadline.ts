// The minimum rate of a response body: a body that brings fewer than `minBytesPerSec` ×
// `windowMs` bytes in any window of `windowMs` (checked every tenth of a window, from one
// window after the headers) is destroyed with a retryable ONDINE_ERR_TIMEOUT. A registry
// that drips a byte every 2 s is so broken off within ~10 s, whatever its size, where
// undici's idle timeout alone would wait forever. The consumer reports what it reads
// (`seen`); a window in which the consumer, not the registry, was behind (bytes waiting
// unread) does not count; the watch ends when the body closes. Owns the timer and the counts, nothing else.
import { RegistryError } from './errors.js';

export interface BodyRate {
  minBytesPerSec: number;
  windowMs: number;
}

/** What the watch needs of a body: undici's BodyReadable and node streams both fit. */
export interface WatchedBody {
  destroy(err?: Error): unknown;
  once(event: 'close', fn: () => void): unknown;
  readonly destroyed?: boolean;
  /** Bytes received and not yet read: the consumer, not the registry, is behind. */
  readonly readableLength?: number;
}

export class BodyDeadline {
  private total = 0;
  /** Byte totals at the last ticks, oldest first: the window's start is the first. */
  private readonly samples: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly ticksPerWindow = 10;

  constructor(private readonly body: WatchedBody, private readonly rate: BodyRate, private readonly what: string) {
    this.samples.push(0);
    this.timer = setInterval(() => this.tick(), Math.max(1, rate.windowMs / this.ticksPerWindow));
    this.timer.unref();
    body.once('close', () => this.stop());
  }

  /** `n` more bytes of the body were read. */
  seen(n: number): void {
    this.total += n;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    if (this.body.destroyed) return this.stop();
    if ((this.body.readableLength ?? 0) > 0) {
      // Our own consumer is behind (backpressure): no fault of the registry's; start over.
      this.samples.length = 0;
      this.samples.push(this.total);
      return;
    }
    this.samples.push(this.total);
    if (this.samples.length <= this.ticksPerWindow) return;
    const since = this.samples.shift()!;
    const got = this.total - since;
    const need = (this.rate.minBytesPerSec * this.rate.windowMs) / 1000;
    if (got >= need) return;
    this.stop();
    const kib = Math.round(this.rate.minBytesPerSec / 1024);
    this.body.destroy(new RegistryError('ONDINE_ERR_TIMEOUT',
      `${this.what}: the body came slower than ${kib} KiB/s (${got} bytes in ${this.rate.windowMs / 1000} s)`, { retryable: true }));
  }
}
