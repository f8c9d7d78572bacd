// Bytes and time per stage of a build or conversion (fetch, gunzip, chunk digest, compress,
// blob hash, write, upload). Stages overlap, so each keeps two clocks: busy time (the sum of
// the intervals it was working, over all its threads) and its span (first start to last end,
// from the clock's creation). Pure bookkeeping: the stages call `add`, the CLI prints.

export const STAGES = ['fetch', 'gunzip', 'digest', 'compress', 'hash', 'write', 'upload'] as const;
export type StageName = (typeof STAGES)[number];

export interface StageStat {
  /** Bytes the stage took in (fetch: stored bytes; gunzip: compressed bytes; upload: bytes sent). */
  bytes: number;
  /** Bytes the stage put out, where that differs (gunzip: tar bytes; compress: stored bytes). */
  bytesOut: number;
  /** Sum of the stage's working intervals, ms (over every thread it ran on). */
  busyMs: number;
  /** First start and last end, ms since the clock began; -1 while the stage has not run. */
  startMs: number;
  endMs: number;
}

export class StageClock {
  private readonly t0 = performance.now();
  readonly stats: Record<StageName, StageStat>;

  constructor() {
    this.stats = Object.fromEntries(STAGES.map((s) => [s, { bytes: 0, bytesOut: 0, busyMs: 0, startMs: -1, endMs: -1 }])) as Record<StageName, StageStat>;
  }

  now(): number {
    return performance.now();
  }

  /** One working interval of `stage` that ended now and lasted `ms`. */
  add(stage: StageName, bytes: number, ms: number, bytesOut = 0): void {
    const s = this.stats[stage];
    const end = performance.now() - this.t0;
    const start = end - ms;
    s.bytes += bytes;
    s.bytesOut += bytesOut;
    s.busyMs += ms;
    if (s.startMs < 0 || start < s.startMs) s.startMs = Math.max(0, start);
    if (end > s.endMs) s.endMs = end;
  }

  /** Stages that ran, in pipeline order. */
  summary(): Array<{ stage: StageName } & StageStat> {
    return STAGES.filter((s) => this.stats[s].endMs >= 0).map((s) => ({ stage: s, ...this.stats[s] }));
  }
}

/** One line per stage: `fetch: 217.8 MiB, busy 1.20 s, active 0.00–9.81 s, 181.5 MiB/s busy`. */
export function formatStages(rows: ReturnType<StageClock['summary']>, fmt: (n: number) => string): string[] {
  return rows.map((r) => {
    const out = r.bytesOut ? ` -> ${fmt(r.bytesOut)}` : '';
    const rate = r.busyMs > 0 ? `, ${fmt(r.bytes / (r.busyMs / 1000))}/s while busy` : '';
    return `${r.stage}: ${fmt(r.bytes)}${out}, busy ${(r.busyMs / 1000).toFixed(2)} s${rate}, active ${(r.startMs / 1000).toFixed(2)}-${(r.endMs / 1000).toFixed(2)} s`;
  });
}
