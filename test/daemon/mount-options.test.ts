// The fscache mount's option string (fsid=…,domain_id=…,device=…) is built only from names
// of the identifier grammar: a comma or an `=` could add options of the caller's choosing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mountFscache } from '../../src/kernel/mounts.js';

test('mountFscache refuses fsid, domain and device tags outside the grammar before calling mount(2)', async () => {
  const mnt = '/nonexistent-ondine-mountpoint';
  for (const bad of ['a,b', 'x,device=/etc/passwd', 'a=b', '..', '/etc', 'x'.repeat(65), 'a\0b', '']) {
    await assert.rejects(mountFscache(mnt, bad), { code: 'ONDINE_ERR_BAD_IDENTIFIER' }, `fsid ${JSON.stringify(bad)}`);
    if (bad) await assert.rejects(mountFscache(mnt, 'good', bad), { code: 'ONDINE_ERR_BAD_IDENTIFIER' }, `domain ${JSON.stringify(bad)}`);
    await assert.rejects(mountFscache(mnt, 'good', undefined, ['tag', bad]), { code: 'ONDINE_ERR_BAD_IDENTIFIER' }, `device ${JSON.stringify(bad)}`);
  }
  // Good names get as far as the kernel (which has no such mount point here).
  await assert.rejects(mountFscache(mnt, 'good', 'dom', ['tag']), { code: 'ONDINE_ERR_MOUNT' });
});
