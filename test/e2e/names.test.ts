// Issue 12, names, on the host (fanotify path, real mounts): a hostile identifier in a
// bootstrap's blob table or device table, or in a management API field, is refused at mount or
// registration time with ONDINE_ERR_BAD_IDENTIFIER, before anything is made; a symlink planted
// in the cache directory is refused with ONDINE_ERR_UNSAFE_PATH and its target stays as it
// was. After each: nothing new outside the cache directory, no mount left, the daemon answers,
// and an honest image still mounts and reads right.
import assert from 'node:assert/strict';
import { cpSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { OndineError } from '../../src/errors.js';
import { Cleanup, cliOk, mountsUnder, requireKernelFs, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { setBlobId } from '../helpers/blob-ids.js';

const MiB = 1 << 20;

/** Every path under `dir` (lstat: links not followed), except below `skip`. */
function tree(dir: string, skip: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (skip.includes(p)) continue;
      out.push(p);
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe('names: hostile ids are refused before they name a file or an option', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let d: FanotifyDaemon;
  let img: string;
  let blobId: string;
  let cacheDir: string;
  const victim = () => join(work, 'victim');
  const VICTIM = Buffer.from('outside the cache directory: must never change\n');
  let data: Buffer;

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'names');
    const src = join(work, 'src');
    mkdirSync(src);
    data = pseudoRandomBytes(12, 3 * MiB + 123);
    writeFileSync(join(src, 'data.bin'), data);
    img = join(work, 'img');
    await cliOk(['build', src, '-o', img, '--chunk-size', '1M']);
    blobId = readdirSync(join(img, 'blobs'))[0]!;
    writeFileSync(victim(), VICTIM);
    d = await startFanotifyDaemon(suite, work);
    cacheDir = d.cacheDir;
  });

  /** What must hold after every refusal. */
  async function unharmed(outsideBefore: readonly string[], mnt: string, what: string): Promise<void> {
    assert.ok(readFileSync(victim()).equals(VICTIM), `${what}: the victim file outside the cache directory is untouched`);
    assert.deepEqual(tree(work, [cacheDir]), outsideBefore, `${what}: nothing was created or removed outside the cache directory`);
    assert.deepEqual(mountsUnder(mnt), [], `${what}: nothing is mounted at ${mnt}`);
    const s = await d.status();
    assert.ok(!s.mounts.some((m) => m.mountpoint === mnt), `${what}: the daemon lists no mount at ${mnt}`);
    assert.ok(d.alive, `${what}: the daemon is alive`);
  }

  /** An image dir whose bootstrap has blob 1's id (and tag, unless `only`) set to `id`; its blobs are the honest ones. */
  function craft(name: string, id: string, only?: 'tag' | 'blob'): string {
    const dir = join(work, 'crafted', name);
    mkdirSync(dir, { recursive: true });
    cpSync(join(img, 'blobs'), join(dir, 'blobs'), { recursive: true });
    writeFileSync(join(dir, 'bootstrap'), setBlobId(readFileSync(join(img, 'bootstrap')), 0, id, only ? { only } : {}));
    return dir;
  }

  test('a bootstrap whose blob id or device tag is hostile is refused at mount, before any file is made', async () => {
    const cases: Array<{ name: string; id: string; only?: 'tag' | 'blob' }> = [
      { name: 'dotdot-victim', id: '../../../victim' },
      { name: 'dotdot-new', id: '../../../created-by-the-daemon' },
      { name: 'absolute', id: join(work, 'absolute-target') },
      { name: 'slash', id: '/' },
      { name: 'dotdot', id: '..' },
      { name: 'dot', id: '.' },
      { name: 'comma', id: `${'a'.repeat(40)},device=/etc/passwd` },
      { name: 'nul', id: 'ab\0/../../../victim' },
      { name: 'over-long', id: 'z'.repeat(64) },
      { name: 'upper-hex', id: blobId.toUpperCase() },
      { name: 'tag-comma', id: 'a,b', only: 'tag' },
      { name: 'tag-dotdot', id: '../../x', only: 'tag' },
      { name: 'blob-only-traversal', id: '../../../victim', only: 'blob' },
    ];
    for (const c of cases) {
      const dir = craft(c.name, c.id, c.only);
      const mnt = join(work, 'mnt', c.name);
      mkdirSync(mnt, { recursive: true });
      const outside = tree(work, [cacheDir]);
      const cacheBefore = tree(cacheDir, []);
      await assert.rejects(d.client.mount({ bootstrap: join(dir, 'bootstrap'), mountpoint: mnt }), (err: unknown) => {
        assert.ok(err instanceof OndineError, String(err));
        assert.equal(err.code, 'ONDINE_ERR_BAD_IDENTIFIER', `${c.name}: ${err.message}`);
        assert.match(err.message, c.only === 'tag' ? /device 1 of bootstrap .*: its tag/ : /blob 1 of bootstrap .*: its id/, c.name);
        assert.ok(!err.message.includes('\n') && err.message.length < 400, `${c.name}: one short line`);
        return true;
      });
      assert.deepEqual(tree(cacheDir, []).filter((p) => !cacheBefore.includes(p) && !p.includes('/bootstraps')), [], `${c.name}: no blob file was made`);
      await unharmed(outside, mnt, c.name);
    }
    assert.equal(statSync(victim()).size, VICTIM.length);
  });

  test('the CLI says so in one line, exit code 2', async () => {
    const dir = craft('cli', '../../../victim');
    const mnt = join(work, 'mnt', 'cli');
    mkdirSync(mnt, { recursive: true });
    const r = await d.cli(['mount', dir, mnt, '--mode', 'fanotify', '--cache-dir', cacheDir]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0]!, /blob 1 of bootstrap .*its id "\.\.\/\.\.\/\.\.\/victim" must be 64 lowercase hex characters/);
    assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  });

  test('a symlink planted in the cache directory is refused; the file it points to stays untouched', async () => {
    const mnt = join(work, 'mnt', 'planted');
    mkdirSync(mnt, { recursive: true });
    const blobs = join(cacheDir, 'ondine', 'blobs');
    mkdirSync(blobs, { recursive: true });
    // A target of exactly the cache file's size: the old code would have used it as the cache.
    const target = join(work, 'planted-target');
    const size = Math.ceil(statSync(join(img, 'blobs', blobId)).size / 4096) * 4096;
    const expected = readFileSync(join(img, 'bootstrap')); // any recognisable content
    const content = Buffer.alloc(size);
    expected.copy(content, 0, 0, Math.min(size, expected.length));
    writeFileSync(target, content);
    const link = join(blobs, blobId);
    rmSync(link, { force: true });
    symlinkSync(target, link);
    const outside = tree(work, [cacheDir]);
    await assert.rejects(d.client.mount({ bootstrap: join(img, 'bootstrap'), mountpoint: mnt }), (err: unknown) => {
      assert.ok(err instanceof OndineError, String(err));
      assert.equal(err.code, 'ONDINE_ERR_UNSAFE_PATH', err.message);
      assert.ok(err.message.includes(link), err.message);
      return true;
    });
    assert.ok(readFileSync(target).equals(content), 'the symlink target is byte for byte what it was');
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link itself is left for the admin to look at');
    await unharmed(outside, mnt, 'planted symlink');

    // Once removed, the same image mounts, and reads right through the events.
    unlinkSync(link);
    await d.client.mount({ bootstrap: join(img, 'bootstrap'), mountpoint: mnt });
    try {
      const r = await readInChild(work, [{ path: join(mnt, 'data.bin') }]);
      assert.equal(r.hung, false);
      assert.equal(r.outcomes[0]?.result, 'ok');
      assert.equal(r.outcomes[0]?.sha, sha256(data));
      const s = await d.status();
      const m = s.mounts.find((x) => x.mountpoint === mnt)!;
      assert.equal(m.blobs[0]!.cacheFile, link, 'the cache file is a plain file in the cache directory again');
      assert.ok(lstatSync(link).isFile());
    } finally {
      await d.client.umount(mnt);
    }
    assert.ok(readFileSync(target).equals(content), 'still untouched after a mount and a read');
  });

  test('API fields: fsid, domain and device tags outside the grammar are refused before use', async () => {
    const hostile = ['../x', '/etc', '..', '.', 'a,b', 'a=b', 'a\0b', 'a/b', 'x'.repeat(65), 'y'.repeat(500_000), ''];
    const mnt = join(work, 'mnt', 'api');
    mkdirSync(mnt, { recursive: true });
    const outside = tree(work, [cacheDir]);
    const imagesBefore = await d.client.images();
    for (const v of hostile) {
      const what = JSON.stringify(v.slice(0, 20));
      for (const spec of [
        { fsid: v, bootstrap: join(img, 'bootstrap') },
        { fsid: 'ok-fsid', domain: v, bootstrap: join(img, 'bootstrap') },
        { fsid: 'ok-fsid', bootstrap: join(img, 'bootstrap'), devices: { [v]: join(img, 'bootstrap') } },
      ]) {
        await assert.rejects(d.client.register(spec), (err: unknown) => {
          assert.ok(err instanceof OndineError, String(err));
          // An empty fsid is caught by the request's shape check before the grammar.
          assert.ok(err.code === 'ONDINE_ERR_BAD_IDENTIFIER' || (v === '' && err.code === 'ONDINE_ERR_INVALID'), `${what}: ${err.code} ${err.message}`);
          assert.ok(err.message.length < 400, `${what}: the value is not echoed whole (${err.message.length} characters)`);
          return true;
        });
      }
      await assert.rejects(d.client.mount({ bootstrap: join(img, 'bootstrap'), mountpoint: mnt, devices: { [v]: join(img, 'bootstrap') } }), (err: unknown) => {
        assert.ok(err instanceof OndineError, String(err));
        assert.equal(err.code, 'ONDINE_ERR_BAD_IDENTIFIER', `${what}: ${err.message}`);
        return true;
      });
      await unharmed(outside, mnt, `API ${what}`);
    }
    assert.deepEqual(await d.client.images(), imagesBefore, 'nothing was registered');
    // The grammar is not a blanket refusal: a good name registers.
    const info = await d.client.register({ fsid: 'good.fsid-1', domain: 'dom_1', bootstrap: join(img, 'bootstrap') });
    assert.equal(info.fsid, 'good.fsid-1');
    await d.client.unregister('good.fsid-1', 'dom_1');
  });
});
