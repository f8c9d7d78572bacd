// Our builder's image, Nydus's own image and a mkfs.erofs chunked image all mount over
// cachefiles and read back byte-identical; metadata survives too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hashTree, manifest, mountImage, startDaemon, umountImage, type DaemonProc } from './harness.js';

let d: DaemonProc;
after(async () => { await d?.stop(); });

test('images from three builders mount lazily and read back byte-identical', async (t) => {
  const m = await manifest();
  d = await startDaemon('readback');

  await t.test('Ondine builder image', async () => {
    const mnt = '/run/mnt-rb-small';
    await mountImage(d, m.small.dir, mnt, { fsid: 'rb-small' });
    assert.deepEqual(await hashTree(mnt), m.small.files);
    const st = await lstat(join(mnt, 'random.bin'));
    assert.equal(st.mode & 0o7777, 0o4755);
    assert.equal(await readlink(join(mnt, 'dir/link')), '../hello.txt');
    assert.equal((await stat(join(mnt, 'dir/hardlink.txt'))).ino, (await stat(join(mnt, 'hello.txt'))).ino);
    assert.equal((await stat(join(mnt, 'sparse.bin'))).size, 6 * 1024 * 1024 + 4);
    await umountImage(d, mnt);
  });

  await t.test('Nydus RAFS v6 fixture (zstd, blake3, chunk info v1, TOC)', async () => {
    const mnt = '/run/mnt-rb-nydus';
    await mountImage(d, m.nydus.bootstrap, mnt, { fsid: 'rb-nydus', blobs: m.nydus.blobDir });
    const got = await hashTree(mnt);
    assert.deepEqual(got, m.nydus.files);
    assert.ok(Object.keys(got).length >= 2);
    await umountImage(d, mnt);
  });

  await t.test('mkfs.erofs chunked image with -o device=', async () => {
    const mnt = '/run/mnt-rb-mkfs';
    await mountImage(d, m.mkfs.bootstrap, mnt, { fsid: 'rb-mkfs', device: `${m.mkfs.tag}=${m.mkfs.device}` });
    assert.deepEqual(await hashTree(mnt), m.mkfs.files);
    await umountImage(d, mnt);
  });
});
