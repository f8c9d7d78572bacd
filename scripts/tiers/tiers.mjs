#!/usr/bin/env node
// The test tiers: which compiled test file belongs to which tier, and running one tier with
// node's test runner (TAP on stdout, unchanged, so CI can read its closing lines).
//
//   node scripts/tiers/tiers.mjs list <unit|host|vm>
//   node scripts/tiers/tiers.mjs run <unit|host|vm> [--node PATH] [--summary FILE]
//   node scripts/tiers/tiers.mjs summary FILE      (totals over the runs recorded in FILE)
//
// vm:   test/vm/**                       (boots the QEMU VM; root)
// host: test/e2e/** and the files named in test/host-tier.txt (need root: mounts, mknod,
//       chown, trusted.* xattrs, fanotify, umoci without --rootless)
// unit: everything else. Run as root, the unit tier drops privileges first (user nobody, or
//       uid 0 without any capability when nobody cannot read the checkout), so a unit test
//       that needs root fails there instead of passing on a root CI box; a test that skips
//       itself for want of root fails the tier too (a skip would hide it from every tier).
//
// Plain JavaScript on purpose: it runs before the TypeScript build is trusted and under every
// Node line the suite supports.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DIST_TEST = join(REPO, 'dist', 'test');
const MANIFEST = join(REPO, 'test', 'host-tier.txt');
const GUARD = join(REPO, 'scripts', 'tiers', 'guard-reporter.mjs');
const TIERS = ['unit', 'host', 'vm'];
const NOBODY = 65534;
// One test file's limit: the VM file boots QEMU under TCG and runs every guest test.
const TIMEOUT_MS = { unit: 10 * 60_000, host: 30 * 60_000, vm: 60 * 60_000 };
// Unit tests are I/O-light and independent; host tests share the kernel's mount table and
// loop devices, and the VM file is alone in its tier.
const CONCURRENCY = { unit: 2, host: 1, vm: 1 };
const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function fail(msg) {
  process.stderr.write(`tiers: ${msg}\n`);
  process.exit(2);
}

/** A manifest glob (`*` within a path segment, `**` across them) as a RegExp over paths. */
function globToRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The host-tier manifest: one path or glob per line, relative to test/, `#` comments. */
export function readManifest(text) {
  return text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean)
    .map((pattern) => ({ pattern, re: globToRegExp(pattern.replace(/\.ts$/, '.js')) }));
}

/** Tier of a test file, given by its path relative to dist/test with '/' separators. */
export function tierOf(rel, manifest) {
  if (rel.startsWith('vm/')) return 'vm';
  if (rel.startsWith('e2e/')) return 'host';
  if (manifest.some((m) => m.re.test(rel))) return 'host';
  return 'unit';
}

function walk(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function classify() {
  if (!existsSync(DIST_TEST)) fail(`no ${relative(process.cwd(), DIST_TEST) || DIST_TEST}: build first (npm run build)`);
  const manifest = existsSync(MANIFEST) ? readManifest(readFileSync(MANIFEST, 'utf8')) : [];
  const files = walk(DIST_TEST).sort();
  const rels = files.map((f) => relative(DIST_TEST, f).split(sep).join('/'));
  for (const m of manifest) {
    if (!rels.some((r) => m.re.test(r))) process.stderr.write(`tiers: warning: ${MANIFEST}: "${m.pattern}" matches no test file\n`);
  }
  const byTier = { unit: [], host: [], vm: [] };
  files.forEach((f, i) => byTier[tierOf(rels[i], manifest)].push(f));
  return byTier;
}

/**
 * How to run the unit tier without privileges: as nobody when nobody can read the checkout,
 * else as uid 0 with every capability gone (a checkout under /root, say). Either way mounts,
 * mknod, chown and fanotify fail with EPERM, as on a developer's machine.
 */
function dropPrivileges(node) {
  if (process.getuid?.() !== 0) return { prefix: [], who: `uid ${process.getuid?.()}` };
  const caps = ['--inh-caps=-all', '--bounding-set=-all'];
  const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...caps, '--'];
  const probe = spawnSync(asNobody[0], [...asNobody.slice(1), node, '-e',
    `require('fs').accessSync(${JSON.stringify(join(REPO, 'node_modules'))}); require(${JSON.stringify(join(REPO, 'build', 'Release', 'ondine.node'))})`],
  { stdio: 'ignore' });
  if (probe.error?.code === 'ENOENT') fail('setpriv (util-linux) is missing: it drops root for the unit tier');
  if (probe.status === 0) return { prefix: asNobody, who: 'nobody', uid: NOBODY };
  return { prefix: ['setpriv', ...caps, '--'], who: 'uid 0 without capabilities (nobody cannot read the checkout)' };
}

function parseSummary(lines) {
  const s = {};
  for (const l of lines) {
    const m = /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(l);
    if (m) s[m[1]] = Number(m[2]);
  }
  return s;
}

async function run(tier, opts) {
  const node = opts.node ?? process.execPath;
  const files = classify()[tier];
  if (files.length === 0) fail(`no test files in the ${tier} tier under ${DIST_TEST}`);
  if (tier !== 'unit' && process.getuid?.() !== 0) fail(`the ${tier} tier needs root (mounts, loop devices, fanotify${tier === 'vm' ? ', QEMU' : ''}); run it as root`);

  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  if (!version) fail(`cannot run ${node}`);
  const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH ?? SAFE_PATH}` };
  if (!env.ONDINE_SHARED) env.ONDINE_SHARED = join(REPO, '..', 'shared');
  // Started from inside a test (ours does), the runner would otherwise report to that test's
  // runner in its internal format instead of printing TAP.
  delete env.NODE_TEST_CONTEXT;
  let prefix = [];
  let home;
  const guardOut = mkdtempSync(join(tmpdir(), 'ondine-tier-'));
  if (tier === 'unit') {
    const drop = dropPrivileges(node);
    prefix = drop.prefix;
    if (drop.prefix.length) {
      // root's PATH may name directories nobody cannot search (execvp then reports EACCES).
      env.PATH = `${dirname(node)}:${SAFE_PATH}`;
      home = mkdtempSync(join(tmpdir(), 'ondine-unit-home-'));
      if (drop.uid !== undefined) for (const d of [home, guardOut]) chownSync(d, drop.uid, drop.uid);
      env.HOME = home;
    }
    process.stderr.write(`tiers: unit tier as ${drop.who}\n`);
  }
  process.stderr.write(`tiers: ${tier} tier, ${files.length} files, node ${version}\n`);

  const guardFile = join(guardOut, 'guard.jsonl');
  const args = ['--test', `--test-concurrency=${CONCURRENCY[tier]}`, `--test-timeout=${TIMEOUT_MS[tier]}`,
    '--test-reporter=tap', '--test-reporter-destination=stdout',
    `--test-reporter=${GUARD}`, `--test-reporter-destination=${guardFile}`, ...files];
  const argv = [...prefix, node, ...args];
  const started = Date.now();
  const child = spawn(argv[0], argv.slice(1), { cwd: REPO, env, stdio: ['ignore', 'pipe', 'inherit'] });
  // Forward every byte; keep only the top-level lines for the summary.
  const top = [];
  let partial = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    const text = partial + chunk.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop();
    for (const l of lines) if (l.startsWith('#')) top.push(l);
  });
  const stop = (sig) => { child.kill(sig); };
  process.on('SIGINT', stop).on('SIGTERM', stop);
  const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
  if (partial.startsWith('#')) top.push(partial);
  if (home) rmSync(home, { recursive: true, force: true });

  let exit = code;
  const guard = existsSync(guardFile)
    ? readFileSync(guardFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  rmSync(guardOut, { recursive: true, force: true });
  const rootSkips = guard.filter((g) => g.kind === 'root-skip');
  if (tier === 'unit' && rootSkips.length) {
    const files = [...new Set(rootSkips.map((g) => g.file ? relative(REPO, g.file) : '(unknown file)'))];
    process.stderr.write(`tiers: ${rootSkips.length} test(s) in the unit tier skipped for want of root; ` +
      `name their files in test/host-tier.txt so the host tier runs them:\n` +
      rootSkips.map((g) => `  ${g.file ? relative(REPO, g.file) : '?'}: ${g.name} (# SKIP ${g.reason})\n`).join(''));
    process.stderr.write(`tiers: files: ${files.join(' ')}\n`);
    if (exit === 0) exit = 1;
  }
  const failed = [...new Set(guard.filter((g) => g.kind === 'fail' && g.file).map((g) => relative(REPO, g.file)))];
  if (failed.length) process.stderr.write(`tiers: ${tier} tier: failures in ${failed.join(' ')}\n`);

  const summary = { tier, node: version, exit, wall_ms: Date.now() - started, ...parseSummary(top) };
  if (opts.summary) appendFileSync(opts.summary, JSON.stringify(summary) + '\n');
  process.stderr.write(`tiers: ${tier} tier on node ${version}: exit ${exit}, ${summary.pass ?? '?'} passed, ${summary.fail ?? '?'} failed, ` +
    `${summary.skipped ?? '?'} skipped, ${Math.round(summary.wall_ms / 1000)} s\n`);
  return exit;
}

/**
 * Totals over the runs recorded in a summary file, printed last in the runner's own closing
 * format (one comment line per run before them); exit 1 when a run failed.
 */
function printTotals(file) {
  const runs = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  if (runs.length === 0) fail(`no test runs recorded in ${file}`);
  const keys = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'];
  const total = Object.fromEntries(keys.map((k) => [k, 0]));
  let wall = 0;
  for (const r of runs) {
    process.stdout.write(`# run ${r.tier} node ${r.node}: exit ${r.exit}, ${keys.map((k) => `${k} ${r[k] ?? '?'}`).join(', ')}, ${Math.round(r.wall_ms / 1000)} s\n`);
    for (const k of keys) total[k] += r[k] ?? 0;
    wall += r.wall_ms;
  }
  for (const k of keys) process.stdout.write(`# ${k} ${total[k]}\n`);
  process.stdout.write(`# duration_ms ${wall}\n`);
  return runs.some((r) => r.exit !== 0) ? 1 : 0;
}

function main(argv) {
  const [cmd, tier, ...rest] = argv;
  if (cmd === 'summary' && tier) process.exit(printTotals(tier));
  if (!['list', 'run'].includes(cmd) || !TIERS.includes(tier)) {
    fail('usage: tiers.mjs list <unit|host|vm> | run <unit|host|vm> [--node PATH] [--summary FILE] | summary FILE');
  }
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--node' && rest[i + 1]) opts.node = rest[++i];
    else if (rest[i] === '--summary' && rest[i + 1]) opts.summary = rest[++i];
    else fail(`unknown argument ${rest[i]}`);
  }
  if (cmd === 'list') {
    for (const f of classify()[tier]) process.stdout.write(`${relative(REPO, f)}\n`);
    return;
  }
  run(tier, opts).then((code) => process.exit(code), (e) => fail(e?.message ?? String(e)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv.slice(2));
