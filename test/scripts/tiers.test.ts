// The test tiers (scripts/tiers/tiers.mjs): every compiled test file is in exactly one tier,
// by path and test/host-tier.txt; the unit tier fails, naming the file, when a test in it
// skips itself for want of root or fails for want of a capability.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const TIERS = join(REPO, 'scripts/tiers/tiers.mjs');

function run(script: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { cwd, timeout: 120_000, env: { ...process.env, ONDINE_SHARED: '/nonexistent' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.test.js')) out.push(relative(REPO, join(e.parentPath ?? (e as { path: string }).path, e.name)).split(sep).join('/'));
  }
  return out.sort();
}

test('every compiled test file is in exactly one tier; e2e and the manifest are host, vm/ is vm', async () => {
  const tiers: Record<string, string[]> = {};
  for (const t of ['unit', 'host', 'vm']) {
    const r = await run(TIERS, ['list', t], REPO);
    assert.equal(r.code, 0, r.stderr);
    tiers[t] = r.stdout.split('\n').filter(Boolean);
  }
  const all = await testFiles(join(REPO, 'dist/test'));
  assert.deepEqual([...tiers.unit!, ...tiers.host!, ...tiers.vm!].sort(), all);
  assert.ok(all.filter((f) => f.startsWith('dist/test/e2e/')).every((f) => tiers.host!.includes(f)));
  assert.ok(all.filter((f) => f.startsWith('dist/test/vm/')).every((f) => tiers.vm!.includes(f)));
  assert.ok(tiers.host!.includes('dist/test/native/mount.test.js'), 'listed in test/host-tier.txt');
  assert.ok(tiers.unit!.includes('dist/test/scripts/tiers.test.js'));
  assert.ok(tiers.vm!.length > 0 && tiers.unit!.length > 0);
});

test('the unit tier fails and names the file when a unit test skips for want of root or needs a capability', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ondine-tiers-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'scripts'), { recursive: true });
  await cp(join(REPO, 'scripts/tiers'), join(root, 'scripts/tiers'), { recursive: true });
  await mkdir(join(root, 'dist/test/a'), { recursive: true });
  await mkdir(join(root, 'test'), { recursive: true });
  await writeFile(join(root, 'dist/test/a/plain.test.js'),
    "import { test } from 'node:test';\ntest('adds', () => { if (1 + 1 !== 2) throw new Error('math'); });\n");
  const script = join(root, 'scripts/tiers/tiers.mjs');

  // A clean unit tier passes; TAP goes to stdout with its closing lines.
  const clean = await run(script, ['run', 'unit'], root);
  assert.equal(clean.code, 0, clean.stderr);
  assert.match(clean.stdout, /^# pass 1$/m);

  await writeFile(join(root, 'dist/test/a/rooty.test.js'),
    "import { test } from 'node:test';\ntest('mounts', { skip: 'needs root (mount(2))' }, () => {});\n");
  const skipped = await run(script, ['run', 'unit'], root);
  assert.equal(skipped.code, 1, skipped.stderr);
  assert.match(skipped.stderr, /dist\/test\/a\/rooty\.test\.js: mounts \(# SKIP needs root/);
  assert.match(skipped.stderr, /test\/host-tier\.txt/);

  // Listed in the manifest, the file moves to the host tier and the unit tier passes again.
  await writeFile(join(root, 'test/host-tier.txt'), '# root\na/rooty.test.ts   # mounts\n');
  const listed = await run(script, ['list', 'host'], root);
  assert.deepEqual(listed.stdout.split('\n').filter(Boolean), ['dist/test/a/rooty.test.js']);
  const again = await run(script, ['run', 'unit'], root);
  assert.equal(again.code, 0, again.stderr);

  // A unit test that needs a capability without checking fails outright (EPERM), root or not.
  await writeFile(join(root, 'dist/test/a/mknod.test.js'),
    "import { test } from 'node:test';\nimport { execFileSync } from 'node:child_process';\n" +
    `test('makes a device node', () => { execFileSync('mknod', [${JSON.stringify(join(root, 'null'))}, 'c', '1', '3'], { stdio: 'ignore' }); });\n`);
  const eperm = await run(script, ['run', 'unit'], root);
  assert.equal(eperm.code, 1, eperm.stderr);
  assert.match(eperm.stderr, /failures in dist\/test\/a\/mknod\.test\.js/);
});
