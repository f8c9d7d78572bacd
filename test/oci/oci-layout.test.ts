// OCI layout reading (images made by umoci) and the builder fed by stream sources.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { build } from '../../src/builder/builder.js';
import type { LayerSource } from '../../src/builder/import/tar/source.js';
import { OndineError } from '../../src/errors.js';
import { LayoutSource, documentMediaType, layoutRefOf } from '../../src/oci/image-source.js';
import { MEDIA_TYPE } from '../../src/registry/media-types.js';
import { OciLayout, parseLayoutRef } from '../../src/oci/oci-layout.js';
import type { ImageManifest } from '../../src/oci/types.js';
import { makeUmociImage, type MadeImage } from '../helpers/oci-image.js';

let work: string;
let img: MadeImage;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'ondine-oci-layout-'));
  img = makeUmociImage(work, 'a', { seed: 3, bigBytes: 1 << 20 });
});
after(() => rmSync(work, { recursive: true, force: true }));

test('parseLayoutRef: oci:dir[:tag]', async () => {
  assert.deepEqual(parseLayoutRef('oci:/x/y:v1'), { dir: '/x/y', tag: 'v1' });
  assert.deepEqual(parseLayoutRef('oci:/x/y'), { dir: '/x/y' });
  assert.equal(parseLayoutRef('docker.io/library/debian:12'), undefined);
  assert.throws(() => parseLayoutRef('oci::t'), /no directory/);
  assert.deepEqual(await layoutRefOf(img.layout), { dir: img.layout });
  assert.equal(await layoutRefOf(work), undefined);
});

test('OciLayout resolves tags, reads verified blobs; a second tag makes the untagged form ambiguous', async () => {
  const layout = await OciLayout.open(img.layout);
  const desc = await layout.resolve('a');
  assert.equal(desc.mediaType, MEDIA_TYPE.ociManifest);
  assert.deepEqual(await layout.resolve(), desc);
  const m = JSON.parse((await layout.readBlob(desc.digest)).toString()) as ImageManifest;
  assert.equal(m.layers.length, 2);
  await assert.rejects(layout.resolve('nope'), (e: unknown) => (e as OndineError).code === 'ONDINE_ERR_NOT_FOUND');
  await layout.tag(desc, 'b');
  await assert.rejects(layout.resolve(), /holds 2 images; name one/);
  assert.deepEqual((await layout.resolve('b')).digest, desc.digest);
  await assert.rejects(OciLayout.open(work), (e: unknown) => (e as OndineError).code === 'ONDINE_ERR_NOT_FOUND');
  assert.throws(() => layout.blobPath('sha256:../../etc/passwd'), /malformed digest/);
});

test('LayoutSource: root manifest, config, layer streams', async () => {
  const src = await LayoutSource.open(img.layout, 'a');
  const root = await src.root();
  assert.equal(root.mediaType, MEDIA_TYPE.ociManifest);
  const cfg = JSON.parse((await src.blob(root.json.config)).toString());
  assert.deepEqual(cfg.config.Entrypoint, ['/bin/sh']);
  assert.ok(cfg.config.Env.includes('FOO=bar'));
  assert.equal(documentMediaType({ manifests: [] }), MEDIA_TYPE.ociIndex);
  assert.throws(() => documentMediaType({}), /not an image manifest/);
});

function layersOf(): { manifest: ImageManifest; layout: OciLayout } {
  const layout = new OciLayout(img.layout);
  const idx = JSON.parse(readFileSync(join(img.layout, 'index.json'), 'utf8'));
  const d = idx.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === 'a');
  const manifest = JSON.parse(readFileSync(layout.blobPath(d.digest), 'utf8')) as ImageManifest;
  return { manifest, layout };
}

/** Yields the bytes in pieces of 1, 2, 3, … bytes first: the magic straddles chunks. */
function dribble(path: string, name: string): LayerSource {
  return {
    name,
    open: async () => {
      const bytes = readFileSync(path);
      return (async function* () {
        let at = 0;
        for (let n = 1; at < bytes.length && n < 8; n++) { yield bytes.subarray(at, at + n); at += n; }
        if (at < bytes.length) yield bytes.subarray(at);
      })();
    },
  };
}

function dirDigest(dir: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(join(dir, 'bootstrap')));
  for (const f of readdirSync(join(dir, 'blobs')).sort()) h.update(f);
  return h.digest('hex');
}

test('builder: stream sources give the same image as the layer files', async () => {
  const { manifest, layout } = layersOf();
  const paths = manifest.layers.map((l) => layout.blobPath(l.digest));
  const common = { chunkSize: 64 << 10, workers: 2 };
  const fromFiles = await build({ sources: paths, outDir: join(work, 'out-files'), ...common });
  const read: number[] = [];
  const fromStreams = await build({
    sources: manifest.layers.map((l) => layout.layerSource(l)), outDir: join(work, 'out-streams'), ...common,
    onLayerProgress: (p) => { read[p.layerIndex] = p.compressedBytesRead; },
  });
  await build({ sources: paths.map((p, i) => dribble(p, `layer${i}`)), outDir: join(work, 'out-dribble'), ...common });
  assert.equal(fromStreams.blobs.length, 2);
  assert.deepEqual(fromStreams.blobs.map((b) => b.blobId), fromFiles.blobs.map((b) => b.blobId));
  assert.equal(dirDigest(join(work, 'out-streams')), dirDigest(join(work, 'out-files')));
  assert.equal(dirDigest(join(work, 'out-dribble')), dirDigest(join(work, 'out-files')));
  assert.deepEqual(read, manifest.layers.map((l) => l.size));
});

test('builder: a stream error keeps its type; a corrupted layout blob fails its digest check', async () => {
  const { manifest, layout } = layersOf();
  class Boom extends OndineError {
    constructor() { super('ONDINE_ERR_REGISTRY', undefined, 'registry went away'); }
  }
  const failing: LayerSource = {
    name: 'failing',
    open: async () => {
      const bytes = readFileSync(layout.blobPath(manifest.layers[0]!.digest));
      return Readable.from((async function* () { yield bytes.subarray(0, 4096); throw new Boom(); })());
    },
  };
  await assert.rejects(build({ sources: [failing], outDir: join(work, 'out-fail'), workers: 1 }), (e: unknown) => e instanceof Boom);

  const copyDir = join(work, 'corrupt');
  const { execFileSync } = await import('node:child_process');
  execFileSync('cp', ['-a', img.layout, copyDir]);
  const bad = new OciLayout(copyDir);
  const p = bad.blobPath(manifest.layers[1]!.digest);
  const original = readFileSync(p);
  // Zeros after the gzip member: gunzip and the tar reader accept them; the layer's stated size
  // does not, and neither would its digest.
  writeFileSync(p, Buffer.concat([original, Buffer.alloc(1024)]));
  await assert.rejects(build({ sources: manifest.layers.map((l) => bad.layerSource(l)), outDir: join(work, 'out-corrupt'), workers: 1 }),
    (e: unknown) => (e as OndineError).code === 'ONDINE_ERR_TOO_LARGE');
  // The right size, the wrong bytes: a descriptor naming another digest for this file.
  writeFileSync(p, original);
  const other = `sha256:${createHash('sha256').update('another layer').digest('hex')}`;
  writeFileSync(bad.blobPath(other), original);
  const lying = manifest.layers.map((l, i) => (i === 1 ? { ...l, digest: other } : l));
  await assert.rejects(build({ sources: lying.map((l) => bad.layerSource(l)), outDir: join(work, 'out-corrupt2'), workers: 1 }),
    (e: unknown) => (e as OndineError).code === 'ONDINE_ERR_DIGEST_MISMATCH');
});

test('builder: zstd and uncompressed layer streams give the same image as gzip files', async () => {
  const { manifest, layout } = layersOf();
  const paths = manifest.layers.map((l) => layout.blobPath(l.digest));
  const { execFileSync } = await import('node:child_process');
  const { gunzipSync } = await import('node:zlib');
  const tars = paths.map((p) => gunzipSync(readFileSync(p)));
  const zst = tars.map((t, i) => {
    const f = join(work, `layer${i}.tar`);
    writeFileSync(f, t);
    execFileSync('zstd', ['-q', '-f', f, '-o', `${f}.zst`]);
    return readFileSync(`${f}.zst`);
  });
  const mem = (bytes: Buffer, name: string): LayerSource => ({ name, size: bytes.length, open: async () => Readable.from([bytes]) });
  const common = { chunkSize: 64 << 10, workers: 2 };
  await build({ sources: paths, outDir: join(work, 'cmp-gz'), ...common });
  await build({ sources: zst.map((b, i) => mem(b, `zst${i}`)), outDir: join(work, 'cmp-zst'), ...common });
  await build({ sources: tars.map((b, i) => mem(b, `tar${i}`)), outDir: join(work, 'cmp-tar'), ...common });
  assert.equal(dirDigest(join(work, 'cmp-zst')), dirDigest(join(work, 'cmp-gz')));
  assert.equal(dirDigest(join(work, 'cmp-tar')), dirDigest(join(work, 'cmp-gz')));
  const xz = { name: 'xz-layer', open: async () => Readable.from([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2])]) };
  await assert.rejects(build({ sources: [xz], outDir: join(work, 'cmp-xz'), workers: 1 }), (e: unknown) => (e as OndineError).code === 'ONDINE_ERR_UNSUPPORTED_COMPRESSION' && /xz-layer/.test((e as Error).message));
});
