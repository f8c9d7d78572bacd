// The daemon side of mount by reference against a real docker-registry: a lazy image's
// bootstrap is fetched, verified and stored in the cache directory (and not fetched again); a plain OCI image is
// refused as not lazy (with the convert command to run); a bootstrap layer that is no tar is
// a typed error; request bodies are checked without echoing credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkPullRequest, pullBootstrap } from '../../src/daemon/image-pull.js';
import { parsePlatform } from '../../src/registry/platform.js';
import { CacheDir } from '../../src/storage/cache-dir.js';
import { MEDIA_TYPE, ANNOTATION } from '../../src/registry/media-types.js';
import { buildImage, KiB, randomBytes, type BuiltImage } from '../storage/support.js';
import { pushLazy } from '../helpers/lazy-push.js';
import { setBlobId } from '../helpers/blob-ids.js';
import { pushTestBlob, pushTestImage, putTestManifest, startRegistry, type RegistryServer } from '../helpers/registry-env.js';

let registry: RegistryServer;
let img: BuiltImage;
let cacheRoot: string;

before(async () => {
  registry = await startRegistry();
  img = await buildImage({ 'a.bin': randomBytes(100 * KiB, 1), 'b.txt': 'hello' });
  cacheRoot = mkdtempSync('/var/tmp/ondine-pull-');
});
after(async () => {
  await registry?.stop();
  await img?.cleanup();
  if (cacheRoot) rmSync(cacheRoot, { recursive: true, force: true });
});

test('a lazy image: the bootstrap is verified and stored; the source is the repository', async () => {
  await pushLazy(registry, 'lazy/app', 'v1', join(img.out, 'bootstrap'), img.blobDir);
  const p = await pullBootstrap({ ref: `${registry.host}/lazy/app:v1` }, new CacheDir(cacheRoot), {});
  assert.equal(p.ref, `${registry.host}/lazy/app:v1`);
  assert.ok(p.bootstrap.equals(readFileSync(join(img.out, 'bootstrap'))));
  assert.ok(p.bootstrapPath.startsWith(join(cacheRoot, 'ondine', 'bootstraps')));
  assert.ok(readFileSync(p.bootstrapPath).equals(p.bootstrap));
  assert.deepEqual(p.source, { kind: 'registry', registry: registry.host, repository: 'lazy/app' });
  assert.match(p.manifestDigest, /^sha256:[0-9a-f]{64}$/);
  // Again: the stored bootstrap serves, the layer is not fetched a second time.
  const layerGets = async () => (await registry.requests()).filter((e) => e.method === 'GET' && e.path.includes('/blobs/')).length;
  const gets = await layerGets();
  const again = await pullBootstrap({ ref: `${registry.host}/lazy/app:v1` }, new CacheDir(cacheRoot), {});
  assert.ok(again.bootstrap.equals(p.bootstrap));
  assert.equal(again.bootstrapPath, p.bootstrapPath);
  assert.equal(await layerGets(), gets, 'no blob fetched for a bootstrap already stored');
  // A stored bootstrap that no longer matches its name is not used: the layer is fetched.
  writeFileSync(p.bootstrapPath, Buffer.concat([p.bootstrap, Buffer.from('x')]));
  const third = await pullBootstrap({ ref: `${registry.host}/lazy/app:v1` }, new CacheDir(cacheRoot), {});
  assert.ok(third.bootstrap.equals(p.bootstrap));
  assert.equal(await layerGets(), gets + 1);
});

test('a plain OCI image is ONDINE_ERR_NOT_LAZY with the command that converts it', async () => {
  await pushTestImage(registry, 'plain/app', 'v2', [Buffer.from('layer')]);
  await assert.rejects(pullBootstrap({ ref: `${registry.host}/plain/app:v2` }, new CacheDir(cacheRoot), {}), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ONDINE_ERR_NOT_LAZY');
    assert.match(err.message, new RegExp(`convert it with \`ondine convert ${registry.host}/plain/app:v2 ${registry.host}/plain/app:v2-lazy\``));
    return true;
  });
});

test('a bootstrap layer that is not a tar is a typed error, nothing stored', async () => {
  const junk = Buffer.from('not a gzip tar at all');
  const digest = await pushTestBlob(registry, 'junk/app', junk);
  const config = Buffer.from('{}');
  const configDigest = await pushTestBlob(registry, 'junk/app', config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest,
    config: { mediaType: MEDIA_TYPE.ociConfig, digest: configDigest, size: config.length },
    layers: [{ mediaType: MEDIA_TYPE.ociLayerGzip, digest, size: junk.length, annotations: { [ANNOTATION.nydusBootstrap]: 'true' } }],
  }));
  await putTestManifest(registry, 'junk/app', 'v1', MEDIA_TYPE.ociManifest, manifest);
  const stored = () => readdirSync(join(cacheRoot, 'ondine', 'bootstraps')).length;
  const before = stored();
  await assert.rejects(pullBootstrap({ ref: `${registry.host}/junk/app:v1` }, new CacheDir(cacheRoot), {}), (err: Error & { code?: string }) => {
    assert.match(String(err.code), /^ONDINE_ERR_(TAR_|CORRUPT|DECOMPRESS|UNSUPPORTED)/, `${err.code}: ${err.message}`);
    return true;
  });
  assert.equal(stored(), before);
});

test('mount by reference: a bootstrap naming a blob its manifest does not list is refused, nothing stored', async () => {
  const honest = readFileSync(join(img.out, 'bootstrap'));
  const stored = () => readdirSync(join(cacheRoot, 'ondine', 'bootstraps')).filter((n) => n !== 'by-layer').sort();
  const cases = [
    { tag: 'foreign', id: 'f'.repeat(64), code: 'ONDINE_ERR_FOREIGN_BLOB' },
    { tag: 'traversal', id: '../../../victim', code: 'ONDINE_ERR_BAD_IDENTIFIER' },
    { tag: 'comma', id: `${'a'.repeat(30)},device=/etc/passwd`, code: 'ONDINE_ERR_BAD_IDENTIFIER' },
  ];
  for (const c of cases) {
    const hostile = setBlobId(Buffer.from(honest), 0, c.id);
    await pushLazy(registry, 'hostile/app', c.tag, join(img.out, 'bootstrap'), img.blobDir, { layerBootstrap: hostile });
    mkdirSync(join(cacheRoot, 'ondine', 'bootstraps'), { recursive: true });
    const before = stored();
    await assert.rejects(pullBootstrap({ ref: `${registry.host}/hostile/app:${c.tag}` }, new CacheDir(cacheRoot), {}), (err: Error & { code?: string }) => {
      assert.equal(err.code, c.code, err.message);
      assert.ok(err.message.includes(`hostile/app:${c.tag}`) && err.message.includes('blob 1'), err.message);
      return true;
    });
    assert.deepEqual(stored(), before, `${c.tag}: no bootstrap stored`);
  }
  // The honest image under the same repository still pulls: the check is not a blanket refusal.
  await pushLazy(registry, 'hostile/app', 'honest', join(img.out, 'bootstrap'), img.blobDir);
  const ok = await pullBootstrap({ ref: `${registry.host}/hostile/app:honest` }, new CacheDir(cacheRoot), {});
  assert.ok(ok.bootstrap.equals(honest));
});

test('a link planted in the cache directory (as ondine/bootstraps, or as a by-layer record) fails the pull with ONDINE_ERR_UNSAFE_PATH; nothing outside is written', async (t) => {
  await pushLazy(registry, 'links/app', 'v1', join(img.out, 'bootstrap'), img.blobDir);
  const ref = `${registry.host}/links/app:v1`;
  const root = mkdtempSync('/var/tmp/ondine-pull-links-');
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // A clean pull first: it names the record the layer gets.
  const clean = join(root, 'clean');
  mkdirSync(clean);
  await pullBootstrap({ ref }, new CacheDir(clean), {});
  const records = readdirSync(join(clean, 'ondine', 'bootstraps', 'by-layer'));
  assert.equal(records.length, 1);
  const outside = join(root, 'outside');
  mkdirSync(outside);
  const victim = join(outside, 'victim');
  writeFileSync(victim, 'not the cache\n');
  const plant = {
    // The bootstraps directory itself a link to a directory outside.
    dir: (cache: string) => { mkdirSync(join(cache, 'ondine'), { recursive: true }); symlinkSync(outside, join(cache, 'ondine', 'bootstraps')); },
    // The layer's by-layer record a link to a file outside.
    record: (cache: string) => { mkdirSync(join(cache, 'ondine', 'bootstraps', 'by-layer'), { recursive: true }); symlinkSync(victim, join(cache, 'ondine', 'bootstraps', 'by-layer', records[0]!)); },
  };
  for (const [name, how] of Object.entries(plant)) {
    const cache = join(root, name);
    how(cache);
    await assert.rejects(pullBootstrap({ ref }, new CacheDir(cache), {}), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ONDINE_ERR_UNSAFE_PATH', `${name}: ${err.message}`);
      return true;
    });
    assert.deepEqual(readdirSync(outside), ['victim'], `${name}: nothing made outside the cache directory`);
    assert.equal(readFileSync(victim, 'utf8'), 'not the cache\n', `${name}: the file outside is untouched`);
  }
});

test('request bodies: shapes checked, credentials never echoed', () => {
  assert.deepEqual(checkPullRequest({ ref: 'a/b:1', insecure: true, platform: 'linux/arm64/v8' }), { ref: 'a/b:1', insecure: true, platform: 'linux/arm64/v8' });
  assert.throws(() => checkPullRequest({}), { code: 'ONDINE_ERR_INVALID' });
  assert.throws(() => checkPullRequest({ ref: 'a', insecure: 'yes' }), { code: 'ONDINE_ERR_INVALID' });
  assert.throws(() => checkPullRequest({ ref: 'a', credentials: { user: 'u', pass: 'hunter2-secret' } }), (err: Error) => !err.message.includes('hunter2-secret'));
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' });
  assert.throws(() => parsePlatform('linux'), { code: 'ONDINE_ERR_INVALID' });
});
