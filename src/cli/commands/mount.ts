// `ondine mount <image> <mountpoint>`: make sure a daemon runs (starting one if none does),
// then mount the image lazily through the path chosen: fanotify (the daemon stores the
// bootstrap, marks the cache files and mounts file-backed EROFS) or cachefiles (the image is
// registered and mounted with fsid=). State lives in the daemon, not here. An <image> that is
// not a path is a registry reference: the daemon resolves it and fetches the bootstrap; the
// credentials (flags or ~/.docker/config.json) go to it over its 0600 socket.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { DEFAULT_SOCKET, isModeChoice, MAX_PULL_DEADLINE_MS } from '../../daemon/defaults.js';
import { DaemonClient, DaemonUnavailableError, type DaemonHealth } from '../../daemon/client.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../../errors.js';
import type { Credentials } from '../../registry/credentials.js';
import { timeLadder } from '../../registry/time-ladder.js';
import type { PullRequest } from '../../daemon/image-pull.js';
import { addRegistryFlags } from '../registry-flags.js';

// The lean path: this verb only talks to the daemon. The native addon (the socket's lock,
// the fscache mount) and the registry's reference and credential parsers load when needed.
const mountFscache: typeof import('../../kernel/mounts.js').mountFscache = async (...a) => (await import('../../kernel/mounts.js')).mountFscache(...a);

const DEFAULT_CACHE_DIR = '/var/cache/ondine';

async function imagePaths(image: string, blobs?: string): Promise<{ bootstrap: string; blobDir: string }> {
  const st = await stat(image).catch(() => undefined);
  if (!st) throw new NotFoundError(`image "${image}"`);
  const bootstrap = resolve(st.isDirectory() ? join(image, 'bootstrap') : image);
  return { bootstrap, blobDir: resolve(blobs ?? join(dirname(bootstrap), 'blobs')) };
}

/**
 * The last error the daemon logged before it died: its own words (a CLI error line, or the
 * message of a pino line at error level or above), so the user sees why, not just an exit code.
 */
export function lastDaemonError(log: string): string | undefined {
  const lines = log.split('\n').filter((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!;
    if (l.startsWith('ondine: ')) return l.slice('ondine: '.length).replace(/ \[ONDINE_ERR_[A-Z_]+\]$/, '');
    if (l.startsWith('{')) {
      try {
        const j = JSON.parse(l) as { level?: number; msg?: string; err?: { message?: string } };
        if ((j.level ?? 0) >= 50) return [j.msg, j.err?.message].filter(Boolean).join(': ');
      } catch { /* not JSON */ }
    }
  }
  return undefined;
}

async function ensureDaemon(client: DaemonClient, cacheDir: string, mode: string): Promise<DaemonHealth> {
  try {
    return await client.health();
  } catch (err) {
    if (!(err instanceof DaemonUnavailableError)) throw err;
  }
  await mkdir(cacheDir, { recursive: true });
  await mkdir(dirname(client.socketPath), { recursive: true, mode: 0o700 });
  const logPath = join(dirname(client.socketPath), 'daemon.log');
  const logFd = await open(logPath, 'a');
  const logStart = (await logFd.stat()).size;
  const main = fileURLToPath(new URL('../main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'daemon', '--cache-dir', cacheDir, '--socket', client.socketPath, '--mode', mode], {
    detached: true, stdio: ['ignore', logFd.fd, logFd.fd],
  });
  child.unref();
  await logFd.close();
  try {
    // `ondine daemon` exits 0 once its daemon answers; one that lost the socket's lock to
    // another `ondine mount` starting a daemon at the same time just waits for that one.
    // A daemon killed by a signal has no exit code: report it as -1.
    const { lockHeld } = await import('../../daemon/socket-lock.js');
    const exited = (): number | null => {
      const code = child.exitCode ?? (child.signalCode ? -1 : null);
      return code === 0 || lockHeld(client.socketPath) ? null : code;
    };
    await client.waitUntilUp(exited, 15_000, `see ${logPath}`);
  } catch (err) {
    const text = (await readFile(logPath).catch(() => Buffer.alloc(0))).subarray(logStart).toString('utf8');
    const why = lastDaemonError(text);
    if (why) throw new OndineError('ONDINE_ERR_NO_DAEMON', undefined, `the daemon could not start: ${why}`, { cause: err });
    throw err;
  }
  return client.health();
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}

interface RefOptions { username?: string; passwordStdin?: boolean; platform?: string; insecure?: boolean; caFile?: string }

/** The pull request for a reference: credentials from the flags, else the Docker config. */
async function pullRequest(image: string, o: RefOptions): Promise<PullRequest> {
  const [{ parseReference }, { dockerCredentials }] = await Promise.all([import('../../registry/reference.js'), import('../../registry/credentials.js')]);
  const ref = parseReference(image);
  let credentials: Credentials | undefined;
  if (o.passwordStdin || o.username !== undefined) {
    if (!o.username || !o.passwordStdin) throw new InvalidArgumentError('--username and --password-stdin go together');
    const password = await readStdin();
    if (!password) throw new InvalidArgumentError('--password-stdin: no password on standard input');
    credentials = { username: o.username, password };
  } else {
    credentials = await dockerCredentials(ref.registry);
  }
  return {
    ref: ref.toString(),
    ...(credentials ? { credentials } : {}),
    ...(o.insecure ? { insecure: true } : {}),
    ...(o.caFile ? { caFile: resolve(o.caFile) } : {}),
    ...(o.platform ? { platform: o.platform } : {}),
  };
}

/** A path (it exists, or is spelled as one) rather than a registry reference. */
async function isPath(image: string): Promise<boolean> {
  if (await stat(image).then(() => true, () => false)) return true;
  return image.startsWith('/') || image.startsWith('./') || image.startsWith('../') || image === '.' || image === '..';
}

export function register(program: Command): void {
  addRegistryFlags(program.command('mount'))
    .description('mount an image lazily: data fetched on first read (fanotify or cachefiles)')
    .argument('<image>', 'a bootstrap file, an image directory (bootstrap + blobs/), or a registry reference (e.g. 127.0.0.1:5000/app:1)')
    .argument('<mountpoint>', 'directory to mount on')
    .option('--mode <mode>', 'auto (fanotify where it works, else cachefiles), fanotify or cachefiles', 'auto')
    .option('--fsid <id>', 'cachefiles: fscache id (default: derived from the bootstrap digest)')
    .option('--domain <id>', 'cachefiles: share blobs with other images mounted in this domain')
    .option('--blobs <dir>', 'blob directory (default: blobs/ beside the bootstrap)')
    .option('--device <tag=path...>', 'flat device image for a device tag, or a device number where the tag is empty (mkfs.erofs --blobdev images)')
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .option('--cache-dir <dir>', 'cache directory, if a daemon must be started', DEFAULT_CACHE_DIR)
    .option('--platform <os/arch[/variant]>', "the image of an index to mount (default: this machine's)")
    .option('--timeout <seconds>', 'give up (and cancel the daemon\'s pull) after this long', String(timeLadder().mountDeadlineMs / 1000))
    .action(async (image: string, mountpoint: string, o: { mode: string; fsid?: string; domain?: string; blobs?: string; device?: string[]; socket: string; cacheDir: string; timeout: string } & RefOptions, cmd: Command) => {
      if (!isModeChoice(o.mode)) throw new InvalidArgumentError(`--mode must be auto, fanotify or cachefiles, not "${o.mode}"`);
      const timeoutMs = Math.round(Number(o.timeout) * 1000);
      if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_PULL_DEADLINE_MS) throw new InvalidArgumentError(`--timeout must be a number of seconds from 0.001 to ${MAX_PULL_DEADLINE_MS / 1000}, not "${o.timeout}"`);
      // The whole command's deadline: the daemon is told it too (its pull ends by then even
      // if it missed our going away), and our going away cancels its pull at once.
      const deadline = new AbortController();
      const started = Date.now();
      const timer = setTimeout(() => deadline.abort(new OndineError('ONDINE_ERR_TIMEOUT', undefined, `mounting ${image} did not finish within ${timeoutMs / 1000} s (--timeout)`)), timeoutMs);
      timer.unref();
      const left = () => Math.max(1, timeoutMs - (Date.now() - started));
      const byRef = !(await isPath(image));
      if (!byRef && (o.username || o.passwordStdin || o.platform || o.insecure || o.caFile)) {
        throw new InvalidArgumentError('--username, --password-stdin, --platform, --insecure and --ca-file are for images in a registry, not a local image');
      }
      if (byRef && (o.blobs || o.device)) throw new InvalidArgumentError('--blobs and --device are for a local image, not a registry reference');
      const pull = byRef ? await pullRequest(image, o) : undefined;
      const { bootstrap, blobDir } = pull ? { bootstrap: '', blobDir: '' } : await imagePaths(image, o.blobs);
      const target = resolve(mountpoint);
      const st = await stat(target).catch(() => undefined);
      if (!st) throw new NotFoundError(`mount point ${target} (create the directory first)`);
      if (!st.isDirectory()) throw new InvalidArgumentError(`mount point ${target} is not a directory`);
      const cacheDir = resolve(o.cacheDir);
      const client = new DaemonClient(o.socket);
      const health = await ensureDaemon(client, cacheDir, o.mode);
      if (cmd.getOptionValueSource('cacheDir') === 'cli' && resolve(health.cacheDir) !== cacheDir) {
        throw new OndineError('ONDINE_ERR_CACHE_DIR', undefined, `the daemon on ${o.socket} uses cache directory ${health.cacheDir}, not ${cacheDir}: drop --cache-dir, or stop that daemon first`);
      }
      const mode = o.mode === 'auto' ? (health.modes.includes('fanotify') ? 'fanotify' : 'cachefiles') : o.mode;
      if (!health.modes.includes(mode as 'fanotify' | 'cachefiles')) {
        throw new OndineError('ONDINE_ERR_UNSUPPORTED', undefined, `the daemon on ${o.socket} does not serve ${mode} (it serves: ${health.modes.join(', ') || 'nothing'})`);
      }
      const devices: Record<string, string> = {};
      for (const d of o.device ?? []) {
        const i = d.indexOf('=');
        if (i <= 0) throw new InvalidArgumentError(`--device ${d}: expected tag=path`);
        devices[d.slice(0, i)] = resolve(d.slice(i + 1));
      }
      if (mode === 'fanotify') {
        if (o.fsid || o.domain) throw new InvalidArgumentError('--fsid and --domain are cachefiles options; add --mode cachefiles');
        if (pull) {
          const info = await client.mountRef({ ...pull, deadlineMs: left(), mountpoint: target }, deadline.signal);
          process.stdout.write(`mounted ${info.ref ?? pull.ref} on ${target} (fanotify)\n`);
          return;
        }
        await client.mount({ bootstrap, blobDir, mountpoint: target, ...(o.device ? { devices } : {}) });
        process.stdout.write(`mounted ${bootstrap} on ${target} (fanotify)\n`);
        return;
      }
      if (pull) {
        const info = await client.registerRef({ ...pull, deadlineMs: left(), ...(o.fsid ? { fsid: o.fsid } : {}), ...(o.domain ? { domain: o.domain } : {}) }, deadline.signal);
        try {
          await mountFscache(target, info.fsid, o.domain, []);
        } catch (err) {
          await client.unregister(info.fsid, o.domain).catch(() => undefined);
          throw err;
        }
        process.stdout.write(`mounted ${info.ref ?? pull.ref} on ${target} (cachefiles, fsid ${info.fsid}${o.domain ? `, domain ${o.domain}` : ''})\n`);
        return;
      }
      const fsid = o.fsid ?? `ondine-${createHash('sha256').update(await readFile(bootstrap)).digest('hex').slice(0, 16)}`;
      await client.register({ fsid, bootstrap, blobDir, ...(o.domain ? { domain: o.domain } : {}), ...(o.device ? { devices } : {}) });
      try {
        await mountFscache(target, fsid, o.domain, Object.keys(devices));
      } catch (err) {
        await client.unregister(fsid, o.domain).catch(() => undefined);
        throw err;
      }
      process.stdout.write(`mounted ${bootstrap} on ${target} (cachefiles, fsid ${fsid}${o.domain ? `, domain ${o.domain}` : ''})\n`);
    });
}
