// Helpers for tests that run inside the VM (real kernel with on-demand cachefiles): start and
// kill real daemon processes, mount through the CLI, read files with a deadline.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonClient } from '../../../src/daemon/client.js';
import type { Manifest } from '../fixtures.js';
export { hashTree } from '../fixtures.js';

export const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
export const CLI = join(REPO, 'dist/src/cli/main.js');
export const CACHE_DIR = process.env.ONDINE_CACHE_DIR ?? '/var/cache/ondine';
export const LOG_DIR = process.env.ONDINE_VM_SHARE_DIR ? join(process.env.ONDINE_VM_SHARE_DIR, 'logs') : '/tmp/ondine-logs';

export async function manifest(): Promise<Manifest> {
  const path = process.env.ONDINE_VM_FIXTURES;
  if (!path) throw new Error('ONDINE_VM_FIXTURES is not set (run through test/vm/cachefiles.test)');
  return JSON.parse(await readFile(join(path, 'manifest.json'), 'utf8')) as Manifest;
}

export interface DaemonProc {
  proc: ChildProcess;
  client: DaemonClient;
  socket: string;
  exited: Promise<number | null>;
  /** SIGTERM; resolves with the exit code (0 for a graceful shutdown). */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

let seq = 0;
const DAEMON_START_MS = Number(process.env.ONDINE_VM_DAEMON_START_MS) || 120_000;

export async function startDaemon(name: string, extra: string[] = [], cacheDir = CACHE_DIR, upTimeoutMs = DAEMON_START_MS): Promise<DaemonProc> {
  await mkdir(LOG_DIR, { recursive: true });
  const socket = `/run/ondine-test/${name}-${process.pid}-${seq++}.sock`;
  const log = await open(join(LOG_DIR, `${name}-${process.pid}-${seq}.log`), 'a');
  const proc = spawn(process.execPath, [CLI, 'daemon', '--foreground', '--cache-dir', cacheDir, '--socket', socket, ...extra], { stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const client = new DaemonClient(socket);
  // Under TCG on a busy 2-core host a daemon's start (node loading the CLI over 9p, binding
  // /dev/cachefiles) was seen to take over 30 s; the deadline only bounds a daemon that hangs.
  try {
    await client.waitUntilUp(() => proc.exitCode, upTimeoutMs, `daemon ${name}, log in ${LOG_DIR}`);
  } catch (err) {
    // A daemon that comes up after the deadline would hold /dev/cachefiles (single opener) and
    // fail every later test with EBUSY: end it before reporting.
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const hard = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(hard);
    }
    throw err;
  }
  return {
    proc, client, socket, exited,
    stop: async () => { if (proc.exitCode === null) proc.kill('SIGTERM'); return exited; },
    kill: async () => { if (proc.exitCode === null) { proc.kill('SIGKILL'); await exited; } },
  };
}

export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function cli(args: string[], timeoutMs = 120_000) {
  return run(process.execPath, [CLI, ...args], timeoutMs);
}

export async function mountImage(d: DaemonProc, image: string, mnt: string, opts: { fsid: string; domain?: string; blobs?: string; device?: string } ): Promise<void> {
  await mkdir(mnt, { recursive: true });
  const r = await cli(['mount', image, mnt, '--socket', d.socket, '--fsid', opts.fsid,
    ...(opts.domain ? ['--domain', opts.domain] : []), ...(opts.blobs ? ['--blobs', opts.blobs] : []), ...(opts.device ? ['--device', opts.device] : [])]);
  if (r.code !== 0) throw new Error(`ondine mount ${image} failed (${r.code}): ${r.stderr}`);
}

export async function umountImage(d: DaemonProc, mnt: string): Promise<void> {
  const r = await cli(['umount', mnt, '--socket', d.socket]);
  if (r.code !== 0) throw new Error(`ondine umount ${mnt} failed (${r.code}): ${r.stderr}`);
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Reads a file in a child process so that a hang cannot hang the test: resolves with the
 * sha256, or the errno code the reader got ('EIO'), or 'TIMEOUT'.
 */
export async function readInChild(path: string, timeoutMs = 60_000): Promise<{ result: string; ms: number }> {
  const started = Date.now();
  const script = `const fs=require('fs');const c=require('crypto');try{process.stdout.write(c.createHash('sha256').update(fs.readFileSync(${JSON.stringify(path)})).digest('hex'))}catch(e){process.stdout.write(e.code||String(e));}`;
  const r = await run(process.execPath, ['-e', script], timeoutMs);
  return { result: r.code === -1 && !r.stdout ? 'TIMEOUT' : r.stdout.trim(), ms: Date.now() - started };
}

/** Bytes the daemon read from its sources, per blob id. */
export async function fetchedBytes(d: DaemonProc): Promise<Map<string, number>> {
  const s = await d.client.stats() as { sources: Record<string, Record<string, { bytes: number }>> };
  const out = new Map<string, number>();
  for (const dir of Object.values(s.sources)) for (const [id, v] of Object.entries(dir)) out.set(id, (out.get(id) ?? 0) + v.bytes);
  return out;
}
