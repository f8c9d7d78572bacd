// push.ts against an in-memory target: what is skipped, mounted and uploaded, in which order,
// and what a chunk-dict blob the target cannot get does.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { build } from '../../src/builder/builder.js';
import { MEDIA_TYPE } from '../../src/registry/media-types.js';
import { pushImage, pushOutDir, readOutDir } from '../../src/oci/push.js';
import type { BlobOutcome, ImageTarget } from '../../src/oci/targets.js';
import { extractBootstrap, findBootstrapLayer, blobLayers } from '../../src/oci/nydus-image.js';
import type { ImageManifest } from '../../src/oci/types.js';

class MemoryTarget implements ImageTarget {
  readonly name = 'memory';
  readonly reference = 'memory:latest';
  readonly blobs = new Map<string, Buffer>();
  readonly manifests: Array<{ digest: string; tagged: boolean; bytes: Buffer }> = [];
  readonly events: string[] = [];
  /** repository -> blobs a mount can take from it */
  readonly others = new Map<string, Map<string, Buffer>>();

  async blobSize(digest: string): Promise<number | undefined> {
    return this.blobs.get(digest)?.length;
  }
  async mountBlob(digest: string, from: string): Promise<boolean> {
    const b = this.others.get(from)?.get(digest);
    if (!b) return false;
    this.blobs.set(digest, b);
    this.events.push(`mount ${digest.slice(7, 15)}`);
    return true;
  }
  async putBlob(digest: string, body: { path: string } | { bytes: Buffer }, size: number, mountFrom?: string): Promise<BlobOutcome> {
    if (this.blobs.has(digest)) return { kind: 'skipped', bytes: 0 };
    if (mountFrom && (await this.mountBlob(digest, mountFrom))) return { kind: 'mounted', bytes: 0 };
    const bytes = 'path' in body ? readFileSync(body.path) : body.bytes;
    assert.equal(bytes.length, size);
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest, 'uploaded bytes match their digest');
    this.blobs.set(digest, bytes);
    this.events.push(`upload ${digest.slice(7, 15)}`);
    return { kind: 'uploaded', bytes: size };
  }
  async putManifest(_mt: string, bytes: Buffer, digest: string, tagged: boolean): Promise<void> {
    this.events.push('manifest');
    this.manifests.push({ digest, tagged, bytes });
  }
}

let work: string;
before(async () => {
  work = mkdtempSync(join(tmpdir(), 'ondine-oci-push-'));
  for (const [name, files] of [['a', { 'x': 'a'.repeat(70_000), 'y': 'y'.repeat(10_000) }], ['b', { 'x': 'a'.repeat(70_000), 'z': 'z'.repeat(90_000) }]] as const) {
    const src = join(work, `src-${name}`);
    mkdirSync(src, { recursive: true });
    for (const [f, c] of Object.entries(files)) writeFileSync(join(src, f), c);
  }
  await build({ sources: [join(work, 'src-a')], outDir: join(work, 'out-a'), chunkSize: 64 << 10, workers: 1 });
  await build({ sources: [join(work, 'src-b')], outDir: join(work, 'out-b'), chunkSize: 64 << 10, workers: 1, chunkDict: join(work, 'out-a/bootstrap') });
});
after(() => rmSync(work, { recursive: true, force: true }));

test('pushOutDir: blobs, then bootstrap layer and config, then the manifest; a second push skips everything', async () => {
  const t = new MemoryTarget();
  const p = await pushOutDir(t, join(work, 'out-a'));
  assert.deepEqual(t.events.map((e) => e.split(' ')[0]), ['upload', 'upload', 'upload', 'manifest']);
  assert.equal(p.summary.blobsUploaded, 3);
  assert.equal(p.summary.bytesUploaded, [...t.blobs.values()].reduce((n, b) => n + b.length, 0));
  const m = JSON.parse(t.manifests[0]!.bytes.toString()) as ImageManifest;
  assert.equal(t.manifests[0]!.tagged, true);
  assert.equal(m.layers[0]!.mediaType, MEDIA_TYPE.nydusBlob);
  assert.deepEqual(await extractBootstrap(t.blobs.get(findBootstrapLayer(m)!.digest)!), readFileSync(join(work, 'out-a/bootstrap')));
  for (const l of [...m.layers, m.config]) assert.equal(t.blobs.get(l.digest)?.length, l.size);
  const again = await pushOutDir(t, join(work, 'out-a'));
  assert.deepEqual(again.summary, { blobsUploaded: 0, blobsSkipped: 3, blobsMounted: 0, bytesUploaded: 0 });
  assert.equal(again.image.manifest.digest, p.image.manifest.digest);
});

test('chunk-dict blobs: mounted from the dict repository when missing; an error names the blob when nobody has it', async () => {
  const local = await readOutDir(join(work, 'out-b'));
  assert.equal(local.blobs.length, 2);
  assert.ok(local.blobs[0]!.path, 'B\'s own blob is in out-b');
  assert.equal(local.blobs[1]!.path, undefined, 'A\'s blob is not');
  const aBlob = local.blobs[1]!.blobId;
  const lonely = new MemoryTarget();
  await assert.rejects(pushImage(lonely, local, { tagged: true }), new RegExp(`blob ${aBlob} \\(from the chunk dict\\) is neither`));
  await assert.rejects(pushImage(lonely, local, { tagged: true, mountFrom: 'dict/repo' }), /could not be mounted from dict\/repo/);

  const t = new MemoryTarget();
  t.others.set('dict/repo', new Map([[`sha256:${aBlob}`, readFileSync(join(work, 'out-a/blobs', aBlob))]]));
  const p = await pushImage(t, local, { tagged: false, mountFrom: 'dict/repo' });
  assert.equal(p.summary.blobsMounted, 1);
  assert.equal(p.summary.blobsUploaded, 3);
  assert.equal(t.manifests[0]!.tagged, false);
  const m = JSON.parse(t.manifests[0]!.bytes.toString()) as ImageManifest;
  assert.deepEqual(blobLayers(m).map((b) => b.digest.slice(7)), local.blobs.map((b) => b.blobId), 'manifest blob order = blob table order');
  assert.equal(blobLayers(m)[1]!.size, readFileSync(join(work, 'out-a/blobs', aBlob)).length);
});
