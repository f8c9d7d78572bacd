// CacheDir opens every cache file beneath the cache directory through fds: a symlink (to a
// file or a directory) planted anywhere on the way is refused with ONDINE_ERR_UNSAFE_PATH and
// what it points to stays untouched; names outside the grammar never reach the filesystem.
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { CacheDir, fdPath } from '../../src/storage/cache-dir.js';
import { readlinkSync } from 'node:fs';

function scratch(t: TestContext): { root: string; cache: string; outside: string } {
  const root = mkdtempSync('/var/tmp/ondine-cachedir-');
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cache = join(root, 'cache');
  const outside = join(root, 'outside');
  mkdirSync(cache);
  mkdirSync(outside);
  return { root, cache, outside };
}

const ID = 'ab'.repeat(32);
const unsafe = { code: 'ONDINE_ERR_UNSAFE_PATH' };

test('blob files: made sparse at the block-padded size, kept when right, replaced when not', (t) => {
  const { cache } = scratch(t);
  const dir = new CacheDir(cache);
  const a = dir.openBlob(ID, 5000);
  assert.equal(a.path, join(cache, 'ondine', 'blobs', ID));
  assert.equal(fstatSync(a.fd).size, 8192);
  assert.equal(readlinkSync(fdPath(a.fd)), a.path, '/proc/self/fd/<fd> is the file');
  const ino = fstatSync(a.fd).ino;
  closeSync(a.fd);
  const b = dir.openBlob(ID, 8000);
  assert.equal(fstatSync(b.fd).ino, ino, 'a file of the right size is kept');
  closeSync(b.fd);
  const c = dir.openBlob(ID, 9000);
  assert.equal(fstatSync(c.fd).size, 12288, 'a file of another size is replaced');
  closeSync(c.fd);
  assert.deepEqual(readdirSync(join(cache, 'ondine', 'blobs')), [ID], 'no temporary file left');
});

test('hostile names are refused before any file is touched', (t) => {
  const { cache, root } = scratch(t);
  const dir = new CacheDir(cache);
  for (const name of ['../../victim', '/etc/passwd', '..', '.', 'a/b', 'a\0b', 'x'.repeat(65), '']) {
    assert.throws(() => dir.openBlob(name, 4096), { code: 'ONDINE_ERR_BAD_IDENTIFIER' }, JSON.stringify(name));
  }
  assert.deepEqual(readdirSync(root).sort(), ['cache', 'outside']);
  assert.deepEqual(readdirSync(cache), [], 'not even the layout was made');
});

test('a symlink planted as a blob file, a bootstrap copy or a directory is refused; its target stays untouched', (t) => {
  const { cache, outside } = scratch(t);
  const dir = new CacheDir(cache);
  const victim = join(outside, 'victim');
  writeFileSync(victim, Buffer.alloc(8192, 7));
  const before = readFileSync(victim);
  const mtime = statSync(victim).mtimeMs;
  mkdirSync(join(cache, 'ondine', 'blobs'), { recursive: true });
  // Same size as the cache file would have: the old stat-then-use code would have taken it.
  symlinkSync(victim, join(cache, 'ondine', 'blobs', ID));
  assert.throws(() => dir.openBlob(ID, 8192), unsafe);
  assert.throws(() => dir.openBlob(ID, 100), unsafe, 'of another size: still refused, never replaced through the link');

  const boot = Buffer.from('a bootstrap');
  const name = createHash('sha256').update(boot).digest('hex');
  mkdirSync(join(cache, 'ondine', 'bootstraps'), { recursive: true });
  symlinkSync(victim, join(cache, 'ondine', 'bootstraps', name));
  assert.throws(() => dir.openBootstrap(boot), unsafe);

  // The blobs directory itself a link to a directory outside.
  const other = new CacheDir(join(cache, 'second'));
  mkdirSync(join(cache, 'second', 'ondine'), { recursive: true });
  symlinkSync(outside, join(cache, 'second', 'ondine', 'blobs'));
  assert.throws(() => other.openBlob(ID, 4096), unsafe);
  // And the `ondine` level.
  const third = new CacheDir(join(cache, 'third'));
  mkdirSync(join(cache, 'third'));
  symlinkSync(outside, join(cache, 'third', 'ondine'));
  assert.throws(() => third.openBootstrap(boot), unsafe);

  assert.ok(readFileSync(victim).equals(before), 'the outside file is byte for byte what it was');
  assert.equal(statSync(victim).mtimeMs, mtime);
  assert.deepEqual(readdirSync(outside), ['victim'], 'nothing was made outside the cache directory');
});

test('a FIFO or a directory under a cache file name is refused without hanging', (t) => {
  const { cache } = scratch(t);
  const dir = new CacheDir(cache);
  mkdirSync(join(cache, 'ondine', 'blobs', ID), { recursive: true });
  assert.throws(() => dir.openBlob(ID, 4096), unsafe);
  const id2 = 'cd'.repeat(32);
  execFileSync('mkfifo', [join(cache, 'ondine', 'blobs', id2)]);
  assert.throws(() => dir.openBlob(id2, 4096), unsafe);
});

test('bootstrap copies: content checked through the fd; a wrong copy is rewritten', (t) => {
  const { cache } = scratch(t);
  const dir = new CacheDir(cache);
  const boot = Buffer.from('bootstrap bytes '.repeat(1000));
  const a = dir.openBootstrap(boot);
  assert.ok(readFileSync(fdPath(a.fd)).equals(boot));
  closeSync(a.fd);
  // Same size, other bytes (a tampered copy): rewritten, not trusted by name and size.
  const tampered = Buffer.from(boot);
  tampered[10] ^= 1;
  writeFileSync(a.path, tampered);
  const b = dir.openBootstrap(boot);
  assert.ok(readFileSync(fdPath(b.fd)).equals(boot));
  closeSync(b.fd);
  const c = dir.openBootstrap(boot);
  closeSync(c.fd);
  assert.equal(c.path, a.path);
});
