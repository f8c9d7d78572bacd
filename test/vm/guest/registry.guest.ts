// Mount by reference over cachefiles, in the VM (no network device): a docker-registry is
// started inside the guest on its loopback, the small fixture image is pushed to it with the
// Nydus conventions, and `ondine mount <ref> --mode cachefiles` mounts it lazily: every file
// reads back identical, its bytes fetched from the registry (counted under the repository).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cli, fetchedBytes, hashTree, manifest, run, startDaemon, umountImage } from './harness.js';
import { pushLazy } from '../../helpers/lazy-push.js';
import { startRegistry } from '../../helpers/registry-env.js';

test('an image pushed to a registry on the guest loopback mounts by reference through cachefiles', async (t) => {
  // The guest boots with `lo` down; the registry and the daemon talk over it.
  const up = await run('busybox', ['ip', 'link', 'set', 'lo', 'up']);
  assert.equal(up.code, 0, `ip link set lo up: ${up.stderr}`);
  // The registry's directory goes under /var/tmp, which the guest's init makes writable (an
  // overlay that keeps the host's files, and so a checkout there, visible).
  const m = await manifest();
  const registry = await startRegistry();
  // Stopped even when the daemon never comes up: a registry left running keeps this file's
  // process, and so the VM, alive.
  t.after(() => registry.stop());
  const d = await startDaemon('registry', ['--mode', 'cachefiles']);
  try {
    await pushLazy(registry, 'vm/small', '1', join(m.small.dir, 'bootstrap'), join(m.small.dir, 'blobs'));
    const mnt = '/run/mnt-registry';
    await run('mkdir', ['-p', mnt]);
    const ref = `${registry.host}/vm/small:1`;
    const r = await cli(['mount', ref, mnt, '--socket', d.socket, '--mode', 'cachefiles', '--fsid', 'reg-small']);
    assert.equal(r.code, 0, `ondine mount ${ref}: ${r.stderr}`);
    assert.deepEqual(await hashTree(mnt), m.small.files);
    const s = await d.client.stats() as { sources: Record<string, Record<string, { bytes: number; requests: number }>> };
    const counted = s.sources[`${registry.host}/vm/small`];
    assert.ok(counted, `the registry source is counted: ${JSON.stringify(s.sources)}`);
    const fetched = [...(await fetchedBytes(d)).values()].reduce((a, b) => a + b, 0);
    t.diagnostic(`fetched ${fetched} bytes from ${ref}`);
    assert.ok(fetched > 0);
    const gets = (await registry.requests()).filter((e) => e.method === 'GET' && e.path.includes('/blobs/sha256:') && e.status === 206);
    assert.ok(gets.length > 0, 'blob bytes came by Range');
    await umountImage(d, mnt);
  } finally {
    await d.stop();
  }
});
