// The e2e oracle's own test: the tree comparator must see every kind of difference the
// end-to-end tests rely on it to see. A faithful copy (cp -a) compares equal; each single
// alteration of a copy is reported, and reported as what it is.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, lchownSync, openSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cleanup, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { INVALID_UTF8, makeEveryKindTree, setMtime, writeSparse } from '../helpers/image-fixtures.js';
import { compareTrees, formatStats } from '../helpers/tree-compare.js';
import { removeXattr, setXattr } from '../helpers/xattr.js';

describe('tree comparator (the e2e oracle) notices each kind of difference', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let src: string;
  let n = 0;

  before(async () => {
    work = scratchDir(suite, 'compare');
    src = join(work, 'src');
    await makeEveryKindTree(src, { variant: 'small', seed: 11 });
    // A sparse file large enough for the data-region path (fullHashLimit below is 1 MiB).
    writeSparse(join(src, 'sparse/large'), 6 << 20, [{ offset: 2 << 20, data: Buffer.alloc(8192, 7) }]);
  });

  const copy = (): string => {
    const dst = join(work, `copy-${n++}`);
    execFileSync('cp', ['-a', src, dst]);
    return dst;
  };

  test('a cp -a copy compares equal', async (t) => {
    const { stats, diffs } = await compareTrees(src, copy(), { fullHashLimit: 1 << 20 });
    t.diagnostic(formatStats(stats));
    assert.deepEqual(diffs, []);
    assert.ok(stats.files > 300 && stats.sockets === 1 && stats.fifos === 1 && stats.chardevs === 2 && stats.blockdevs === 1);
    assert.ok(stats.xattrs >= 30 && stats.hardlinkGroups === 1 && stats.sparseFiles >= 1 && stats.holeSamples > 0);
  });

  const alterations: Array<[string, (d: string) => void, RegExp]> = [
    ['mtime off by one nanosecond', (d) => setMtime([join(d, 'times/nanoseconds')], '1700000000.123456788'), /\/times\/nanoseconds: mtime 1700000000123456789ns vs 1700000000123456788ns/],
    ['setuid bit lost', (d) => chmodSync(join(d, 'modes/setuid'), 0o755), /\/modes\/setuid: mode 04755 vs 0755/],
    ['sticky bit lost on a directory', (d) => chmodSync(join(d, 'modes/sticky-dir'), 0o777), /\/modes\/sticky-dir: mode 01777 vs 0777/],
    ['owner above 2^31 truncated', (d) => lchownSync(join(d, 'owners/huge-ids'), 2_147_483_653 % 65536, 4_000_000_000), /\/owners\/huge-ids: owner 2147483653:4000000000 vs 5:4000000000/],
    ['one byte of content', (d) => {
      const fd = openSync(join(d, 'regular/random-4097'), 'r+');
      writeSync(fd, Buffer.from([0x5a]), 0, 1, 4096);
      closeSync(fd);
    }, /\/regular\/random-4097: content differs/],
    ['xattr missing', (d) => removeXattr(join(d, 'xattrs/long-value'), 'user.long'), /\/xattrs\/long-value: missing xattr user\.long/],
    ['xattr value changed', (d) => setXattr(join(d, 'xattrs/trusted'), 'trusted.ondine.test', Buffer.from('other')), /\/xattrs\/trusted: xattr trusted\.ondine\.test differs/],
    ['security.capability dropped', (d) => removeXattr(join(d, 'xattrs/capability'), 'security.capability'), /missing xattr security\.capability/],
    ['symlink target', (d) => {
      unlinkSync(join(d, 'links/long-target'));
      symlinkSync('short', join(d, 'links/long-target'));
    }, /\/links\/long-target: (symlink target|size)/],
    ['device minor', (d) => {
      rmSync(join(d, 'dev/big-numbers'));
      execFileSync('mknod', [join(d, 'dev/big-numbers'), 'c', '259', '70001']);
    }, /\/dev\/big-numbers: device 259:70000 vs 259:70001/],
    ['hardlink broken into a copy', (d) => {
      copyFileSync(join(d, 'hard/other/two'), join(d, 'hard/other/two.tmp'));
      renameSync(join(d, 'hard/other/two.tmp'), join(d, 'hard/other/two'));
    }, /\/hard\/other\/two: shares its inode with \[\/hard\/one, \/hard\/other\/two, \/regular\/three\] vs \[\/hard\/other\/two\]/],
    ['data inside a large sparse file', (d) => {
      const fd = openSync(join(d, 'sparse/large'), 'r+');
      writeSync(fd, Buffer.from([1]), 0, 1, (2 << 20) + 100);
      closeSync(fd);
    }, /\/sparse\/large: data region at 2097152\+8192 differs/],
    ['bytes written into a hole of a large sparse file', (d) => {
      const fd = openSync(join(d, 'sparse/large'), 'r+');
      writeSync(fd, Buffer.from([1]), 0, 1, (6 << 20) - 10);
      closeSync(fd);
    }, /\/sparse\/large: hole at \d+\.\.6291456 reads non-zero bytes/],
    ['size of a sparse file', (d) => writeSparse(join(d, 'sparse/leading-hole'), (2 << 20) + 4999, []), /\/sparse\/leading-hole: size 2102152 vs 2102151/],
    ['an extra entry', (d) => writeFileSync(join(d, 'few/zz-extra'), ''), /\/few\/zz-extra: unexpected entry/],
    ['a missing entry with an invalid-UTF-8 name', (d) => rmSync(Buffer.concat([Buffer.from(join(d, 'names') + '/'), INVALID_UTF8]) as unknown as string), /\/names\/bad\\xff\\xfe\\x80-\\xc3\(: missing/],
    ['a fifo turned into a file', (d) => {
      rmSync(join(d, 'special/fifo'));
      writeFileSync(join(d, 'special/fifo'), '');
    }, /\/special\/fifo: type fifo vs file/],
  ];

  for (const [what, alter, want] of alterations) {
    test(what, async () => {
      const d = copy();
      alter(d);
      const { diffs } = await compareTrees(src, d, { fullHashLimit: 1 << 20 });
      assert.ok(diffs.some((x) => want.test(x)), `expected a difference matching ${want}, got:\n  ${diffs.join('\n  ')}`);
    });
  }
});
