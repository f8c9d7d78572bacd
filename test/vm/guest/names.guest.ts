// Issue 12, names, on the cachefiles path (real 6.1 kernel): hostile identifiers are refused
// where they enter: a bootstrap whose blob id or device tag is hostile at registration, API
// fields (fsid, domain, device tags) at registration, and a cachefiles OPEN whose volume or
// cookie key is outside the name grammar (an fsid given straight to mount(2)) by the front end.
// After each the daemon keeps serving an honest image, and the file outside stays untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { OndineError } from '../../../src/errors.js';
import { mountAsync, MS_RDONLY, NativeError } from '../../../src/native/index.js';
import { setBlobId } from '../../helpers/blob-ids.js';
import { hashTree, LOG_DIR, manifest, mountImage, startDaemon, umountImage } from './harness.js';

const VICTIM = '/run/names-victim';
const VICTIM_BYTES = Buffer.from('outside the cache: must never change\n');

async function logOf(prefix: string): Promise<string> {
  const names = (await readdir(LOG_DIR)).filter((n) => n.startsWith(prefix));
  return (await Promise.all(names.map((n) => readFile(join(LOG_DIR, n), 'utf8')))).join('\n');
}

test('cachefiles: hostile blob ids, device tags and API names are refused at registration; the daemon keeps serving', async () => {
  const m = await manifest();
  await writeFile(VICTIM, VICTIM_BYTES);
  const d = await startDaemon('names-register');
  try {
    await mountImage(d, m.small.dir, '/run/mnt-names-ok', { fsid: 'names-ok' });
    const before = await d.client.images();
    const honest = await readFile(join(m.small.dir, 'bootstrap'));
    const cases: Array<{ id: string; only?: 'tag' | 'blob'; field: RegExp }> = [
      { id: '../../../../../run/names-victim', field: /blob 1 of bootstrap .*: its id/ },
      { id: '/run/names-victim', field: /blob 1 of bootstrap .*: its id/ },
      { id: '..', field: /blob 1 of bootstrap .*: its id/ },
      { id: `${'a'.repeat(30)},device=/run/names-victim`, field: /blob 1 of bootstrap .*: its id/ },
      { id: 'ab\0../x', field: /blob 1 of bootstrap .*: its id/ },
      { id: 'q'.repeat(64), field: /blob 1 of bootstrap .*: its id/ },
      { id: 'a,b', only: 'tag', field: /device 1 of bootstrap .*: its tag/ },
      { id: '../x', only: 'tag', field: /device 1 of bootstrap .*: its tag/ },
    ];
    for (const [i, c] of cases.entries()) {
      const dir = `/run/names-crafted-${i}`;
      await mkdir(dir, { recursive: true });
      await cp(join(m.small.dir, 'blobs'), join(dir, 'blobs'), { recursive: true });
      await writeFile(join(dir, 'bootstrap'), setBlobId(Buffer.from(honest), 0, c.id, c.only ? { only: c.only } : {}));
      await assert.rejects(d.client.register({ fsid: `names-bad-${i}`, bootstrap: join(dir, 'bootstrap') }), (err: unknown) => {
        assert.ok(err instanceof OndineError, String(err));
        assert.equal(err.code, 'ONDINE_ERR_BAD_IDENTIFIER', `${JSON.stringify(c.id)}: ${err.message}`);
        assert.match(err.message, c.field);
        return true;
      });
    }
    for (const v of ['../x', '/run', '..', '.', 'a,b', 'a\0b', 'x'.repeat(65), 'y'.repeat(200_000)]) {
      for (const spec of [
        { fsid: v, bootstrap: join(m.small.dir, 'bootstrap') },
        { fsid: 'names-api', domain: v, bootstrap: join(m.small.dir, 'bootstrap') },
        { fsid: 'names-api', bootstrap: join(m.small.dir, 'bootstrap'), devices: { [v]: join(m.small.dir, 'bootstrap') } },
      ]) {
        await assert.rejects(d.client.register(spec), (err: unknown) => {
          assert.ok(err instanceof OndineError, String(err));
          assert.equal(err.code, 'ONDINE_ERR_BAD_IDENTIFIER', err.message);
          assert.ok(err.message.length < 400, 'the value is not echoed whole');
          return true;
        });
      }
    }
    assert.deepEqual(await d.client.images(), before, 'nothing was registered');
    assert.ok((await readFile(VICTIM)).equals(VICTIM_BYTES), 'the file outside is untouched');
    assert.equal(d.proc.exitCode, null, 'the daemon is running');
    assert.deepEqual(await hashTree('/run/mnt-names-ok'), m.small.files, 'the honest mount still reads right');
    await umountImage(d, '/run/mnt-names-ok');
  } finally {
    await d.stop();
  }
});

test('cachefiles: an OPEN whose fsid (volume and cookie key) is outside the grammar is refused by the front end', async () => {
  const m = await manifest();
  const d = await startDaemon('names-kernel');
  try {
    await mountImage(d, m.small.dir, '/run/mnt-names-k', { fsid: 'names-k' });
    const { mountFscache } = await import('../../../src/kernel/mounts.js');
    const mnt = '/run/mnt-names-bad';
    await mkdir(mnt, { recursive: true });
    const hostile = ['..', '../../names-victim', 'x'.repeat(65), 'a:b'];
    for (const fsid of hostile) {
      // Ondine's own mount refuses the option string before the kernel sees it ...
      await assert.rejects(mountFscache(mnt, fsid), { code: 'ONDINE_ERR_BAD_IDENTIFIER' });
      // ... and a mount made by anything else reaches the front end, which refuses the keys.
      await assert.rejects(mountAsync('none', mnt, 'erofs', MS_RDONLY, `fsid=${fsid}`), (err: unknown) => {
        assert.ok(err instanceof NativeError, `${fsid}: ${String(err)}`);
        return true;
      });
    }
    const log = await logOf('names-kernel-');
    const refusals = log.split('\n').filter((l) => l.includes('outside the name grammar')).length;
    assert.ok(refusals >= 1, `the front end refused the hostile keys itself (${refusals} refusals logged)`);
    assert.equal(d.proc.exitCode, null, 'the daemon is running');
    assert.deepEqual(await hashTree('/run/mnt-names-k'), m.small.files);
    await umountImage(d, '/run/mnt-names-k');
  } finally {
    await d.stop();
  }
});
