// Images the VM tests serve, built on the host (the guest sees the host's /tmp read-only).
// Everything is made here from scratch with our builder, mkfs.erofs and Nydus's fixture, and
// described in a manifest the guest tests read.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, stat, symlink, writeFile, link, chmod } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { build } from '../../src/builder/builder.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { unpackBlob } from '../../src/storage/unpack.js';
import { MS_RDONLY, mount, umount2 } from '../../src/native/index.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';

export interface ImageFixture {
  /** Image directory: bootstrap + blobs/. */
  dir: string;
  src: string;
  /** sha256 of every regular file, by path relative to the image root. */
  files: Record<string, string>;
  blobs: Array<{ id: string; compressedSize: number; uncompressedSize: number }>;
}

export interface Manifest {
  small: ImageFixture;
  big: ImageFixture & { smallFile: string };
  tree5k: ImageFixture;
  shareA: ImageFixture;
  shareB: ImageFixture;
  corrupt: ImageFixture & { badFile: string; goodFile: string; badRange: [number, number] };
  nydus: { bootstrap: string; blobDir: string; files: Record<string, string> };
  mkfs: { bootstrap: string; device: string; tag: string; files: Record<string, string> };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** sha256 of every regular file under root (paths relative, with a leading '/'). */
export async function hashTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out['/' + relative(root, p)] = sha(await readFile(p));
    }
  };
  await walk(root);
  return out;
}

/** Deterministic, mildly compressible bytes. */
function content(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(i % 64 < 32 ? x : (i & 0xffff), i - (i + 4 > size ? i + 4 - size : 0));
  }
  return b;
}

async function image(name: string, src: string, root: string, chunkDict?: string): Promise<ImageFixture> {
  const dir = join(root, name);
  const r = await build({ sources: [src], outDir: dir, ...(chunkDict ? { chunkDict } : {}) });
  return { dir, src, files: await hashTree(src), blobs: r.blobs.map((b) => ({ id: b.blobId, compressedSize: b.compressedSize, uncompressedSize: b.uncompressedSize })) };
}

/** Expected file hashes from an independent reader: the host kernel's file-backed mount. */
async function hostKernelHashes(bootstrap: string, blobDir: string, work: string): Promise<Record<string, string>> {
  const b = parseBootstrap(await readFile(bootstrap));
  await mkdir(join(work, 'mnt'), { recursive: true });
  const source = new LocalDirSource(blobDir);
  const devices: string[] = [];
  for (const e of b.blobs) {
    const out = join(work, e.blobId);
    const r = await unpackBlob(b, e, source, out);
    if (r.failures.length) throw r.failures[0];
    devices.push(`device=${out}`);
  }
  await source.close();
  mount(bootstrap, join(work, 'mnt'), 'erofs', MS_RDONLY, devices.join(','));
  try {
    return await hashTree(join(work, 'mnt'));
  } finally {
    umount2(join(work, 'mnt'));
  }
}

export async function makeFixtures(root: string, sharedDir: string): Promise<Manifest> {
  await mkdir(root, { recursive: true });

  // small: a bit of everything a reader can check.
  const small = join(root, 'src-small');
  await mkdir(join(small, 'dir/sub'), { recursive: true });
  await writeFile(join(small, 'hello.txt'), 'hello, lazy world\n');
  await writeFile(join(small, 'dir/two-chunks.bin'), content(1, (1 << 20) + 12345));
  await writeFile(join(small, 'dir/sub/empty'), '');
  await writeFile(join(small, 'random.bin'), randomBytes(3 << 20));
  await link(join(small, 'hello.txt'), join(small, 'dir/hardlink.txt'));
  await symlink('../hello.txt', join(small, 'dir/link'));
  await chmod(join(small, 'random.bin'), 0o4755);
  execFileSync('truncate', ['-s', '6M', join(small, 'sparse.bin')]);
  await writeFile(join(small, 'sparse.bin'), 'tail', { flag: 'a' });

  // big: ~200 MB of data in a few large files plus one small file to read alone.
  const big = join(root, 'src-big');
  await mkdir(big);
  for (let i = 0; i < 10; i++) await writeFile(join(big, `part${i}.bin`), randomBytes(20 << 20));
  await writeFile(join(big, 'small.txt'), 'just this file\n');

  // tree5k: 5000 small files in 50 directories.
  const t5 = join(root, 'src-tree5k');
  for (let d = 0; d < 50; d++) {
    await mkdir(join(t5, `d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) await writeFile(join(t5, `d${d}`, `f${f}`), content(d * 100 + f + 7, 200 + ((d * 100 + f) * 37) % 9000));
  }

  // shareA/shareB: B is built with A as chunk dict, so B references A's blob for shared data.
  const sa = join(root, 'src-shareA');
  const sb = join(root, 'src-shareB');
  await mkdir(sa);
  await mkdir(sb);
  const shared = content(99, 8 << 20);
  await writeFile(join(sa, 'shared.bin'), shared);
  await writeFile(join(sa, 'only-a.txt'), 'a\n');
  await writeFile(join(sb, 'shared-copy.bin'), shared);
  await writeFile(join(sb, 'only-b.bin'), content(5, 2 << 20));

  const m: Partial<Manifest> = {};
  m.small = await image('small', small, root);
  m.big = { ...(await image('big', big, root)), smallFile: '/small.txt' };
  m.tree5k = await image('tree5k', t5, root);
  m.shareA = await image('shareA', sa, root);
  m.shareB = await image('shareB', sb, root, join(m.shareA.dir, 'bootstrap'));
  // B's blob directory holds every blob B references, as after a pull.
  for (const b of m.shareA.blobs) await link(join(m.shareA.dir, 'blobs', b.id), join(m.shareB.dir, 'blobs', b.id));

  // corrupt: the small image with one byte of random.bin's first chunk flipped in the blob.
  const corruptDir = join(root, 'corrupt');
  await mkdir(join(corruptDir, 'blobs'), { recursive: true });
  await copyFile(join(m.small.dir, 'bootstrap'), join(corruptDir, 'bootstrap'));
  const bs = parseBootstrap(await readFile(join(m.small.dir, 'bootstrap')));
  const ino = bs.lookup('/random.bin');
  const first = bs.chunkMap(ino)[0]!.chunk;
  const ct = bs.chunks.find((c) => c.blobIndex === first.deviceId - 1 && c.index === first.blobCiIndex)!;
  const blobId = bs.blobs[first.deviceId - 1]!.blobId;
  const blob = await readFile(join(m.small.dir, 'blobs', blobId));
  blob[ct.compressedOffset + Math.floor(ct.compressedSize / 2)]! ^= 0x55;
  await writeFile(join(corruptDir, 'blobs', blobId), blob);
  m.corrupt = { ...m.small, dir: corruptDir, badFile: '/random.bin', goodFile: '/hello.txt', badRange: [ct.uncompressedOffset, ct.uncompressedOffset + ct.uncompressedSize] };

  // Nydus's own image.
  const nydusDir = join(sharedDir, 'fixtures/nydus-rafs-v6');
  const nb = join(root, 'nydus');
  await mkdir(join(nb, 'blobs'), { recursive: true });
  await copyFile(join(nydusDir, 'rafs-v6-2.2.boot'), join(nb, 'bootstrap'));
  const nid = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
  await copyFile(join(nydusDir, nid), join(nb, 'blobs', nid));
  m.nydus = { bootstrap: join(nb, 'bootstrap'), blobDir: join(nb, 'blobs'), files: await hostKernelHashes(join(nb, 'bootstrap'), join(nb, 'blobs'), join(root, 'nydus-check')) };

  // mkfs.erofs 1.5: chunked image with an (empty-tagged) blob device.
  const mk = join(root, 'mkfs');
  await mkdir(mk);
  await writeFile(join(mk, 'blob.img'), '');
  execFileSync('mkfs.erofs', ['--chunksize=1048576', `--blobdev=${join(mk, 'blob.img')}`, join(mk, 'boot.img'), small], { stdio: 'pipe' });
  m.mkfs = { bootstrap: join(mk, 'boot.img'), device: join(mk, 'blob.img'), tag: 'mkfsblob', files: m.small.files };
  if ((await stat(m.mkfs.device)).size === 0) throw new Error('mkfs.erofs wrote an empty blob device');

  const manifest = m as Manifest;
  await writeFile(join(root, 'manifest.json'), JSON.stringify(manifest, null, 1));
  return manifest;
}
