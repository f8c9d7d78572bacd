// A node:test reporter beside TAP, for scripts/tiers/tiers.mjs: one JSON line per test that
// skipped itself for want of root or a capability (the unit tier fails on those: nothing would
// run them), and per failing test, so the tier can name the files at the end.
const NEEDS_ROOT = /\broot\b|\bCAP_[A-Z_]+\b|\bprivilege/i;

export default async function* guardReporter(source) {
  for await (const event of source) {
    const d = event.data ?? {};
    if (event.type === 'test:pass' && d.skip !== undefined && d.skip !== false) {
      const reason = typeof d.skip === 'string' ? d.skip : '';
      if (NEEDS_ROOT.test(reason)) yield JSON.stringify({ kind: 'root-skip', file: d.file, name: d.name, reason }) + '\n';
    } else if (event.type === 'test:fail') {
      yield JSON.stringify({ kind: 'fail', file: d.file, name: d.name }) + '\n';
    }
  }
}
