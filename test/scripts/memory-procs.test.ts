// The memory benchmark's /proc/<pid>/status parser, on this process's own status and on text
// missing a field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseStatus } from '../../scripts/bench/memory/procs.js';

test('VmRSS, VmHWM and Threads of this process, as the kernel reports them', () => {
  const before = parseStatus(readFileSync('/proc/self/status', 'utf8'));
  const grow = Buffer.alloc(64 << 20, 1); // touched pages: resident
  const after = parseStatus(readFileSync('/proc/self/status', 'utf8'));
  // The main thread's name: the executable's, or what Node 24 on names it.
  assert.ok(['node', 'MainThread'].includes(after.name), `thread name ${after.name}`);
  assert.ok(after.threads >= 1);
  assert.ok(after.hwmKb >= after.rssKb);
  assert.ok(after.rssKb - before.rssKb >= 60 << 10, `RSS grew by ${after.rssKb - before.rssKb} kB after touching 64 MiB`);
  assert.equal(grow[grow.length - 1], 1);
});

test('a status without the fields is refused, not read as zero', () => {
  assert.throws(() => parseStatus('Name:\tnode\nThreads:\t3\n'), /no VmRSS/);
  assert.deepEqual(parseStatus('Name:\tondine-supervis\nVmHWM:\t  1600 kB\nVmRSS:\t  1500 kB\nThreads:\t1\n'), { name: 'ondine-supervis', rssKb: 1500, hwmKb: 1600, threads: 1 });
});
