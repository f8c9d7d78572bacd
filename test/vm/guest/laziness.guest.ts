// Laziness and persistence: one small file of a 200 MB image costs a few percent of the blob;
// a remount under a restarted daemon fetches nothing; two images sharing a blob in one
// domain fetch it once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fetchedBytes, hashTree, manifest, mountImage, sha256, startDaemon, umountImage } from './harness.js';

test('reading one small file of a 200 MB image fetches < 5% of the blob', async (t) => {
  const m = await manifest();
  const d = await startDaemon('lazy');
  try {
    const mnt = '/run/mnt-lazy';
    await mountImage(d, m.big.dir, mnt, { fsid: 'lazy-big' });
    const text = await readFile(join(mnt, m.big.smallFile));
    assert.equal(sha256(text), m.big.files[m.big.smallFile]);
    const total = m.big.blobs.reduce((s, b) => s + b.compressedSize, 0);
    const fetched = [...(await fetchedBytes(d)).values()].reduce((s, n) => s + n, 0);
    t.diagnostic(`fetched ${fetched} of ${total} blob bytes (${(100 * fetched / total).toFixed(3)}%)`);
    assert.ok(total > 190e6, `image is ${total} bytes`);
    assert.ok(fetched > 0, 'something was fetched');
    assert.ok(fetched < 0.05 * total, `fetched ${fetched} of ${total}`);
    await umountImage(d, mnt);
  } finally {
    await d.stop();
  }
});

test('a remount under a restarted daemon fetches nothing already fetched', async (t) => {
  const m = await manifest();
  const mnt = '/run/mnt-restart';
  const first = await startDaemon('restart-1');
  try {
    await mountImage(first, m.small.dir, mnt, { fsid: 'restart-small' });
    assert.deepEqual(await hashTree(mnt), m.small.files);
    const fetched = [...(await fetchedBytes(first)).values()].reduce((s, n) => s + n, 0);
    t.diagnostic(`first daemon fetched ${fetched} bytes`);
    assert.ok(fetched > 0);
    await umountImage(first, mnt);
  } finally {
    assert.equal(await first.stop(), 0, 'SIGTERM shuts the daemon down cleanly');
  }
  const second = await startDaemon('restart-2');
  try {
    await mountImage(second, m.small.dir, mnt, { fsid: 'restart-small' });
    await new Promise((r) => setTimeout(r, 0));
    // drop_caches so the reads really go to the cache files, not the page cache.
    await import('node:fs/promises').then((fs) => fs.writeFile('/proc/sys/vm/drop_caches', '3'));
    assert.deepEqual(await hashTree(mnt), m.small.files);
    const fetched = [...(await fetchedBytes(second)).values()].reduce((s, n) => s + n, 0);
    assert.equal(fetched, 0, 'the restarted daemon fetched nothing');
    await umountImage(second, mnt);
  } finally {
    await second.stop();
  }
});

test('two images sharing a blob in one domain fetch it once', async (t) => {
  const m = await manifest();
  const shared = m.shareA.blobs[0]!;
  assert.ok(m.shareB.blobs.some((b) => b.id === shared.id), "image B references A's blob (chunk dict)");
  const d = await startDaemon('domain');
  try {
    await mountImage(d, m.shareA.dir, '/run/mnt-dom-a', { fsid: 'dom-a', domain: 'dom1' });
    await mountImage(d, m.shareB.dir, '/run/mnt-dom-b', { fsid: 'dom-b', domain: 'dom1' });
    assert.deepEqual(await hashTree('/run/mnt-dom-a'), m.shareA.files);
    const afterA = (await fetchedBytes(d)).get(shared.id) ?? 0;
    assert.deepEqual(await hashTree('/run/mnt-dom-b'), m.shareB.files);
    const afterB = (await fetchedBytes(d)).get(shared.id) ?? 0;
    t.diagnostic(`shared blob ${shared.id.slice(0, 12)}: ${afterA} bytes after A, ${afterB} after B (compressed size ${shared.compressedSize})`);
    assert.ok(afterA > 0);
    assert.equal(afterB, afterA, "reading B's shared file fetched nothing more of the shared blob");
    await umountImage(d, '/run/mnt-dom-b');
    await umountImage(d, '/run/mnt-dom-a');
  } finally {
    await d.stop();
  }
});
