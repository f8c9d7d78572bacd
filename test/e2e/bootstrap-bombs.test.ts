// `ondine mount <ref>` against hostile bootstrap layers on a real docker-registry, through the
// fanotify daemon: a 1.5 MiB gzip of 1.5 GiB of zeros (with a tar header declaring it as
// image/image.boot, and with no tar header at all), a header under the cap over zeros, and a
// manifest stating the layer's true small size while the registry (a lying proxy in front)
// streams 1.5 GiB after it. Each is three mounts at once. Every mount fails with one line,
// the daemon still answers, nothing is left in the cache's bootstrap store, the size lie is
// cut off near the stated size, and the worker's peak RSS (VmHWM) stays within 512 MiB.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createGzip } from 'node:zlib';
import { build } from '../../src/builder/builder.js';
import { makeBootstrapLayer } from '../../src/oci/bootstrap-layer.js';
import { ANNOTATION, MEDIA_TYPE } from '../../src/registry/media-types.js';
import { Cleanup, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { LyingProxy } from '../helpers/lying-proxy.js';
import { pushTestBlob, putTestManifest, startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { header } from '../helpers/tar-craft.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const LIMIT = 512 * MiB;
const REPO = 'hostile/boot';

function vmHWM(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for ${pid}`);
  return Number(m[1]) * 1024;
}

/** gzip (level 1, streamed) of `head` then `zeros` zero bytes. */
async function gzipOf(head: Buffer, zeros: number): Promise<Buffer> {
  const block = Buffer.alloc(8 * MiB);
  const src = Readable.from((async function* () {
    if (head.length) yield head;
    for (let left = zeros; left > 0; left -= block.length) yield left >= block.length ? block : block.subarray(0, left);
  })());
  const out: Buffer[] = [];
  for await (const c of src.pipe(createGzip({ level: 1 }))) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe('hostile bootstrap layers: bombs and size lies (fanotify)', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let registry: RegistryServer;
  let proxy: LyingProxy;
  let d: FanotifyDaemon;

  async function publish(tag: string, layer: Buffer, dataLayers: object[] = []): Promise<string> {
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const configDigest = await pushTestBlob(registry, REPO, config);
    const digest = await pushTestBlob(registry, REPO, layer);
    await putTestManifest(registry, REPO, tag, MEDIA_TYPE.ociManifest, Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest,
      config: { mediaType: MEDIA_TYPE.ociConfig, digest: configDigest, size: config.length },
      layers: [...dataLayers, { mediaType: MEDIA_TYPE.ociLayerGzip, digest, size: layer.length, annotations: { [ANNOTATION.nydusBootstrap]: 'true', [ANNOTATION.nydusFsVersion]: '6' } }],
    })));
    return digest;
  }

  /** Three mounts of `tag` at once through the lying proxy; each must fail with one line. */
  async function threeFail(t: { diagnostic(s: string): void }, tag: string, expect: RegExp): Promise<void> {
    const mnts = [0, 1, 2].map((i) => join(work, `mnt-${tag}-${i}`));
    for (const m of mnts) mkdirSync(m, { recursive: true });
    const runs = await Promise.all(mnts.map((m) => d.cli(['mount', `${proxy.host}/${REPO}:${tag}`, m, '--mode', 'fanotify', '--cache-dir', d.cacheDir])));
    for (const r of runs) {
      assert.notEqual(r.code, 0, `mount of ${tag} succeeded`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0]!, expect);
    }
    t.diagnostic(`${tag}: ${runs[0]!.stderr.trim()}`);
    const s = await d.status(); // still answering
    const hwm = vmHWM(s.workerPid);
    t.diagnostic(`${tag}: worker ${s.workerPid} VmHWM ${(hwm / MiB).toFixed(0)} MiB (limit ${LIMIT / MiB} MiB)`);
    assert.ok(hwm <= LIMIT, `worker VmHWM ${hwm} bytes is over ${LIMIT}`);
    const dir = join(d.cacheDir, 'ondine', 'bootstraps');
    const left = existsSync(dir) ? readdirSync(dir).filter((n) => n !== 'by-layer') : [];
    assert.deepEqual(left, [], 'no bootstrap or temporary file left');
    const links = existsSync(join(dir, 'by-layer')) ? readdirSync(join(dir, 'by-layer')) : [];
    assert.deepEqual(links, [], 'no by-layer link');
  }

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'boot-bombs');
    registry = await startRegistry();
    suite.after(() => registry.stop());
    proxy = await LyingProxy.start(registry.url);
    suite.after(() => proxy.stop());
    d = await startFanotifyDaemon(suite, work);
  });

  test('1.5 GiB of zeros declared as image/image.boot: refused at its tar header', async (t) => {
    const gz = await gzipOf(header({ name: 'image/image.boot', size: 1.5 * GiB, mode: 0o444 }), 1.5 * GiB);
    t.diagnostic(`layer: ${gz.length} bytes of gzip`);
    await publish('bomb-declared', gz);
    await threeFail(t, 'bomb-declared', /declares 1610612736 bytes.*cap/);
  });

  test('1.5 GiB of zeros with no tar header: stopped at the cap while it streams', async (t) => {
    const gz = await gzipOf(Buffer.alloc(0), 1.5 * GiB);
    await publish('bomb-bare', gz);
    await threeFail(t, 'bomb-bare', /decompresses to more than/);
  });

  test('a header under the cap over zeros: stopped at the first block', async (t) => {
    const gz = await gzipOf(header({ name: 'image/image.boot', size: GiB - MiB, mode: 0o444 }), GiB - MiB);
    await publish('bomb-under-cap', gz);
    await threeFail(t, 'bomb-under-cap', /bad magic/);
  });

  test('the manifest states the layer\'s small size, the registry streams 1.5 GiB: cut off at the size', async (t) => {
    // An image of our own builder: its blob ids are its blobs' sha256, so the manifest lists them
    // as data layers (a pull by reference refuses a bootstrap naming anything else).
    const tree = join(work, 'size-lie-tree');
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, 'hello'), 'hello from the honest layer\n');
    const built = await build({ sources: [tree], outDir: join(work, 'size-lie-img'), workers: 1 });
    const dataLayers = await Promise.all(built.blobs.map(async (b) => {
      const bytes = readFileSync(b.path);
      return { mediaType: MEDIA_TYPE.nydusBlob, digest: await pushTestBlob(registry, REPO, bytes), size: bytes.length, annotations: { [ANNOTATION.nydusBlob]: 'true' } };
    }));
    const layer = await makeBootstrapLayer(readFileSync(built.bootstrapPath));
    const digest = await publish('size-lie', layer.bytes, dataLayers);
    proxy.clear();
    proxy.lie(new RegExp(`/blobs/${digest}$`), { kind: 'append', extra: 1.5 * GiB });
    await threeFail(t, 'size-lie', new RegExp(`more than the ${layer.size} bytes`));
    t.diagnostic(`the proxy sent ${(proxy.liedBytes / MiB).toFixed(1)} MiB of its 3 × 1.5 GiB lie in ${proxy.count(/\/blobs\//)} requests`);
    assert.equal(proxy.count(/\/blobs\//), 3, 'one blob request per mount: the refusal is not retried');
    assert.ok(proxy.liedBytes < 3 * 64 * MiB, `${proxy.liedBytes} bytes sent after the layer`);
    // The honest layer, once the lie stops, mounts.
    proxy.clear();
    const mnt = join(work, 'mnt-honest');
    await d.mount(`${proxy.host}/${REPO}:size-lie`, mnt);
    // Read off the event loop: the lying proxy in this process serves the fill the read waits for.
    assert.equal(await readFile(join(mnt, 'hello'), 'utf8'), 'hello from the honest layer\n');
    await d.umount(mnt);
  });
});
