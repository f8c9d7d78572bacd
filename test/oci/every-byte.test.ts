// Digests over every byte, without a race: a layer with one byte after its gzip member, and
// one with a second gzip member of garbage, each under a descriptor that states its true size
// and digest (so only reading to the end can tell), are refused 100 times of 100 from an OCI
// layout, from a real docker-registry, by the builder, and by the daemon's bootstrap pull
// (which then leaves no bootstrap and no by-layer link behind). The honest layer passes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from '../../src/builder/builder.js';
import { readTar } from '../../src/builder/import/tar/reader.js';
import { openLayer, type LayerSource } from '../../src/builder/import/tar/source.js';
import { pullBootstrap } from '../../src/daemon/image-pull.js';
import { LayoutSource } from '../../src/oci/image-source.js';
import { RegistryImageSource } from '../../src/oci/image-source.js';
import { makeBootstrapLayer } from '../../src/oci/bootstrap-layer.js';
import { ANNOTATION, MEDIA_TYPE } from '../../src/registry/media-types.js';
import { OciLayout } from '../../src/oci/oci-layout.js';
import type { Descriptor } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { CacheDir } from '../../src/storage/cache-dir.js';
import { tarball } from '../helpers/tar-craft.js';
import { pushTestBlob, putTestManifest, startRegistry, type RegistryServer } from '../helpers/registry-env.js';

const ROUNDS = 100;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let work: string;
let reg: RegistryServer;
const honest = gzipSync(tarball([{ name: 'etc/', type: '5' }, { name: 'etc/hello', data: randomBytes(50_000) }]));
// A gzip header (deflate, no flags) followed by bytes that are no deflate stream.
const garbageMember = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), randomBytes(200)]);
const hostile = {
  'one zero byte after the member': Buffer.concat([honest, Buffer.from([0])]),
  'one byte 0x01 after the member': Buffer.concat([honest, Buffer.from([1])]),
  'a second gzip member of garbage': Buffer.concat([honest, garbageMember]),
};
const desc = (b: Buffer): Descriptor => ({ mediaType: MEDIA_TYPE.ociLayerGzip, digest: sha(b), size: b.length });

before(async () => {
  work = mkdtempSync('/var/tmp/ondine-every-byte-');
  reg = await startRegistry();
});
after(async () => {
  await reg?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Reads a layer the way the builder does; true when it ended verified. */
async function readWhole(src: LayerSource): Promise<boolean> {
  const layer = await openLayer(src);
  for await (const e of readTar(layer.data, { source: src.name })) {
    if (e.type === 'file') for await (const s of e.segments()) void s;
  }
  return layer.verified;
}

async function refusedEveryTime(make: () => LayerSource): Promise<Set<string>> {
  const codes = new Set<string>();
  let refused = 0;
  for (let i = 0; i < ROUNDS; i++) {
    try {
      await readWhole(make());
    } catch (err) {
      refused++;
      codes.add(String((err as { code?: string }).code));
    }
  }
  assert.equal(refused, ROUNDS, `refused ${refused} times of ${ROUNDS}`);
  return codes;
}

test('OCI layout: bytes after the compressed data are refused 100 times of 100', async () => {
  const layout = await OciLayout.init(join(work, 'layout'));
  await layout.writeBlob(sha(honest), { bytes: honest });
  const source = await LayoutSource.open(layout.dir);
  assert.equal(await readWhole(source.layer(desc(honest))), true, 'the honest layer reads');
  for (const [name, bytes] of Object.entries(hostile)) {
    await layout.writeBlob(sha(bytes), { bytes });
    const codes = await refusedEveryTime(() => source.layer(desc(bytes)));
    assert.ok([...codes].every((c) => c === 'ONDINE_ERR_DECOMPRESS'), `${name}: ${[...codes].join(', ')}`);
  }
  // The builder: the same layer refused, nothing built.
  const bad = hostile['one zero byte after the member'];
  await assert.rejects(build({ sources: [source.layer(desc(bad))], outDir: join(work, 'out'), workers: 1 }),
    (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_DECOMPRESS');
});

test('layer file: bytes after the compressed data are refused 100 times of 100', async () => {
  const good = join(work, 'good.tar.gz');
  writeFileSync(good, honest);
  const read = async (path: string): Promise<boolean> => {
    const layer = await openLayer(path);
    for await (const e of readTar(layer.data, { source: path })) if (e.type === 'file') for await (const s of e.segments()) void s;
    return layer.verified;
  };
  assert.equal(await read(good), true, 'the honest file reads');
  for (const [name, bytes] of Object.entries(hostile)) {
    const path = join(work, `bad-${name.replace(/\W+/g, '-')}.tar.gz`);
    writeFileSync(path, bytes);
    let refused = 0;
    for (let i = 0; i < ROUNDS; i++) {
      await read(path).then(() => undefined, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ONDINE_ERR_DECOMPRESS', `${name}: ${err.message}`);
        refused++;
      });
    }
    assert.equal(refused, ROUNDS, `${name}: refused ${refused} times of ${ROUNDS}`);
  }
});

test('registry: bytes after the compressed data are refused 100 times of 100', async (t) => {
  const client = new RegistryClient({ retryBaseMs: 5 });
  t.after(() => client.close());
  await pushTestBlob(reg, 'every/byte', honest);
  const source = new RegistryImageSource(client, parseReference(`${reg.host}/every/byte:any`));
  assert.equal(await readWhole(source.layer(desc(honest))), true, 'the honest layer reads');
  for (const [name, bytes] of Object.entries(hostile)) {
    await pushTestBlob(reg, 'every/byte', bytes);
    const codes = await refusedEveryTime(() => source.layer(desc(bytes)));
    assert.ok([...codes].every((c) => c === 'ONDINE_ERR_DECOMPRESS'), `${name}: ${[...codes].join(', ')}`);
  }
});

test('daemon bootstrap pull: refused 100 times of 100, nothing stored, no by-layer link', async () => {
  // A bootstrap of our own builder, whose blob ids are the sha256 of its blobs: the manifest can
  // list them as data layers (a pull by reference refuses a bootstrap naming anything else).
  const tree = join(work, 'boot-tree');
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, 'f'), randomBytes(6000));
  const built = await build({ sources: [tree], outDir: join(work, 'boot-img'), workers: 1 });
  const bootBytes = readFileSync(built.bootstrapPath);
  const dataLayers = await Promise.all(built.blobs.map(async (b) => {
    const bytes = readFileSync(b.path);
    return { mediaType: MEDIA_TYPE.nydusBlob, digest: await pushTestBlob(reg, 'every/boot', bytes), size: bytes.length, annotations: { [ANNOTATION.nydusBlob]: 'true' } };
  }));
  const layer = await makeBootstrapLayer(bootBytes);
  const cacheRoot = join(work, 'cache');
  mkdirSync(cacheRoot); // the daemon's cache directory exists (the daemon refuses to start without it)
  const cache = new CacheDir(cacheRoot);
  const manifestFor = async (tag: string, bytes: Buffer): Promise<void> => {
    const config = Buffer.from('{}');
    const configDigest = await pushTestBlob(reg, 'every/boot', config);
    const digest = await pushTestBlob(reg, 'every/boot', bytes);
    await putTestManifest(reg, 'every/boot', tag, MEDIA_TYPE.ociManifest, Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest,
      config: { mediaType: MEDIA_TYPE.ociConfig, digest: configDigest, size: config.length },
      layers: [...dataLayers, { mediaType: MEDIA_TYPE.ociLayerGzip, digest, size: bytes.length, annotations: { [ANNOTATION.nydusBootstrap]: 'true' } }],
    })));
  };
  const bootstraps = (): string[] => (existsSync(join(cache.root, 'bootstraps')) ? readdirSync(join(cache.root, 'bootstraps')).filter((n) => n !== 'by-layer') : []);
  let tag = 0;
  for (const [name, tail] of [['one zero byte', Buffer.from([0])], ['one byte 0x01', Buffer.from([1])], ['a garbage member', garbageMember]] as const) {
    const bytes = Buffer.concat([layer.bytes, tail]);
    await manifestFor(`bad${tag}`, bytes);
    let refused = 0;
    for (let i = 0; i < ROUNDS; i++) {
      await pullBootstrap({ ref: `${reg.host}/every/boot:bad${tag}` }, cache, { retry: { attempts: 1 } }).then(
        () => undefined,
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ONDINE_ERR_DECOMPRESS', `${name}: ${err.message}`);
          refused++;
        });
    }
    assert.equal(refused, ROUNDS, `${name}: refused ${refused} times of ${ROUNDS}`);
    assert.deepEqual(bootstraps(), [], `${name}: no bootstrap (nor temporary file) left`);
    assert.equal(existsSync(join(cache.root, 'bootstraps', 'by-layer', sha(bytes).slice(7))), false, `${name}: no by-layer link`);
    tag++;
  }
  // The honest layer is stored, linked, and served again from the store.
  await manifestFor('good', layer.bytes);
  const p = await pullBootstrap({ ref: `${reg.host}/every/boot:good` }, cache, {});
  assert.ok(p.bootstrap.equals(bootBytes));
  assert.deepEqual(bootstraps(), [sha(p.bootstrap).slice(7)]);
  assert.equal(readFileSync(join(cache.root, 'bootstraps', 'by-layer', layer.digest.slice(7)), 'utf8'), sha(p.bootstrap).slice(7));
});
