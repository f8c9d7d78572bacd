// What a client of the daemon must know without loading the daemon: the default socket, the
// mode names a user may ask for, and the cap on a pull's deadline. No imports, no work at
// load: the CLI's lean commands (mount, status, stop) and the snapshotter start from here.

export const DEFAULT_SOCKET = '/run/ondine/ondine.sock';

/** A kernel front end the daemon serves. */
export type Mode = 'cachefiles' | 'fanotify';

export type ModeChoice = 'auto' | Mode;

/** Whether `v` names a mode a user may ask for. */
export function isModeChoice(v: unknown): v is ModeChoice {
  return v === 'auto' || v === 'fanotify' || v === 'cachefiles';
}

/** The longest deadline a pull by reference may be given (one hour). */
export const MAX_PULL_DEADLINE_MS = 3_600_000;
