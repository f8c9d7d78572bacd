// Cachefiles end to end on a real kernel: builds the fixture images on the host, boots the
// QEMU VM (kernel from vm/build-kernel.sh, with CACHEFILES_ONDEMAND) once, runs the guest
// tests there and reports each of them here as a subtest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeFixtures } from './fixtures.js';
import { gzipBomb } from '../helpers/hostile-checks.js';
import { writeFile } from 'node:fs/promises';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SHARED = process.env.ONDINE_SHARED ?? join(REPO, '..', 'shared');

interface TapPoint { ok: boolean; name: string; depth: number; detail: string[]; skip?: string }

export function parseTap(text: string): TapPoint[] {
  const points: TapPoint[] = [];
  let current: TapPoint | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\s*)(not ok|ok) \d+ - (.*?)(\s+# (.*))?$/.exec(line);
    if (m) {
      current = { ok: m[2] === 'ok', name: m[3]!, depth: m[1]!.length / 4, detail: [] };
      const skip = /^SKIP\b\s*(.*)$/i.exec(m[5] ?? '');
      if (skip) current.skip = skip[1] || 'skipped in the guest';
      points.push(current);
    } else if (current && /^\s+(error|message|expected|actual|location|stack|code|failureType):?/.test(line)) {
      current.detail.push(line.trim());
    }
  }
  return points;
}

interface VmRun { done: Promise<{ code: number | null; out: string }>; kill(): Promise<void> }

/**
 * vm/run.sh in a process group of its own, which `kill()` ends (SIGTERM: run.sh stops QEMU and
 * removes its files; SIGKILL to the group after a grace period). If this process dies without
 * that, run.sh gets SIGTERM (parent-death signal) and QEMU dies with it (run.sh starts it so).
 * ONDINE_VM_NO_BUILD: the kernel is built by setup, never inside this test's timeout.
 */
function runVm(fixtures: string): VmRun {
  const p = spawn('setpriv', ['--pdeathsig', 'TERM', '--', 'bash', join(REPO, 'vm/run.sh'), '--timeout', '2400', '--mem', '3072', '--cache-size', '4096',
    '--env', `ONDINE_VM_FIXTURES=${fixtures}`,
    ...(process.env.ONDINE_VM_GUESTS ? ['--env', `ONDINE_VM_GUESTS=${process.env.ONDINE_VM_GUESTS}`] : []),
    join(REPO, 'test/vm/guest/run-guest.sh')],
  { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ONDINE_VM_NO_BUILD: '1' } });
  let out = '';
  p.stdout.on('data', (c: Buffer) => { out += c; });
  p.stderr.on('data', (c: Buffer) => { process.stderr.write(c); });
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  const group = (sig: NodeJS.Signals) => { try { process.kill(-p.pid!, sig); } catch { /* already gone */ } };
  return {
    done: exited.then((code) => ({ code, out })),
    kill: async () => {
      if (p.pid === undefined) return;
      group('SIGTERM');
      const timer = setTimeout(() => group('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      group('SIGKILL');  // whatever run.sh's trap did not reap
    },
  };
}

test('cachefiles on-demand in the VM', { timeout: 60 * 60_000, skip: process.getuid?.() !== 0 ? 'needs root (mkfs, mounts, QEMU)' : false }, async (t) => {
  const fixtures = await mkdtemp(join(tmpdir(), 'ondine-vmfix-'));
  let vm: VmRun | undefined;
  // The VM first: its guest reads the fixtures.
  t.after(async () => { await vm?.kill(); await rm(fixtures, { recursive: true, force: true }); });
  await makeFixtures(fixtures, SHARED);
  // The hostile tier's decompression bomb, made here: the guest (TCG) would take minutes.
  await writeFile(join(fixtures, 'hostile-bomb.gz'), await gzipBomb(1.5 * 1024 * 1024 * 1024));
  vm = runVm(fixtures);
  const { code, out } = await vm.done;
  const points = parseTap(out);
  // A file's own point only when it failed outside its tests (an import error, say).
  const shown = points.filter((p) => p.depth >= 1 || !p.name.endsWith('.guest.js') || !p.ok);
  for (const p of shown) {
    await t.test(`${'  '.repeat(Math.max(0, p.depth - 1))}${p.name}`, { skip: p.skip ?? false }, () => {
      assert.ok(p.ok, `guest test failed: ${p.name}\n${p.detail.join('\n')}`);
    });
  }
  if (code !== 0) t.diagnostic(out.split('\n').slice(-80).join('\n'));
  assert.ok(points.length > 0, 'the guest reported no tests');
  assert.equal(code, 0, `the VM run exited ${code}`);
});
