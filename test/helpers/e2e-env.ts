// What every host end-to-end test needs: where the repo, the CLI and the shared fixtures are;
// scratch directories that are always cleaned (mounts below them detached first, even when
// the test failed); running the CLI and system tools with their exit code and output; and the
// oracle tools (erofs-utils 1.8.6 when it can be built here, Debian's 1.5 otherwise).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MNT_DETACH, umount2 } from '../../src/native/index.js';

/** The repository root (this file runs from dist/test/helpers). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const cliPath = join(repoRoot, 'dist/src/cli/main.js');
export const sharedDir = process.env.ONDINE_SHARED ?? join(repoRoot, '..', 'shared');
export const isRoot = process.getuid?.() === 0;

/** `skip` value for tests that need root: false on this kind of machine (root), else a reason. */
export const skipUnlessRoot: false | string = isRoot ? false : 'needs root (mount(2), mknod, chown, trusted.* xattrs)';

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const points: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4];
    if (point !== undefined && (point === dir || point.startsWith(dir + '/'))) points.push(point);
  }
  return points.sort((a, b) => b.length - a.length);
}

/** Detaches every mount at or below `dir`; returns how many there were. */
export function detachAllUnder(dir: string): number {
  const points = mountsUnder(dir);
  for (const p of points) {
    try {
      umount2(p, MNT_DETACH);
    } catch {
      // already gone (a test unmounted it itself)
    }
  }
  return points.length;
}

/**
 * A fresh directory under /var/tmp (a disk filesystem with user/trusted/security xattrs, unlike
 * a tmpfs without user xattrs), removed after the test or suite `t` — mounts inside detached
 * first, so a failing assertion never leaves a mount behind.
 */
export function scratchDir(t: { after(fn: () => unknown): void }, label: string): string {
  const dir = mkdtempSync(join('/var/tmp', `ondine-e2e-${label}-`));
  t.after(() => {
    detachAllUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (never throws for a non-zero exit). */
export function run(cmd: string, args: readonly string[], opts: { cwd?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({
      code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
    }));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined); // a child that exits without reading its input
      child.stdin!.end(opts.input);
    }
  });
}

/** Runs a command and throws (with its output) unless it exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: { cwd?: string; input?: string | Buffer } = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`);
  }
  return r;
}

/** `ondine <args>` from dist/, as a user would run it. */
export function cli(args: readonly string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  return run(process.execPath, [cliPath, ...args], opts);
}

/** `ondine <args>` that must succeed. */
export async function cliOk(args: readonly string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  const r = await cli(args, opts);
  if (r.code !== 0) throw new Error(`ondine ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout.slice(-3000)}\nstderr: ${r.stderr.slice(-3000)}`);
  return r;
}

/**
 * Makes sure this kernel can mount EROFS (loading the module if needed) and throws a clear
 * error otherwise: on this project's machines a kernel that refuses is a failure, not a skip.
 */
export function requireKernelFs(fs: 'erofs' | 'overlay'): void {
  const has = () => readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t')[1] === fs);
  if (has()) return;
  spawnSync('modprobe', [fs], { stdio: 'ignore' });
  if (!has()) throw new Error(`the kernel has no ${fs} filesystem (not in /proc/filesystems, modprobe ${fs} did not help)`);
}

export interface ErofsTools {
  version: string;
  fsck: string;
  mkfs: string;
  dump: string;
  erofsfuse: string | undefined;
  /** fsck --extract writes files that begin with a hole correctly (1.5 writes only their tail). */
  extractsLeadingHoles: boolean;
  /** Why this version was chosen, for the test output. */
  note: string;
}

let toolsPromise: Promise<ErofsTools> | undefined;

/**
 * The erofs-utils to use as oracle: 1.8.6 from scripts/build-erofs-utils.sh (built once per
 * machine, reused after), else Debian's 1.5 with a note that leading-hole files cannot be
 * checked by extraction. Set ONDINE_EROFS_UTILS_BIN to use a given bin dir.
 */
export function erofsTools(): Promise<ErofsTools> {
  toolsPromise ??= (async () => {
    let bin = process.env.ONDINE_EROFS_UTILS_BIN;
    let why = '';
    if (!bin) {
      const r = await run('bash', [join(repoRoot, 'scripts/build-erofs-utils.sh')]);
      if (r.code === 0) bin = r.stdout.trim().split('\n').pop();
      else why = `scripts/build-erofs-utils.sh failed (${r.stderr.trim().split('\n').slice(-3).join(' | ')})`;
    }
    if (bin && existsSync(join(bin, 'fsck.erofs'))) {
      const v = spawnSync(join(bin, 'fsck.erofs'), ['-V'], { encoding: 'utf8' });
      const version = /\(erofs-utils\)\s+(\S+)/.exec(`${v.stdout}${v.stderr}`)?.[1] ?? 'unknown';
      return {
        version, fsck: join(bin, 'fsck.erofs'), mkfs: join(bin, 'mkfs.erofs'), dump: join(bin, 'dump.erofs'),
        erofsfuse: existsSync(join(bin, 'erofsfuse')) ? join(bin, 'erofsfuse') : undefined,
        extractsLeadingHoles: true, note: `erofs-utils ${version} from ${bin}`,
      };
    }
    return {
      version: '1.5', fsck: 'fsck.erofs', mkfs: 'mkfs.erofs', dump: 'dump.erofs', erofsfuse: undefined,
      extractsLeadingHoles: false,
      note: `Debian erofs-utils 1.5 (${why || 'no 1.8.6 build'}): fsck --extract mis-writes files that begin with a hole, so those are left out of the extraction comparison`,
    };
  })();
  return toolsPromise;
}

/**
 * Cleanup for a whole suite: pass it where a test context is expected (scratchDir, mounts) and
 * register `run` with node:test's suite-level `after`. Runs in reverse order; every step runs
 * even if an earlier one throws.
 */
export class Cleanup {
  readonly #steps: Array<() => unknown> = [];

  after(fn: () => unknown): void {
    this.#steps.push(fn);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    while (this.#steps.length) {
      try {
        await this.#steps.pop()!();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw errors[0];
  }
}
