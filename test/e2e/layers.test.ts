// Host end-to-end: OCI layer tarballs made by GNU tar (pax, gzip / zstd / uncompressed, with
// xattrs) built into one image, mounted by the kernel, and compared with the kernel's own
// answer to "what do these layers look like stacked": overlayfs over the layers as GNU tar
// extracts them, with OCI whiteouts turned into overlayfs whiteouts. Also the blob accounting:
// one blob per layer that brings data, chunks shared across layers stored once.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { BuildResult } from '../../src/builder/builder.js';
import { lgetxattr } from '../../src/native/index.js';
import { Cleanup, cliOk, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { Prng, setMtime, textBytes } from '../helpers/image-fixtures.js';
import { mountOverlay, unpackAndMount } from '../helpers/kernel-mount.js';
import { deleteFromTar, extractForOverlay, listTar, tarLayer, type LayerCompression } from '../helpers/oci-layers.js';
import { assertSameTree } from '../helpers/tree-compare.js';
import { setXattr } from '../helpers/xattr.js';

type Kind = 'dir' | 'file' | 'symlink' | 'hardlink' | 'chardev' | 'fifo' | 'whiteout';

interface StageEntry {
  path: string;
  kind: Kind;
  data?: Buffer | string;
  /** symlink target, or hardlink target (a path in the same stage) */
  target?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  xattrs?: Record<string, string>;
}

const CHUNK = 64 << 10;

/** Creates the entries under `stage` and returns the tar member list in the given order. */
function stageLayer(stage: string, entries: readonly StageEntry[], timeBase: number): string[] {
  mkdirSync(stage, { recursive: true });
  chmodSync(stage, 0o755);
  for (const e of entries) {
    const p = join(stage, e.path);
    mkdirSync(dirname(p), { recursive: true });
    switch (e.kind) {
      case 'dir': mkdirSync(p, { recursive: true }); break;
      case 'file': writeFileSync(p, e.data ?? ''); break;
      case 'whiteout': writeFileSync(p, ''); break;
      case 'symlink': symlinkSync(e.target!, p); break;
      case 'hardlink': linkSync(join(stage, e.target!), p); break;
      case 'chardev': execFileSync('mknod', [p, 'c', '1', '3']); break;
      case 'fifo': execFileSync('mkfifo', [p]); break;
    }
    if (e.kind !== 'hardlink') {
      if (e.kind !== 'symlink') chmodSync(p, e.mode ?? (e.kind === 'dir' ? 0o755 : 0o644));
      lchownSync(p, e.uid ?? 0, e.gid ?? 0);
      if (e.mode !== undefined && e.kind !== 'symlink') chmodSync(p, e.mode); // chown clears setuid bits
      for (const [k, v] of Object.entries(e.xattrs ?? {})) setXattr(p, k, Buffer.from(v));
    }
  }
  // Nanosecond mtimes, deepest first so creating children does not move a parent's time.
  const ordered = ['.', ...entries.map((e) => e.path)];
  [...ordered].reverse().forEach((rel, i) => {
    if (entries.find((e) => e.path === rel)?.kind === 'hardlink') return;
    setMtime([join(stage, rel)], `${timeBase + i * 97}.${String((i * 123_456_789 + 7) % 1e9).padStart(9, '0')}`);
  });
  return ordered;
}

/** sha256 of each non-zero chunk of the regular files a layer archives (hardlinks once). */
function layerChunks(stage: string, entries: readonly StageEntry[]): Set<string> {
  const out = new Set<string>();
  for (const e of entries) {
    if (e.kind !== 'file') continue;
    const data = readFileSync(join(stage, e.path));
    for (let at = 0; at < data.length; at += CHUNK) {
      const c = data.subarray(at, at + CHUNK);
      if (c.some((b) => b !== 0)) out.add(createHash('sha256').update(c).digest('hex'));
    }
  }
  return out;
}

describe('OCI layers: build vs the kernel overlayfs of the same layers', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  const layers: Array<{ path: string; compression: LayerCompression; stage: string; entries: StageEntry[] }> = [];

  before(() => {
    requireKernelFs('erofs');
    requireKernelFs('overlay');
    work = scratchDir(suite, 'layers');
    const prng = new Prng(2024);
    const big = prng.bytes(300_000);
    const l1: StageEntry[] = [
      { path: 'etc', kind: 'dir' },
      { path: 'etc/config', kind: 'file', data: 'version 1\n' },
      { path: 'etc/keep', kind: 'file', data: 'kept until layer 3\n' },
      { path: 'bin', kind: 'dir' },
      { path: 'bin/tool', kind: 'file', data: prng.bytes(40_000), mode: 0o755, xattrs: { 'user.l1': 'tool' } },
      { path: 'bin/chmod-me', kind: 'file', data: 'same bytes, new mode later\n' },
      { path: 'bin/setuid', kind: 'file', data: '#!/bin/sh\n', mode: 0o4755 },
      { path: 'data', kind: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
      { path: 'data/big', kind: 'file', data: big },
      { path: 'dir_to_delete', kind: 'dir' },
      { path: 'dir_to_delete/a', kind: 'file', data: 'a' },
      { path: 'dir_to_delete/b', kind: 'dir' },
      { path: 'dir_to_delete/b/c', kind: 'file', data: 'c' },
      { path: 'opaque_dir', kind: 'dir' },
      { path: 'opaque_dir/old1', kind: 'file', data: 'old 1' },
      { path: 'opaque_dir/old2', kind: 'file', data: 'old 2' },
      { path: 'opaque_dir/sub', kind: 'dir' },
      { path: 'opaque_dir/sub/x', kind: 'file', data: 'old x' },
      { path: 'opaque_first', kind: 'dir' },
      { path: 'opaque_first/oldA', kind: 'file', data: 'old A' },
      { path: 'opaque_first/oldB', kind: 'dir' },
      { path: 'file_to_dir', kind: 'file', data: 'I was a file\n' },
      { path: 'dir_to_file', kind: 'dir' },
      { path: 'dir_to_file/x', kind: 'file', data: 'below a dir that becomes a file' },
      { path: 'link_target', kind: 'file', data: prng.bytes(10_000), mode: 0o640, uid: 70_000, gid: 70_001, xattrs: { 'user.who': 'the link target' } },
      { path: 'same_a', kind: 'file', data: 'two names in one layer\n' },
      { path: 'same_b', kind: 'hardlink', target: 'same_a' },
      { path: 'sym', kind: 'symlink', target: 'etc/config' },
      { path: 'dev', kind: 'dir' },
      { path: 'dev/null', kind: 'chardev' },
      { path: 'fifo', kind: 'fifo' },
    ];
    const l2: StageEntry[] = [
      { path: 'etc', kind: 'dir', mode: 0o711 },
      { path: 'etc/config', kind: 'file', data: 'version 2, modified in layer 2\n' },
      { path: 'etc/new', kind: 'file', data: textBytes(prng, 20_000), xattrs: { 'user.added': 'in layer 2', 'user.long': 'x'.repeat(1500) } },
      { path: 'bin', kind: 'dir' },
      { path: 'bin/.wh.tool', kind: 'whiteout' },
      { path: 'bin/chmod-me', kind: 'file', data: 'same bytes, new mode later\n', mode: 0o700, uid: 5, gid: 6 },
      { path: '.wh.dir_to_delete', kind: 'whiteout' },
      { path: 'opaque_dir', kind: 'dir', mode: 0o775 },
      { path: 'opaque_dir/new1', kind: 'file', data: 'new in the opaque dir' },
      { path: 'opaque_dir/sub', kind: 'dir' },
      { path: 'opaque_dir/sub/y', kind: 'file', data: 'new y' },
      { path: 'opaque_dir/.wh..wh..opq', kind: 'whiteout' }, // after its siblings in the tar
      { path: 'opaque_first', kind: 'dir' },
      { path: 'opaque_first/.wh..wh..opq', kind: 'whiteout' }, // before its siblings
      { path: 'opaque_first/newA', kind: 'file', data: 'new A' },
      { path: 'file_to_dir', kind: 'dir' },
      { path: 'file_to_dir/inner', kind: 'file', data: 'now a directory\n' },
      { path: 'dir_to_file', kind: 'file', data: 'now a file\n' },
      { path: 'data', kind: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
      { path: 'data/copy-of-big', kind: 'file', data: big },
      { path: 'data/half-new', kind: 'file', data: Buffer.concat([big.subarray(0, 2 * CHUNK), prng.bytes(100_000)]) },
    ];
    const l3: StageEntry[] = [
      { path: 'link_target', kind: 'file', data: 'stand-in, deleted from the archive' },
      { path: 'hl', kind: 'hardlink', target: 'link_target' },
      { path: 'etc', kind: 'dir', mode: 0o711 },
      { path: 'etc/.wh.keep', kind: 'whiteout' },
      { path: 'sym2', kind: 'symlink', target: 'hl' },
      { path: 'empty', kind: 'file', data: '' },
    ];
    const specs: Array<[StageEntry[], LayerCompression, string]> = [[l1, 'gzip', 'l1.tar.gz'], [l2, 'zstd', 'l2.tar.zst'], [l3, 'none', 'l3.tar']];
    specs.forEach(([entries, compression, name], i) => {
      const stage = join(work, `stage-${i + 1}`);
      const members = stageLayer(stage, entries, 1_600_000_000 + i * 1_000_000);
      const path = join(work, name);
      tarLayer(stage, members, path, compression);
      layers.push({ path, compression, stage, entries });
    });
    // Layer 3's hardlink must point into layer 1: drop the stand-in target from the archive.
    deleteFromTar(layers[2]!.path, ['link_target']);
    const l3list = listTar(layers[2]!.path);
    assert.ok(l3list.some((l) => /^h.* hl link to link_target$/.test(l)), `layer 3 holds a bare hardlink: ${l3list.join(' | ')}`);
    assert.ok(!l3list.some((l) => / link_target$/.test(l) && !/link to/.test(l)), 'layer 3 no longer holds link_target itself');
  });

  test('the EROFS mount of the built layers equals overlayfs over the extracted layers', async (t) => {
    const out = join(work, 'out');
    const res = JSON.parse((await cliOk(['build', ...layers.map((l) => l.path), '-o', out, '--chunk-size', '64K', '--json'])).stdout) as BuildResult;
    const erofs = await unpackAndMount(t, out, join(work, 'run'));

    // The oracle: each layer extracted by tar, whiteouts converted, stacked by overlayfs.
    const lowers: string[] = [];
    let whiteouts = 0;
    let opaque = 0;
    const cross: string[] = [];
    for (let i = 0; i < layers.length; i++) {
      const dir = join(work, `extract-${i + 1}`);
      mkdirSync(dir);
      let lowerView: string | undefined;
      // What the layers below look like merged (overlayfs needs two lowers without an upper).
      if (i === 1) lowerView = lowers[0];
      if (i > 1) lowerView = mountOverlay(t, [...lowers].reverse(), join(work, `lower-view-${i}`)).dir;
      const r = await extractForOverlay(layers[i]!.path, dir, lowerView);
      whiteouts += r.whiteouts;
      opaque += r.opaque;
      cross.push(...r.crossLayerLinks);
      lowers.push(dir);
    }
    const overlay = mountOverlay(t, [...lowers].reverse(), join(work, 'overlay'));
    t.diagnostic(`oracle: 3 layers (gzip, zstd, plain) extracted by GNU tar, ${whiteouts} whiteouts and ${opaque} opaque markers converted, ${cross.length} cross-layer hardlink copied (${cross.join(', ')})`);

    await assertSameTree(t, 'EROFS mount vs overlayfs', overlay.dir, erofs.dir, {
      hardlinks: false, // overlayfs cannot keep a hardlink across layers; checked on EROFS below
      xattrs: (name) => !name.startsWith('trusted.overlay.'),
    });

    // What the layers mean, stated directly (both mounts could not agree on these by accident).
    const ls = (p: string) => readdirSync(join(erofs.dir, p)).sort();
    assert.equal(readFileSync(join(erofs.dir, 'etc/config'), 'utf8'), 'version 2, modified in layer 2\n');
    assert.deepEqual(ls('etc'), ['config', 'new']);
    assert.deepEqual(ls('bin'), ['chmod-me', 'setuid']);
    assert.deepEqual(ls('opaque_dir'), ['new1', 'sub']);
    assert.deepEqual(ls('opaque_dir/sub'), ['y']);
    assert.deepEqual(ls('opaque_first'), ['newA']);
    assert.deepEqual(ls('file_to_dir'), ['inner']);
    assert.ok(lstatSync(join(erofs.dir, 'dir_to_file')).isFile());
    assert.ok(!ls('').includes('dir_to_delete'));
    assert.ok(!ls('').some((n) => n.startsWith('.wh.')));
    assert.equal(lstatSync(join(erofs.dir, 'bin/chmod-me')).mode & 0o7777, 0o700);
    assert.equal(lstatSync(join(erofs.dir, 'bin/setuid')).mode & 0o7777, 0o4755);
    assert.equal(lgetxattr(join(erofs.dir, 'etc/new'), 'user.long').toString(), 'x'.repeat(1500));
    const hl = lstatSync(join(erofs.dir, 'hl'));
    const target = lstatSync(join(erofs.dir, 'link_target'));
    assert.equal(hl.ino, target.ino, 'the layer-3 hardlink is the layer-1 file itself');
    assert.equal(target.nlink, 2);
    assert.deepEqual([hl.mode & 0o7777, hl.uid, hl.gid], [0o640, 70_000, 70_001]);
    assert.equal(lstatSync(join(erofs.dir, 'same_a')).ino, lstatSync(join(erofs.dir, 'same_b')).ino);

    // Blobs: layers 1 and 2 bring data, layer 3 none. Layer 2's blob holds only chunks
    // layer 1 did not have (copy-of-big adds nothing, half-new only its new part).
    const c1 = layerChunks(layers[0]!.stage, layers[0]!.entries);
    const c2 = layerChunks(layers[1]!.stage, layers[1]!.entries);
    const new2 = [...c2].filter((d) => !c1.has(d)).length;
    t.diagnostic(`chunks: layer 1 has ${c1.size} distinct, layer 2 ${c2.size} of which ${new2} new; build wrote ${res.blobs.map((b) => b.chunkCount).join(' + ')}`);
    assert.deepEqual(res.blobs.map((b) => [b.chunkCount, b.fromDict]), [[c1.size, false], [new2, false]]);
    assert.ok(new2 < c2.size, 'layer 2 shares chunks with layer 1');
    const dev = JSON.parse((await cliOk(['inspect', '--json', join(out, 'bootstrap')])).stdout) as { blobs: Array<{ blobId: string }> };
    assert.deepEqual(dev.blobs.map((b) => b.blobId), res.blobs.map((b) => b.blobId), 'the device table lists the two layer blobs in layer order');
    assert.equal(readdirSync(join(out, 'blobs')).length, 2);
  });
});
