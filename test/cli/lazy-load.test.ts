// The CLI loads only what the verb on its command line needs: a module-resolution hook (the
// real ESM loader, in a real `node` child) lists every module the command resolved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const HOOK = `data:text/javascript,${encodeURIComponent(
  // writeSync, not process.stderr: the hooks run on their own thread, and from Node 24 on that
  // thread's buffered stderr is lost when the command exits.
  "import { writeSync } from 'node:fs'; export async function resolve(s, c, n) { const r = await n(s, c); if (!r.url.startsWith('node:')) writeSync(2, 'LOADED ' + r.url + '\\n'); return r; }",
)}`;
const REGISTER = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(HOOK)});`)}`;

function run(...args: string[]): { status: number | null; stdout: string; stderr: string; loaded: string[] } {
  const r = spawnSync(process.execPath, ['--import', REGISTER, CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  const loaded = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice('LOADED '.length));
  const stderr = r.stderr.split('\n').filter((l) => !l.startsWith('LOADED ')).join('\n');
  return { status: r.status, stdout: r.stdout, stderr, loaded };
}

const HEAVY = ['/node_modules/undici/', '/node_modules/@grpc/', '/node_modules/pino/', '/dist/src/native/binding.js', '/dist/src/daemon/daemon.js', '/dist/src/builder/'];
const heavyIn = (loaded: string[]) => loaded.filter((u) => HEAVY.some((h) => u.includes(h)));

test('ondine --version loads commander and the error table, no verb', () => {
  const r = run('--version');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  assert.ok(r.loaded.some((u) => u.includes('/node_modules/commander/')), 'commander was loaded (the hook sees modules)');
  assert.deepEqual(r.loaded.filter((u) => u.includes('/cli/commands/')), []);
  assert.deepEqual(heavyIn(r.loaded), []);
});

test('ondine mount --help loads the mount verb alone, without the addon, undici, gRPC or pino', () => {
  const r = run('mount', '--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage: ondine mount/);
  assert.deepEqual(r.loaded.filter((u) => u.includes('/cli/commands/')).map((u) => u.replace(/.*\/commands\//, '')), ['mount.js']);
  assert.deepEqual(heavyIn(r.loaded), []);
});

test('a user mistake in a lazily loaded verb is still one line, no stack', () => {
  const r = run('mount', '--mode', 'nope', '/nonexistent-image', '/nonexistent-dir');
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), 'ondine: --mode must be auto, fanotify or cachefiles, not "nope" [ONDINE_ERR_INVALID]');
});

test('help and an unknown verb load every verb, to list them or suggest one', () => {
  const help = run('--help');
  assert.equal(help.status, 0);
  for (const verb of ['build', 'convert', 'daemon', 'mount', 'snapshotter', 'umount']) assert.match(help.stdout, new RegExp(`^  ${verb} `, 'm'));
  const typo = run('mout');
  assert.equal(typo.status, 1);
  assert.match(typo.stderr, /unknown command 'mout'/);
  assert.match(typo.stderr, /Did you mean mount\?/);
});
