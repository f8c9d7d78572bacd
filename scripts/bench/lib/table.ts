// A result table as the benchmark reports print it: markdown for BENCHMARKS.md, or aligned
// columns for a terminal (first column left, the rest right).
export function formatTable(header: readonly string[], rows: readonly string[][], markdown: boolean): string[] {
  if (markdown) {
    // A cell's own `|` (a shell pipeline in a label) would end the cell.
    const row = (cells: readonly string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
    return [row(header), `|${header.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map(row)];
  }
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((t) => t[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}
