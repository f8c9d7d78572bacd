// Which kernel front ends this machine can serve, found by trying (never by kernel version):
// fanotify where a pre-content group can be made and a mark on a file in the cache directory
// is taken (tmpfs and overlayfs refuse them), cachefiles where /dev/cachefiles exists.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OndineError } from '../errors.js';
import {
  AT_FDCWD, closeFd, FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_MARK_ADD, FAN_NONBLOCK, FAN_PRE_ACCESS,
  FAN_UNLIMITED_MARKS, FAN_UNLIMITED_QUEUE, fanotifyInit, fanotifyMark, NativeError,
} from '../native/index.js';
import type { Mode } from './daemon.js';

/** O_RDWR | O_LARGEFILE: event fds the daemon fills through. */
const EVENT_FLAGS = 0o2 | 0o100000;

/**
 * A pre-content group as the daemon uses it: an unlimited queue, since an overflowing queue
 * drops permission events and allows them.
 */
export function openFanotifyGroup(): number {
  return fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, EVENT_FLAGS);
}

export interface ProbeResult {
  fanotify: true | string;
  cachefiles: true | string;
}

/** Tries each front end; a string says why it cannot serve here. */
export function probe(cacheDir: string, devicePath = '/dev/cachefiles'): ProbeResult {
  return { fanotify: probeFanotify(cacheDir), cachefiles: existsSync(devicePath) ? true : `${devicePath} does not exist` };
}

function probeFanotify(cacheDir: string): true | string {
  let group: number;
  try {
    group = openFanotifyGroup();
  } catch (err) {
    const code = err instanceof NativeError ? err.code : String(err);
    return `fanotify_init(FAN_CLASS_PRE_CONTENT) failed (${code})`;
  }
  const file = join(cacheDir, `.ondine-probe-${process.pid}`);
  try {
    writeFileSync(file, '');
    fanotifyMark(group, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, file);
    return true;
  } catch (err) {
    const code = err instanceof NativeError ? err.code : (err as Error).message;
    return code === 'EINVAL' || code === 'EOPNOTSUPP'
      ? `the filesystem of ${cacheDir} refuses pre-content marks (${code}; tmpfs and overlayfs do): use a cache directory on ext4, xfs or btrfs`
      : `a pre-content mark in ${cacheDir} failed (${code})`;
  } finally {
    closeFd(group);
    rmSync(file, { force: true });
  }
}

export type ModeChoice = 'auto' | Mode;

/** Whether `v` names a mode a user may ask for. */
export function isModeChoice(v: unknown): v is ModeChoice {
  return v === 'auto' || v === 'fanotify' || v === 'cachefiles';
}

/** The front ends to serve for `choice`, or one error naming what each path needs. */
export function chooseModes(choice: ModeChoice, found: ProbeResult): Mode[] {
  const modes: Mode[] = [];
  if ((choice === 'auto' || choice === 'fanotify') && found.fanotify === true) modes.push('fanotify');
  if ((choice === 'auto' || choice === 'cachefiles') && found.cachefiles === true) modes.push('cachefiles');
  if (modes.length) return modes;
  const why = [
    // The kernel's requirements only where the kernel said no; a refusing cache directory says so itself.
    choice !== 'cachefiles' ? `fanotify: ${found.fanotify}${String(found.fanotify).startsWith('fanotify_init') ? ' — needs Linux 6.14+ with CONFIG_FANOTIFY_ACCESS_PERMISSIONS=y and CONFIG_EROFS_FS_BACKED_BY_FILE=y' : ''}` : undefined,
    choice !== 'fanotify' ? `cachefiles: ${found.cachefiles} — needs Linux 5.19 to 7.1 with CONFIG_CACHEFILES_ONDEMAND=y and CONFIG_EROFS_FS_ONDEMAND=y` : undefined,
  ].filter(Boolean);
  throw new OndineError('ONDINE_ERR_NO_KERNEL_PATH', 95, `this kernel cannot serve lazy images${choice === 'auto' ? '' : ` in ${choice} mode`}: ${why.join('; ')}`);
}
