// The fanotify pre-content group as the daemon makes it, and the test of whether this kernel
// and a cache directory allow one (a group is made and a mark taken, never judged by version).
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AT_FDCWD, closeFd, FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_MARK_ADD, FAN_NONBLOCK, FAN_PRE_ACCESS,
  FAN_UNLIMITED_MARKS, FAN_UNLIMITED_QUEUE, fanotifyInit, fanotifyMark, NativeError,
} from '../../native/index.js';

/** O_RDWR | O_LARGEFILE: event fds the daemon fills through. */
const EVENT_FLAGS = 0o2 | 0o100000;

/**
 * A pre-content group as the daemon uses it: an unlimited queue, since an overflowing queue
 * drops permission events and allows them.
 */
export function openFanotifyGroup(): number {
  return fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, EVENT_FLAGS);
}

/** true where a pre-content mark in `cacheDir` is taken; otherwise why not. */
export function probeFanotify(cacheDir: string): true | string {
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
