// A mount by reference parses the image's bootstrap once: the pull parses it (the store's
// checks and the manifest's run on that parse) and the mount serves the very same object,
// for a bootstrap fetched now and for one the cache directory already holds. The parses are
// counted on ChunkTable.prototype.check, which every parse of a RAFS bootstrap calls exactly
// once (it refuses a hostile chunk table) and nothing else on this path calls. The mounts are
// real (fanotify, file-backed EROFS, a docker-registry), and read back what was built.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';

import { startApi } from '../../src/daemon/api.js';
import { ImageCatalog } from '../../src/daemon/catalog.js';
import { DaemonClient } from '../../src/daemon/client.js';
import { pullBootstrap, type PulledImage } from '../../src/daemon/image-pull.js';
import type { Bootstrap } from '../../src/format/bootstrap.js';
import type { BlobTableEntry } from '../../src/format/blob-table.js';
import { ChunkTable } from '../../src/format/chunk-table.js';
import type { BlobSource } from '../../src/storage/blob-source.js';
import { CacheDir } from '../../src/storage/cache-dir.js';
import { buildImage, KiB, randomBytes } from '../storage/support.js';
import { Cleanup, mountsUnder, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { pushLazy } from '../helpers/lazy-push.js';
import { startRegistry } from '../helpers/registry-env.js';
import { startInProcessFanotify } from '../helpers/fanotify-inproc.js';

test('a mount by reference parses its bootstrap once and serves that parse (fetched now, and found in the cache)', { skip: skipUnlessRoot }, async (t) => {
  requireKernelFs('erofs');
  // Steps undone last first (node:test runs a test's after hooks first first), the mounts
  // detached before the directory goes even when an assertion fails.
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  // On ext4 (/var/tmp): the cache directory must take pre-content marks.
  const dir = scratchDir(cleanup, 'parse-once');
  const registry = await startRegistry();
  cleanup.after(() => registry.stop());
  const files = { 'a.bin': randomBytes(300 * KiB, 11), 'b.txt': 'parse once\n' };
  const img = await buildImage(files, { chunkSize: 64 * KiB });
  cleanup.after(() => img.cleanup());
  await pushLazy(registry, 'once/app', '1', join(img.out, 'bootstrap'), img.blobDir);

  const cache = join(dir, 'cache');
  mkdirSync(cache);
  const catalog = new ImageCatalog();
  // The catalog as the mounts see it, recording which Bootstrap each blob handle is made from.
  const served: Bootstrap[] = [];
  const provider = {
    opts: catalog.opts,
    flatSource: (path: string, size: number) => catalog.flatSource(path, size),
    source: (spec: Parameters<ImageCatalog['source']>[0]) => catalog.source(spec),
    blob: (source: BlobSource, entry: BlobTableEntry, bootstrap: Bootstrap) => {
      served.push(bootstrap);
      return catalog.blob(source, entry, bootstrap);
    },
  };
  const fan = startInProcessFanotify(provider, cache, join(dir, 'state.json'));
  const { mounts } = fan;
  cleanup.after(async () => {
    await fan.close();
    await catalog.close();
  });
  const pulls: PulledImage[] = [];
  const socket = join(dir, 'run', 'ondine.sock');
  const server: Server = await startApi(socket, {
    catalog, fanotify: mounts, health: () => ({ ok: true }), stats: async () => ({}), shutdown: async () => undefined,
    pull: async (req, signal) => {
      const p = await pullBootstrap(req, new CacheDir(cache), {}, signal);
      pulls.push(p);
      return p;
    },
    pullDeadlineMs: 30_000,
  });
  cleanup.after(() => new Promise<void>((r) => server.close(() => r())));
  const client = new DaemonClient(socket);
  const ref = `${registry.host}/once/app:1`;

  const checks = t.mock.method(ChunkTable.prototype, 'check');
  for (const [i, how] of ['fetched now', 'found in the cache directory'].entries()) {
    const mnt = join(dir, `mnt${i}`);
    mkdirSync(mnt);
    const before = checks.mock.callCount();
    await client.mountRef({ ref, mountpoint: mnt });
    assert.equal(checks.mock.callCount() - before, 1, `one parse for a mount of a bootstrap ${how}`);
    assert.equal(pulls.length, i + 1);
    // The first mount makes the blob's handle, from the parse the pull made; the second shares
    // that handle (its one parse, counted above, was the pull's).
    assert.equal(served.length, 1);
    assert.strictEqual(served[0], pulls[0]!.parsed, 'the mount serves the pull\'s own parse');
    assert.equal(mountsUnder(mnt).length, 1);
    assert.deepEqual(await readFile(join(mnt, 'a.bin')), files['a.bin'], 'reads back what was built');
    assert.equal(await readFile(join(mnt, 'b.txt'), 'utf8'), files['b.txt']);
  }
});
