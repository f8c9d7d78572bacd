// The wrappers every remote source gets (source-spec.ts; retries are the client's, tested in
// test/registry/retry-policy.test.ts): failures remembered so a stream of READs is one request, counting outside the source; the registry source asks for `sha256:<id>` and
// describes itself without credentials; and a chunk that fails to verify from a source that
// may corrupt in transit is fetched once more, then reported to the source as failed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DigestMismatchError, NotFoundError, OndineError } from '../../src/errors.js';
import type { BlobSource } from '../../src/storage/blob-source.js';
import { CountingSource } from '../../src/storage/counting-source.js';
import { FailureMemoSource } from '../../src/storage/failure-memo-source.js';
import { RegistryBlobSource, type RangeClient } from '../../src/storage/registry-blob-source.js';
import { ChunkReader } from '../../src/storage/chunk-reader.js';
import { loadBlobChunkMap } from '../../src/storage/blob-chunk-map.js';
import { LocalDirSource } from '../../src/storage/local-dir-source.js';
import { buildImage, KiB, randomBytes, ScriptedSource, type BuiltImage } from './support.js';

const ID = 'a'.repeat(64);

class Flaky extends OndineError {
  constructor(readonly retryable: boolean, readonly retryAfterMs?: number) {
    super('ONDINE_ERR_REGISTRY', undefined, retryable ? 'connection reset' : 'refused');
  }
}
const isRetryable = (e: unknown) => e instanceof Flaky && e.retryable;

/** A source failing with the scripted errors first, then serving zeros. */
class Script implements BlobSource {
  readonly description = 'script';
  calls = 0;
  constructor(readonly errors: Error[]) {}
  async read(_id: string, _o: number, length: number): Promise<Buffer> {
    this.calls++;
    const e = this.errors.shift();
    if (e) throw e;
    return Buffer.alloc(length);
  }
  async size(): Promise<number> {
    return 1;
  }
}

test('memo: a missing blob is one request for every range until the memo expires', async () => {
  let now = 1000;
  const s = new Script([new NotFoundError('blob x'), new NotFoundError('blob x')]);
  const m = new FailureMemoSource(s, { isRetryable, now: () => now });
  for (let i = 0; i < 20; i++) await assert.rejects(m.read(ID, i * 100, 100), { code: 'ONDINE_ERR_NOT_FOUND' });
  assert.equal(s.calls, 1);
  await assert.rejects(m.read('b'.repeat(64), 0, 1), { code: 'ONDINE_ERR_NOT_FOUND' });
  assert.equal(s.calls, 2, 'another blob is asked for');
  now += 31_000;
  assert.equal((await m.read(ID, 0, 5)).length, 5, 'after 30 s the source is asked again');
});

test('memo: other failures are remembered by range; transient ones briefly', async () => {
  let now = 0;
  const s = new Script([new Flaky(false)]);
  const m = new FailureMemoSource(s, { isRetryable, now: () => now });
  await assert.rejects(m.read(ID, 0, 100));
  await assert.rejects(m.read(ID, 0, 100));
  assert.equal(s.calls, 1);
  assert.equal((await m.read(ID, 100, 100)).length, 100, 'another range is fetched');
  now += 30_001;
  s.errors.push(new Flaky(true));
  await assert.rejects(m.read(ID, 0, 100), /reset/);
  await assert.rejects(m.read(ID, 0, 100), /reset/);
  assert.equal(s.calls, 3);
  now += 2_001;
  assert.equal((await m.read(ID, 0, 100)).length, 100);
  m.failed(ID, 5, 6, new DigestMismatchError(ID, 1, '00', '11'));
  await assert.rejects(m.read(ID, 5, 6), { code: 'ONDINE_ERR_DIGEST_MISMATCH' });
  assert.equal(s.calls, 4, 'a range that failed verification is not fetched again');
});

test('counting: bytes and requests per blob, failures not counted', async () => {
  const c = new CountingSource(new Script([new Flaky(false)]));
  await assert.rejects(c.read(ID, 0, 7));
  await c.read(ID, 0, 7);
  await c.read(ID, 7, 3);
  assert.deepEqual(c.counters.toJSON(), { [ID]: { bytes: 10, requests: 2 } });
});

test('registry source: sha256:<id> digests, sizes from the manifest, no credentials in its description', async () => {
  const calls: string[] = [];
  const client: RangeClient = {
    async readRange(reg, repo, digest, offset, length) { calls.push(`${reg} ${repo} ${digest} ${offset}+${length}`); return Buffer.alloc(length); },
    async blobSize(_r, _p, digest) { calls.push(`HEAD ${digest}`); return 42; },
  };
  const s = new RegistryBlobSource(client, '127.0.0.1:5000', 'team/app', { sizes: new Map([[ID, 7]]) });
  assert.equal(s.description, 'registry 127.0.0.1:5000/team/app');
  assert.equal((await s.read(ID, 10, 20)).length, 20);
  assert.equal(await s.size(ID), 7);
  assert.equal(await s.size('b'.repeat(64)), 42);
  assert.equal(await s.size('b'.repeat(64)), 42);
  assert.deepEqual(calls, [`127.0.0.1:5000 team/app sha256:${ID} 10+20`, `HEAD sha256:${'b'.repeat(64)}`]);
  await assert.rejects(s.read('../etc', 0, 1), { code: 'ONDINE_ERR_INVALID' });
});

// ---- refetch of corrupt bytes ----

let img: BuiltImage;
before(async () => { img = await buildImage({ 'a.bin': randomBytes(300 * KiB, 3) }, { chunkSize: 64 * KiB, compressor: 'none' }); });
after(() => img?.cleanup());

async function scripted(refetch: boolean) {
  const src = new LocalDirSource(img.blobDir);
  const map = await loadBlobChunkMap(src, img.bootstrap.blobs[0]!, img.bootstrap.chunks);
  const s = new ScriptedSource(src) as ScriptedSource & { refetchCorrupt: boolean; failed?: BlobSource['failed'] };
  s.refetchCorrupt = refetch;
  return { src, map, s };
}

test('refetch: bytes corrupted once in transit are read again and delivered verified', async () => {
  const { src, map, s } = await scripted(true);
  try {
    const victim = map.chunks[1]!;
    let n = 0;
    s.corrupt = (r, bytes) => { if (n++ === 0) bytes[victim.compressedOffset - r.offset + 5]! ^= 1; };
    const got: number[] = [];
    await new ChunkReader(s, map).fetch(map.chunks, ({ chunk }) => { got.push(chunk.index); });
    assert.equal(got.length, map.chunks.length);
    assert.equal(s.log.length, 2, 'one read, one refetch');
  } finally {
    await src.close();
  }
});

test('refetch: corruption that persists fails the chunk and is reported to the source; none without refetchCorrupt', async () => {
  const { src, map, s } = await scripted(true);
  try {
    const victim = map.chunks[2]!;
    s.corrupt = (r, bytes) => { bytes[victim.compressedOffset - r.offset]! ^= 1; };
    const reported: Array<[number, number]> = [];
    s.failed = (_id, o, l) => { reported.push([o, l]); };
    const errs: number[] = [];
    await new ChunkReader(s, map).fetch(map.chunks, () => undefined, { onError: (c, e) => { assert.ok(e instanceof DigestMismatchError); errs.push(c.index); } });
    assert.deepEqual(errs, [victim.index]);
    assert.equal(s.log.length, 2);
    assert.deepEqual(reported, [[victim.compressedOffset, victim.compressedSize]]);
    const local = await scripted(false);
    local.s.corrupt = s.corrupt;
    await new ChunkReader(local.s, local.map).fetch(local.map.chunks, () => undefined, { onError: () => undefined });
    assert.equal(local.s.log.length, 1, 'a local file is not read twice');
    await local.src.close();
  } finally {
    await src.close();
  }
});
