// The memory benchmark's table (scripts/bench/memory.sh): one row per process and moment, its
// VmRSS and VmHWM in MB, and VmRSS as a ratio of the idle `node -e` baseline of the same run.
//   node report.js <results.jsonl> [--markdown]
import { readFileSync } from 'node:fs';
import { formatTable } from '../lib/table.js';

interface Row { label: string; role: string; pid: number; name: string; rssKb: number; hwmKb: number; threads: number; sec?: number }

/** What each role is, in the table's words. */
const ROLES: Record<string, string> = {
  baseline: '`node -e` (idle baseline)',
  supervisor: 'daemon supervisor (C)',
  worker: 'daemon worker (node)',
  snapshotter: 'snapshotter (node, gRPC)',
};

const LABELS: Record<string, string> = {
  idle: 'idle after start-up',
  mounted: 'after a mount by reference',
  reading: 'during a cold read (peak VmRSS sampled)',
  after: 'after the cold read',
  calls: 'after Prepare/Remove pairs and a List',
};

const STARTS: Record<string, string> = {
  baseline: '`node -e 0`',
  daemon: '`ondine daemon` until it answers (supervisor + worker)',
  snapshotter: '`ondine snapshotter` until it logs ready',
};

export function report(allRows: readonly Row[], markdown: boolean): string[] {
  const rows = allRows.filter((r) => r.label !== 'startup');
  const starts = allRows.filter((r) => r.label === 'startup');
  const startBase = starts.find((r) => r.role === 'baseline')?.sec;
  const startTable = starts.length ? ['', ...formatTable(['start-up', 's', 'x node -e 0'],
    starts.map((r) => [STARTS[r.role] ?? r.role, r.sec!.toFixed(3), startBase ? (r.sec! / startBase).toFixed(2) : '-']), markdown)] : [];
  const base = rows.find((r) => r.role === 'baseline' && r.label === 'idle');
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  const out = formatTable(['process', 'moment', 'VmRSS MB', 'VmHWM MB', 'threads', 'RSS / node -e'],
    rows.map((r) => [ROLES[r.role] ?? r.role, LABELS[r.label] ?? r.label, mb(r.rssKb), mb(r.hwmKb), String(r.threads), base ? (r.rssKb / base.rssKb).toFixed(2) : '-']), markdown);
  return [...out, ...startTable];
}

function main(): void {
  const [file, ...flags] = process.argv.slice(2);
  if (!file) { process.stderr.write('usage: report.js <results.jsonl> [--markdown]\n'); process.exit(2); }
  const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
  process.stdout.write(`${report(rows, false).join('\n')}\n`);
  if (flags.includes('--markdown')) process.stdout.write(`\n${report(rows, true).join('\n')}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
