// The whole-bootstrap reader on synthetic images written with the format encoders: the tree,
// symlinks, devices, chunk maps with holes, xattrs, multi-block directories, and refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBootstrap, type Bootstrap, type InodeInfo } from '../../src/format/bootstrap.js';
import { DataLayout, FileType, NULL_ADDR, S_IFMT, S_IFDIR, S_IFREG } from '../../src/format/constants.js';
import { buildImage, richTree, BUILD_TIME, BUILD_TIME_NSEC, CHUNK_SIZE, type Spec } from './synthetic-image.js';
import { assertOndine, rd16, wr16, wr32, wr64, CORRUPT, UNSUPPORTED, BLOB_ID } from './support.js';
import { superblockChecksum } from '../../src/format/superblock.js';

const SB = 1024;

/** Bounded, so a walk that misses a loop fails the test instead of hanging it. */
function walkAll(b: Bootstrap): Map<string, InodeInfo> {
  const out = new Map<string, InodeInfo>();
  for (const { path, ino } of b.walk()) {
    if (out.size > 10_000) throw new Error('walk does not terminate');
    out.set(path, ino);
  }
  return out;
}

test('parses the superblock, device table and blob table of a synthetic RAFS v6 image', () => {
  const { image, rootNid } = buildImage(richTree());
  const b = parseBootstrap(image);
  assert.equal(b.isRafs, true);
  assert.equal(b.blockSize, 4096);
  assert.equal(b.sb.rootNid, rootNid);
  assert.equal(b.chunkSize, CHUNK_SIZE);
  assert.deepEqual(b.devices, [{ tag: BLOB_ID, blocks: 1024, mappedBlkaddr: 0 }]);
  assert.equal(b.blobs.length, 1);
  assert.equal(b.blobs[0]!.blobId, BLOB_ID);
  assert.deepEqual(b.chunks, []);
  assert.equal(b.blobIdOfDevice(1), BLOB_ID);
  assertOndine(() => b.blobIdOfDevice(2), CORRUPT);
  assertOndine(() => b.blobIdOfDevice(0), CORRUPT);
});

test('walk visits every path once in directory (byte) order, hard links included', () => {
  const { image, nodes } = buildImage(richTree());
  const b = parseBootstrap(image);
  const paths = [...b.walk()].map((e) => e.path);
  const many = Array.from({ length: 120 }, (_, i) => `/many/entry-with-a-longish-name-${i.toString().padStart(4, '0')}`);
  // A directory's entries are all listed before the walk descends into its subdirectories.
  assert.deepEqual(paths, ['/', '/big', '/empty', '/link', '/many', '/nvme', '/pipe', '/sda1', '/sub', ...many, '/sub/hard', '/sub/nested']);
  const all = walkAll(b);
  assert.equal(all.get('/sub/hard')!.nid, nodes.get('/big')!.nid);
  assert.equal(all.get(many[119]!)!.nid, nodes.get('/sub/nested')!.nid);
  for (const { path, parentNid } of b.walk()) {
    if (path === '/') assert.equal(parentNid, b.sb.rootNid);
    if (path.startsWith('/sub/')) assert.equal(parentNid, nodes.get('/sub')!.nid);
  }
});

test('inodes: extended keep their own mtime, compact take the build time; xattrs decoded', () => {
  const b = parseBootstrap(buildImage(richTree()).image);
  const all = walkAll(b);
  const root = all.get('/')!;
  assert.equal(root.extended, true);
  assert.equal(root.mtime, -1);
  assert.equal(root.mtimeNsec, 5);
  assert.deepEqual([...root.xattrs], [['user.root', Buffer.from('r')]]);
  const sub = all.get('/sub')!;
  assert.equal(sub.extended, false);
  assert.equal(sub.mtime, BUILD_TIME);
  assert.equal(sub.mtimeNsec, BUILD_TIME_NSEC);
  assert.equal(sub.uid, 1000);
  const big = all.get('/big')!;
  assert.deepEqual(Object.fromEntries([...big.xattrs].map(([k, v]) => [k, v.toString()])), { 'security.capability': 'cap-bytes-here', 'user.k': 'v' });
  assert.equal(big.payloadOffset, big.offset + 64 + 12 + 28 + 8);
  assert.equal(big.uid, 100000);
});

test('directories: inline and multi-block plain directories read back whole', () => {
  const { image, nodes } = buildImage(richTree());
  const b = parseBootstrap(image);
  const all = walkAll(b);
  const many = all.get('/many')!;
  assert.equal(many.layout, DataLayout.FlatPlain);
  assert.ok(many.size > 4096, 'spans several blocks');
  const entries = b.readDir(many);
  assert.equal(entries.length, 122);
  assert.deepEqual(entries.slice(0, 2).map((e) => [e.name.toString(), e.nid, e.fileType]), [
    ['.', nodes.get('/many')!.nid, FileType.Directory], ['..', b.sb.rootNid, FileType.Directory]]);
  const sub = b.readDir(all.get('/sub')!);
  assert.equal(all.get('/sub')!.layout, DataLayout.FlatInline);
  assert.deepEqual(sub.map((e) => e.name.toString()), ['.', '..', 'hard', 'nested']);
  assert.equal(b.lookup('/sub/nested').nid, nodes.get('/sub/nested')!.nid);
  assert.equal(b.lookup('/').nid, b.sb.rootNid);
  assert.equal(b.lookup('many/entry-with-a-longish-name-0100').nid, nodes.get('/sub/nested')!.nid);
  assertOndine(() => b.lookup('/sub/missing'), CORRUPT, { message: /no entry "missing"/ });
  assertOndine(() => b.lookup('/big/x'), CORRUPT, { message: /not a directory/ });
});

test('symlinks, devices, fifos', () => {
  const b = parseBootstrap(buildImage(richTree()).image);
  const all = walkAll(b);
  assert.equal(b.readSymlink(all.get('/link')!), 'sub/nested/../file-ü');
  assert.deepEqual(b.rdev(all.get('/sda1')!), { major: 8, minor: 1 });
  assert.deepEqual(b.rdev(all.get('/nvme')!), { major: 259, minor: 300 });
  assert.deepEqual(b.rdev(all.get('/pipe')!), { major: 0, minor: 0 });
  assert.deepEqual(b.rdev(all.get('/big')!), { major: 0, minor: 0 });
  assertOndine(() => b.readSymlink(all.get('/big')!), CORRUPT, { message: /not a symlink/ });
  assertOndine(() => b.readDir(all.get('/link')!), CORRUPT, { message: /not a directory/ });
  assertOndine(() => b.chunkMap(all.get('/link')!), CORRUPT, { message: /not a regular file/ });
});

test('chunk maps: file ranges, device ids, holes and 24-bit ci indexes', () => {
  const b = parseBootstrap(buildImage(richTree()).image);
  const all = walkAll(b);
  const big = all.get('/big')!;
  assert.equal(b.inodeChunkSize(big), CHUNK_SIZE);
  assert.deepEqual(b.chunkMap(big), [
    { index: 0, fileOffset: 0, length: CHUNK_SIZE, chunk: { deviceId: 1, blkaddr: 0, blobCiIndex: 0 } },
    { index: 1, fileOffset: CHUNK_SIZE, length: CHUNK_SIZE, chunk: { deviceId: 0, blkaddr: NULL_ADDR, blobCiIndex: 0 } },
    { index: 2, fileOffset: 2 * CHUNK_SIZE, length: 12345, chunk: { deviceId: 1, blkaddr: 256, blobCiIndex: 0x012345 } },
  ]);
  assert.deepEqual(b.chunkMap(all.get('/empty')!), []);
  assert.deepEqual(b.chunkMap(all.get('/sub/nested')!).map((m) => m.length), [1]);
});

test('chunk index device ids are masked like the kernel and checked against extra_devices', () => {
  const { image, nodes } = buildImage(richTree());
  const big = nodes.get('/big')!;
  const base = Math.ceil((big.offset + 64 + 12 + 28 + 8) / 8) * 8;
  // device_id 3 with one extra device: the kernel's mask (roundup_pow_of_two(2) - 1 = 1) gives 1.
  const masked = Buffer.from(image);
  wr16(masked, base + 2, 0x0003);
  const b = parseBootstrap(masked);
  assert.equal(b.chunkMap(b.lookup('/big'))[0]!.chunk.deviceId, 1);
  // Two extra devices in the superblock but a chunk naming device 3 (mask 3): refused.
  const beyond = Buffer.from(image);
  wr16(beyond, SB + 86, 2);
  wr16(beyond, base + 2, 0x0003);
  const b2 = parseBootstrap(beyond);
  assertOndine(() => b2.chunkMap(b2.lookup('/big')), CORRUPT, { structure: 'EROFS chunk index', offset: base + 2 });
});

test('chunk-map refusals: block-map format, non-chunked layout, chunk bits out of range, indexes past the end', () => {
  const { image, nodes } = buildImage(richTree());
  const big = nodes.get('/big')!;
  const withIu = (iu: number): Bootstrap => { const img = Buffer.from(image); wr32(img, big.offset + 16, iu); return parseBootstrap(img); };
  assertOndine(() => { const b = withIu(8); b.chunkMap(b.lookup('/big')); }, UNSUPPORTED, { message: /block-map/ });
  assertOndine(() => { const b = withIu(0x20 | 29); b.chunkMap(b.lookup('/big')); }, CORRUPT, { message: /chunk bits 41/ });
  const plain = Buffer.from(image);
  wr16(plain, big.offset, 1 | (DataLayout.FlatPlain << 1));
  const bp = parseBootstrap(plain);
  assertOndine(() => bp.chunkMap(bp.lookup('/big')), UNSUPPORTED);
  const huge = Buffer.from(image);
  wr64(huge, big.offset + 8, BigInt(2 ** 52));
  const bh = parseBootstrap(huge);
  assertOndine(() => bh.chunkMap(bh.lookup('/big')), CORRUPT, { message: /chunk indexes of inode/ });
});

test('checksum: a sealed image verifies; a flipped byte in block 0 is refused unless verification is off', () => {
  const { image } = buildImage(richTree(), { seal: true });
  const b = parseBootstrap(image);
  assert.equal(b.sb.checksum, superblockChecksum(image));
  const flipped = Buffer.from(image);
  flipped[3000] ^= 1;
  assertOndine(() => parseBootstrap(flipped), CORRUPT, { structure: 'EROFS superblock', offset: SB + 4 });
  parseBootstrap(flipped, { verifyChecksum: false });
  const outside = Buffer.from(image);
  outside[5000] ^= 1; // block 1 is not covered
  parseBootstrap(outside);
});

test('superblock-level refusals', () => {
  const { image } = buildImage(richTree());
  const mut = (f: (b: Buffer) => void): Buffer => { const b = Buffer.from(image); f(b); return b; };
  assertOndine(() => parseBootstrap(mut((b) => wr32(b, SB + 80, 0xc | 0x2))), UNSUPPORTED, { message: /0x2/ });
  assertOndine(() => parseBootstrap(mut((b) => wr32(b, SB + 80, 0x4))), CORRUPT, { offset: SB + 86, message: /device table/ });
  assertOndine(() => parseBootstrap(mut((b) => wr32(b, SB + 40, 1000))), CORRUPT, { offset: SB + 40 });
  assertOndine(() => parseBootstrap(mut((b) => wr16(b, SB + 86, 0xffff))), CORRUPT, { structure: 'EROFS device table' });
  assertOndine(() => parseBootstrap(mut((b) => wr32(b, 1152 + 16, 300))), CORRUPT, { offset: 1152 + 16 });
  assertOndine(() => parseBootstrap(mut((b) => wr64(b, 1152 + 8, 1n << 40n))), CORRUPT, { structure: 'RAFS blob table' });
  assertOndine(() => parseBootstrap(mut((b) => wr64(b, 1152 + 32, 81n))), CORRUPT, { offset: 1152 + 32 });
  assertOndine(() => parseBootstrap(mut((b) => wr32(b, 4096 + 64, 1))), CORRUPT, { structure: 'RAFS blob table', offset: 4096 + 64 });
  assertOndine(() => parseBootstrap(mut((b) => wr16(b, SB + 14, 0xffff))), CORRUPT, { structure: 'EROFS inode' });
  assertOndine(() => parseBootstrap(image.subarray(0, 4095)), CORRUPT);
  assertOndine(() => parseBootstrap(image.subarray(0, 1100)), CORRUPT, { structure: 'EROFS superblock' });
  // Without the RAFS compat bit the image is plain EROFS: no blob or chunk tables.
  const plain = parseBootstrap(mut((b) => wr32(b, SB + 8, 0)));
  assert.equal(plain.isRafs, false);
  assert.deepEqual(plain.blobs, []);
});

test('inode-level refusals: bad mode, shared xattrs, compressed directories, huge or crossing inline data', () => {
  const { image, nodes } = buildImage(richTree());
  const mut = (f: (b: Buffer) => void): Bootstrap => { const b = Buffer.from(image); f(b); return parseBootstrap(b); };
  const sub = nodes.get('/sub')!;
  assertOndine(() => mut((b) => wr16(b, sub.offset + 4, 0o000755)).lookup('/sub'), CORRUPT, { offset: sub.offset + 4, message: /bad file type/ });
  const root = nodes.get('/')!;
  // One shared xattr id and nothing else: i_xattr_icount 2 (12-byte header + one 4-byte id).
  assertOndine(() => mut((b) => { wr16(b, root.offset + 2, 2); b[root.offset + 64 + 4] = 1; }), UNSUPPORTED, { message: /shared xattrs/ });
  assertOndine(() => mut((b) => wr16(b, sub.offset, DataLayout.CompressedFull << 1)).lookup('/sub'), UNSUPPORTED, { message: /compressed directory/ });
  const link = nodes.get('/link')!;
  {
    const b = mut((x) => wr32(x, link.offset + 8, 5000));
    assertOndine(() => b.readSymlink(b.lookup('/link')), CORRUPT, { message: /symlink of 5000 bytes/ });
  }
  {
    const b = mut((x) => wr32(x, sub.offset + 8, 4000));
    assertOndine(() => b.readDir(b.lookup('/sub')), CORRUPT, { message: /crosses a block boundary/ });
  }
  const many = nodes.get('/many')!;
  {
    const b = mut((x) => wr32(x, many.offset + 8, 2 ** 31));
    assertOndine(() => b.readDir(b.lookup('/many')), CORRUPT, { message: /too large/ });
  }
  {
    const b = mut((x) => wr32(x, many.offset + 16, NULL_ADDR));
    assertOndine(() => b.readDir(b.lookup('/many')), CORRUPT, { message: /null/ });
  }
  {
    const b = mut((x) => wr32(x, many.offset + 16, 100));
    assertOndine(() => b.readDir(b.lookup('/many')), CORRUPT, { structure: 'EROFS inode data' });
  }
});

test('walk refuses a directory loop', () => {
  const tree = richTree();
  (tree.children.find((c) => c.name === 'sub') as Extract<Spec, { kind: 'dir' }>).children.push({ kind: 'link', name: 'up', to: '/' });
  const b = parseBootstrap(buildImage(tree).image);
  assertOndine(() => walkAll(b), CORRUPT, { structure: 'EROFS directory', message: /directory loop at "\/sub\/up"/ });
  // A directory reachable under two names is refused as well (directories have no hard links).
  const twice = richTree();
  twice.children.push({ kind: 'link', name: 'zz-again', to: '/sub' });
  assertOndine(() => walkAll(parseBootstrap(buildImage(twice).image)), CORRUPT, { message: /loop at "\/zz-again"/ });
});

test('walk refuses entries whose type disagrees with the inode, and names containing "/"', () => {
  const tree = richTree();
  tree.children.push({ kind: 'link', name: 'liar', to: '/big', fileType: FileType.Directory });
  assertOndine(() => walkAll(parseBootstrap(buildImage(tree).image)), CORRUPT, { message: /"liar" type 2 disagrees/ });
  const slash = richTree();
  slash.children.push({ kind: 'link', name: 'a/b', to: '/big' });
  assertOndine(() => walkAll(parseBootstrap(buildImage(slash).image)), CORRUPT, { message: /contains '\/'/ });
});

test('lookup and walk agree on every path', () => {
  const b = parseBootstrap(buildImage(richTree()).image);
  for (const { path, ino } of b.walk()) {
    assert.equal(b.lookup(path).nid, ino.nid, path);
    const t = ino.mode & S_IFMT;
    if (t === S_IFDIR) assert.ok(b.readDir(ino).length >= 2);
    if (t === S_IFREG) assert.equal(b.chunkMap(ino).reduce((s, m) => s + m.length, 0), ino.size);
  }
  assert.equal(rd16(Buffer.from(b.buf), SB + 14), b.sb.rootNid);
});

test('readDir errors name the directory block\'s absolute offset (plain blocks at i_u, inline tail after the inode)', () => {
  const { image, nodes } = buildImage(richTree());
  const b0 = parseBootstrap(image);
  const many = b0.lookup('/many');
  const plainBlock1 = many.iu * 4096 + 4096;
  const bad = Buffer.from(image);
  wr16(bad, plainBlock1 + 8, 7); // first nameoff of the second block
  const b = parseBootstrap(bad);
  assertOndine(() => b.readDir(b.lookup('/many')), CORRUPT, { structure: 'EROFS directory block', offset: plainBlock1 + 8 });
  const sub = b0.lookup('/sub');
  const bad2 = Buffer.from(image);
  bad2[sub.payloadOffset + 10] = 9; // file type of the inline block's first entry
  const b2 = parseBootstrap(bad2);
  assertOndine(() => b2.readDir(b2.lookup('/sub')), CORRUPT, { structure: 'EROFS directory block', offset: sub.payloadOffset + 10 });
  assert.ok(nodes.get('/sub')!.offset < sub.payloadOffset);
});

test('regression: directories that share data blocks are refused before the walk turns quadratic', () => {
  // Found while reviewing the walk: N directories pointing at one big data area are each listed
  // in full, so a small hostile image costs N x its size. Real images never share directory data.
  const tree = richTree();
  for (let i = 0; i < 8; i++) tree.children.push({ kind: 'dir', name: `d${i}`, children: [{ kind: 'fifo', name: 'f' }] });
  const { image, nodes } = buildImage(tree);
  const b0 = parseBootstrap(image);
  const many = b0.lookup('/many');
  const hostile = Buffer.from(image);
  for (let i = 0; i < 8; i++) {
    const d = nodes.get(`/d${i}`)!;
    wr16(hostile, d.offset, DataLayout.FlatPlain << 1); // compact, plain: its data is at i_u
    wr32(hostile, d.offset + 8, many.size);
    wr32(hostile, d.offset + 16, many.iu);
  }
  assert.ok(9 * many.size > hostile.length, 'the shared data adds up to more than the image');
  assertOndine(() => walkAll(parseBootstrap(hostile)), CORRUPT, { structure: 'EROFS directory', message: /data overlaps/ });
  assert.equal(walkAll(b0).size, 1 + 16 + 2 + 120 + 8, 'the honest image walks');
});

test('regression: readFlat checks every bound before allocating a hostile size', () => {
  const { image, nodes } = buildImage(richTree());
  const many = nodes.get('/many')!;
  const hostile = Buffer.from(image);
  wr32(hostile, many.offset + 8, 60 << 20); // 60 MiB, under the 64 MiB cap, far past the image
  const b = parseBootstrap(hostile);
  const ino = b.lookup('/many');
  const realAlloc = Buffer.alloc;
  const sizes: number[] = [];
  Buffer.alloc = ((size: number, ...rest: unknown[]) => { sizes.push(size); return (realAlloc as (...a: unknown[]) => Buffer)(size, ...rest); }) as typeof Buffer.alloc;
  try {
    assertOndine(() => b.readFlat(ino), CORRUPT, { structure: 'EROFS inode data' });
  } finally {
    Buffer.alloc = realAlloc;
  }
  assert.ok(sizes.every((s) => s < 1 << 20), `no large allocation (saw ${sizes.join(', ')})`);
});
