// The fanotify path reads back byte-identical through the real kernel, for images from three
// builders: ours (every kind of file: sizes around block and chunk edges, sparse files,
// symlinks, hardlinks, xattrs, devices), Nydus's own RAFS v6 fixture, and a chunked mkfs.erofs
// image whose data sits in a flat blob device (--blobdev, empty tag, mounted with --device 1=).
// Each is mounted by `ondine mount` (lazy: every byte comes through pre-content events) and
// compared with its source tree, or for Nydus with a plain kernel mount of the unpacked blob.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cleanup, cliOk, erofsTools, requireKernelFs, runOk, scratchDir, sharedDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, startFanotifyDaemon, totalSourceBytes, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { makeEveryKindTree, type EveryKindTree } from '../helpers/image-fixtures.js';
import { mountErofs, unpackWithCli } from '../helpers/kernel-mount.js';
import { assertSameTree } from '../helpers/tree-compare.js';

const NYDUS = join(sharedDir, 'fixtures', 'nydus-rafs-v6');
const NYDUS_BOOT = join(NYDUS, 'rafs-v6-2.2.boot');

describe('fanotify read-back through the kernel', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let tree: EveryKindTree;
  let d: FanotifyDaemon;

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'fan-readback');
    tree = await makeEveryKindTree(join(work, 'src'), { variant: 'small', seed: 11 });
    d = await startFanotifyDaemon(suite, work);
  });

  test('our image (every kind of file) reads back identical to its source', async (t) => {
    await cliOk(['build', tree.root, '-o', join(work, 'img'), '--chunk-size', '64K']);
    const mnt = join(work, 'mnt-ours');
    await d.mount(join(work, 'img'), mnt);
    dropCaches();
    const before = totalSourceBytes(await d.status());
    await assertSameTree(t, 'fanotify mount of our image vs source', tree.root, mnt, { dirNlink: true });
    const s = await d.status();
    assert.ok(totalSourceBytes(s) > before, `the reads were served from the source through events (source bytes ${before} -> ${totalSourceBytes(s)})`);
    assert.ok((s.fanotify?.fills ?? 0) > 0, 'the worker filled ranges');
    await d.umount(mnt);
  });

  test("Nydus's RAFS v6 fixture reads back identical to a plain kernel mount of its unpacked blob", { skip: existsSync(NYDUS_BOOT) ? false : `${NYDUS_BOOT} not found` }, async (t) => {
    const devices = await unpackWithCli(NYDUS_BOOT, NYDUS, join(work, 'nydus-unpacked'));
    const ref = await mountErofs(t, NYDUS_BOOT, devices, join(work, 'mnt-nydus-ref'));
    const mnt = join(work, 'mnt-nydus');
    await d.mount(NYDUS_BOOT, mnt, ['--blobs', NYDUS]);
    dropCaches();
    const stats = await assertSameTree(t, 'fanotify mount of the Nydus fixture vs plain mount', ref.dir, mnt, { dirNlink: true });
    assert.equal(stats.files, 2, 'the fixture holds lib.rs and sync_io.rs');
    assert.ok(stats.bytesCompared >= 16931 + 13400, `all content compared (${stats.bytesCompared} bytes)`);
    await d.umount(mnt);
  });

  test('a chunked mkfs.erofs image with a flat blob device (--device 1=<blob>) reads back identical to its source', async (t) => {
    const tools = await erofsTools();
    t.diagnostic(tools.note);
    const dir = join(work, 'mkfs');
    mkdirSync(dir);
    const blob = join(dir, 'blob.img');
    writeFileSync(blob, '');
    await runOk(tools.mkfs, ['--chunksize=65536', `--blobdev=${blob}`, join(dir, 'boot.img'), tree.root]);
    const mnt = join(work, 'mnt-mkfs');
    await d.mount(join(dir, 'boot.img'), mnt, ['--device', `1=${blob}`]);
    dropCaches();
    const fills = (await d.status()).fanotify?.fills ?? 0;
    await assertSameTree(t, 'fanotify mount of the mkfs.erofs image vs source', tree.root, mnt, { dirNlink: true });
    const s = await d.status();
    assert.ok((s.fanotify?.fills ?? 0) > fills, `the device's bytes came through fills (${fills} -> ${s.fanotify?.fills})`);
    await d.umount(mnt);
  });
});
