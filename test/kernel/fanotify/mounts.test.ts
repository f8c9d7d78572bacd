// FanotifyMounts against the real kernel: a fanotify pre-content group, file-backed EROFS
// mounts over sparse cache files in a cache directory on ext4 (/var/tmp), events served by
// the group reader and front end as in `daemon --no-supervisor`.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { build } from '../../../src/builder/builder.js';
import { ImageCatalog } from '../../../src/daemon/catalog.js';
import type { FanotifyMounts } from '../../../src/kernel/fanotify/mounts.js';
import { OndineError } from '../../../src/errors.js';
import { startInProcessFanotify } from '../../helpers/fanotify-inproc.js';
import { mountsUnder, requireKernelFs, scratchDir, skipUnlessRoot } from '../../helpers/e2e-env.js';

async function served(t: TestContext): Promise<{ mounts: FanotifyMounts; image: string; dir: string; content: Buffer }> {
  requireKernelFs('erofs');
  const dir = scratchDir(t, 'fan-mounts');
  const src = join(dir, 'src');
  mkdirSync(src);
  const content = Buffer.alloc(3 << 20);
  for (let i = 0; i < content.length; i += 4) content.writeUInt32LE(i * 2654435761 >>> 0, i);
  writeFileSync(join(src, 'data'), content);
  const image = join(dir, 'image');
  await build({ sources: [src], outDir: image, workers: 1 });
  const cache = join(dir, 'cache');
  mkdirSync(cache);
  const catalog = new ImageCatalog();
  const fan = startInProcessFanotify(catalog, cache, join(dir, 'state.json'));
  const { mounts } = fan;
  // Runs before scratchDir's clean-up (t.after hooks run last first): mounts go, then the group.
  t.after(async () => {
    await fan.close();
    await catalog.close();
  });
  return { mounts, image, dir, content };
}

test('two mounts at one mount point at once: one is refused, and the other keeps its marks after the refused one', { skip: skipUnlessRoot }, async (t) => {
  const { mounts, image, dir, content } = await served(t);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const spec = { bootstrap: join(image, 'bootstrap'), mountpoint: mnt };
  const results = await Promise.allSettled([mounts.mount(spec), mounts.mount(spec)]);
  const refused = results.filter((r) => r.status === 'rejected');
  assert.equal(refused.length, 1, `one of two concurrent mounts at ${mnt} must be refused: ${JSON.stringify(results.map((r) => r.status))}`);
  const err = (refused[0] as PromiseRejectedResult).reason as unknown;
  assert.ok(err instanceof OndineError && err.code === 'ONDINE_ERR_BUSY', `refused with ONDINE_ERR_BUSY: ${String(err)}`);
  assert.equal(mountsUnder(mnt).length, 1, 'exactly one kernel mount there');
  assert.equal(mounts.list()[0]?.blobs.every((b) => !b.complete), true, 'its blob is still marked');
  // Read off the JS thread: this thread answers the read's events.
  assert.ok((await readFile(join(mnt, 'data'))).equals(content), 'reads are filled, never zeros');
  await mounts.umount(mnt);
  assert.equal(mountsUnder(mnt).length, 0, 'nothing left mounted after one umount');
});
