// Time bounded end to end, against a real docker-registry behind a fault proxy, on the host
// kernel's fanotify path (a real mount by reference): with the default 30 s read timeout, a
// blob source that hangs, or drips a byte every 2 s, gives EIO within 35 s, for one reader and
// for 16 concurrent readers (one read() raises several events in turn: the chunk whose fill
// timed out is refused at once to the later ones, instead of each waiting its own deadline).
// A dripping manifest makes `ondine mount` fail within its --timeout with one line, and the
// daemon's pull stops with it: no request reaches the proxy after, the drip is closed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { startFaultProxy, startRegistry, type FaultProxy, type RegistryServer } from '../helpers/registry-env.js';

/** The bound the issue sets for a 30 s read timeout (the daemon's default, used here). */
const EIO_WITHIN_MS = 35_000;
const FILE_BYTES = 300_000;
const READER = fileURLToPath(new URL('../helpers/concurrent-reader.js', import.meta.url));

describe('registry deadlines: a hanging or dripping registry ends in EIO within 35 s (fanotify, real mount)', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let registry: RegistryServer;
  let proxy: FaultProxy;
  let d: FanotifyDaemon;
  let mnt: string;
  const files = new Map<string, Buffer>();

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'reg-deadline');
    registry = await startRegistry();
    suite.after(() => registry.stop());
    proxy = await startFaultProxy(registry.url);
    suite.after(() => proxy.stop());
    const src = join(work, 'src');
    mkdirSync(src);
    // Every file its own chunk(s): one per test case and reader, none read before its case.
    const names = ['warm', 'hang-1', 'drip-1', ...Array.from({ length: 16 }, (_, i) => [`hang-16-${i}`, `drip-16-${i}`]).flat()];
    names.forEach((n, i) => files.set(n, pseudoRandomBytes(900 + i, FILE_BYTES)));
    for (const [n, b] of files) writeFileSync(join(src, n), b);
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    await cliOk(['push', join(work, 'img'), `${registry.host}/deadline/app:1`]);
    // The default read timeout (30 s); no read-ahead, so each case fetches its own files only.
    d = await startFanotifyDaemon(suite, work, { extraArgs: ['--amplify', '0'] });
    mnt = join(work, 'mnt');
    await d.mount(`${proxy.host}/deadline/app:1`, mnt);
    const warm = await readInChild(work, [{ path: join(mnt, 'warm') }]);
    assert.deepEqual({ result: warm.outcomes[0]?.result, sha: warm.outcomes[0]?.sha }, { result: 'ok', sha: sha256(files.get('warm')!) }, 'the image reads through the proxy');
  });

  /**
   * Reads `names` at once in one child process; each one's result and the time its read took
   * (measured in the child from its own start of the read). Killed if it outlives `stallMs`.
   */
  async function readAll(names: string[], stallMs = 90_000): Promise<Array<{ name: string; result: string; bytes: number; ms: number }>> {
    dropCaches();
    const child = spawn(process.execPath, [READER, ...names.map((n) => join(mnt, n))], {
      stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, UV_THREADPOOL_SIZE: String(names.length + 4) },
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), stallMs);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString('utf8'); });
    const [code, signal] = await once(child, 'close') as [number | null, string | null];
    clearTimeout(timer);
    const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { i: number; result: string; bytes: number; ms: number });
    assert.equal(lines.length, names.length, `every read ended (reader exit ${code} ${signal ?? ''}): ${out}`);
    return lines.sort((a, b) => a.i - b.i).map((l) => ({ name: names[l.i]!, result: l.result, bytes: l.bytes, ms: l.ms }));
  }

  for (const fault of ['hang', 'drip'] as const) {
    test(`a blob source that ${fault === 'hang' ? 'never answers' : 'drips a byte every 2 s'}: EIO within 35 s for 1 reader, then for 16 concurrent readers`, async (t) => {
      proxy.fail(fault, 1_000_000);
      try {
        const one = await readAll([`${fault}-1`]);
        t.diagnostic(`1 reader: ${JSON.stringify(one)}`);
        assert.equal(one[0]!.result, 'EIO', `${d.logTail(10)}`);
        assert.ok(one[0]!.ms < EIO_WITHIN_MS, `EIO after ${one[0]!.ms} ms`);
        const many = await readAll(Array.from({ length: 16 }, (_, i) => `${fault}-16-${i}`));
        t.diagnostic(`16 readers: ${many.map((r) => `${r.result} ${r.ms} ms`).join(', ')}`);
        for (const r of many) {
          assert.equal(r.result, 'EIO', `${r.name}: ${r.result}`);
          assert.ok(r.ms < EIO_WITHIN_MS, `${r.name}: EIO after ${r.ms} ms`);
          assert.equal(r.bytes, 0, `${r.name}: no bytes (no zeros) before the EIO`);
        }
        t.diagnostic(`fanotify: ${JSON.stringify((await d.status()).fanotify)}`);
      } finally {
        proxy.fail(fault, 0);
      }
      // Once the registry behaves, the same file reads right (after the failed-chunk mark, 5 s).
      await new Promise((r) => setTimeout(r, 5_500));
      const again = await readInChild(work, [{ path: join(mnt, `${fault}-1`) }]);
      assert.deepEqual({ result: again.outcomes[0]?.result, sha: again.outcomes[0]?.sha }, { result: 'ok', sha: sha256(files.get(`${fault}-1`)!) });
    });
  }

  test('a dripping manifest: `ondine mount` fails within its --timeout with one line, and the pull stops', async (t) => {
    const target = join(work, 'mnt-drip');
    mkdirSync(target);
    proxy.fail('drip', 1_000_000, /\/manifests\//);
    try {
      const started = Date.now();
      const r = await d.cli(['mount', `${proxy.host}/deadline/app:1`, target, '--mode', 'fanotify', '--timeout', '4']);
      const ms = Date.now() - started;
      t.diagnostic(`exit ${r.code} after ${ms} ms: ${r.stderr.trim()}`);
      assert.notEqual(r.code, 0);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0]!, /did not finish within 4 s.*ONDINE_ERR_TIMEOUT/);
      // Well inside the bound: a CLI start and the daemon's answer cost a second or two at most.
      assert.ok(ms < 10_000, `failed after ${ms} ms`);
      // The daemon's pull went with the CLI: the drip is closed, and nothing more is asked.
      for (let i = 0; i < 50 && proxy.open() > 0; i++) await new Promise((res) => setTimeout(res, 100));
      assert.equal(proxy.open(), 0, 'the dripping manifest request was closed by the daemon');
      const seen = proxy.seen().length;
      await new Promise((res) => setTimeout(res, 3_000));
      assert.equal(proxy.seen().length, seen, `no request after the mount failed: ${JSON.stringify(proxy.seen().slice(seen))}`);
      const mounts = (await d.status()).mounts.map((m) => m.mountpoint);
      assert.ok(!mounts.includes(target), 'nothing mounted');
    } finally {
      proxy.fail('drip', 0);
    }
  });
});
