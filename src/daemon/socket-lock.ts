// One daemon per socket: an exclusive flock on `<socket>.lock`, taken by the first process of
// a daemon and inherited by the rest (the supervisor and every worker generation share the
// one open file description, so the lock lasts while any of them can still serve the socket
// or hold the fanotify group). The file says who holds it, for the refusal of a second one.
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { OndineError } from '../errors.js';
import { flockExclusive, setCloexec } from '../native/index.js';

/** Where a spawned daemon process finds the lock its launcher took (a fixed fd number). */
export const LOCK_FD_ENV = 'ONDINE_LOCK_FD';
/** The fd number a launcher gives the lock in the processes it starts. */
export const INHERITED_LOCK_FD = 9;

export interface LockHolder {
  pid: number;
  cacheDir: string;
}

export function lockPath(socketPath: string): string {
  return `${socketPath}.lock`;
}

/** A daemon already serves this socket (it holds the lock). */
export class DaemonRunningError extends OndineError {
  constructor(readonly socketPath: string, readonly holder: LockHolder | undefined) {
    super('ONDINE_ERR_BUSY', undefined, holder
      ? `a daemon already serves ${socketPath} (pid ${holder.pid}, cache directory ${holder.cacheDir}); stop it first (ondine stop --socket ${socketPath})`
      : `a daemon already serves ${socketPath} (it holds ${lockPath(socketPath)}); stop it first (ondine stop --socket ${socketPath})`);
  }
}

/** What the lock file says of its holder; undefined when unreadable or not yet written. */
export function readHolder(socketPath: string): LockHolder | undefined {
  try {
    const v = JSON.parse(readFileSync(lockPath(socketPath), 'utf8')) as Partial<LockHolder>;
    if (Number.isInteger(v.pid) && (v.pid as number) > 0 && typeof v.cacheDir === 'string') return { pid: v.pid as number, cacheDir: v.cacheDir };
  } catch {
    // absent, or written half by a holder that is starting
  }
  return undefined;
}

export class SocketLock {
  private constructor(readonly fd: number, readonly socketPath: string) {}

  /** Takes the lock of `socketPath`, or throws DaemonRunningError naming its holder. */
  static take(socketPath: string): SocketLock {
    mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
    const fd = openSync(lockPath(socketPath), 'a+', 0o600);
    let taken: boolean;
    try {
      taken = flockExclusive(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (!taken) {
      closeSync(fd);
      throw new DaemonRunningError(socketPath, readHolder(socketPath));
    }
    return new SocketLock(fd, socketPath);
  }

  /**
   * The lock a launcher passed down (LOCK_FD_ENV), checked to be this socket's lock file and
   * held; undefined when none was passed. Its fd is kept from this process's own children.
   */
  static inherited(socketPath: string, env: NodeJS.ProcessEnv = process.env): SocketLock | undefined {
    const v = env[LOCK_FD_ENV];
    if (v === undefined) return undefined;
    delete env[LOCK_FD_ENV];
    const fd = Number(v);
    const file = statSync(lockPath(socketPath), { throwIfNoEntry: false });
    let st: ReturnType<typeof fstatSync> | undefined;
    try {
      st = Number.isInteger(fd) && fd > 2 ? fstatSync(fd) : undefined;
    } catch {
      st = undefined;
    }
    if (!file || !st || st.ino !== file.ino || st.dev !== file.dev || !flockExclusive(fd)) {
      throw new OndineError('ONDINE_ERR_INTERNAL', undefined, `${LOCK_FD_ENV}=${v} is not the held lock of ${socketPath}`);
    }
    setCloexec(fd, true);
    return new SocketLock(fd, socketPath);
  }

  /** Records who holds the lock (the pid to name: the daemon's longest-lived process). */
  record(holder: LockHolder): void {
    const text = Buffer.from(`${JSON.stringify(holder)}\n`);
    ftruncateSync(this.fd, 0);
    writeSync(this.fd, text, 0, text.length, 0);
  }

  /** Drops this process's hold (the lock stays while another process has the fd). */
  close(): void {
    closeSync(this.fd);
  }
}

/** Whether any process holds the lock of `socketPath` now (taken and let go at once to find out). */
export function lockHeld(socketPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath(socketPath), 'r');
  } catch {
    return false;
  }
  try {
    return !flockExclusive(fd);
  } finally {
    closeSync(fd);
  }
}
