// Which kernel front ends this machine can serve, found by trying (never by kernel version):
// fanotify where a pre-content group can be made and a mark on a file in the cache directory
// is taken (tmpfs and overlayfs refuse them), cachefiles where /dev/cachefiles exists.
import { existsSync } from 'node:fs';
import { OndineError } from '../errors.js';
import { probeFanotify } from '../kernel/fanotify/group.js';
import { type Mode, type ModeChoice } from './defaults.js';

export { isModeChoice, type Mode, type ModeChoice } from './defaults.js';

export interface ProbeResult {
  fanotify: true | string;
  cachefiles: true | string;
}

/** Tries each front end; a string says why it cannot serve here. */
export function probe(cacheDir: string, devicePath = '/dev/cachefiles'): ProbeResult {
  return { fanotify: probeFanotify(cacheDir), cachefiles: existsSync(devicePath) ? true : `${devicePath} does not exist` };
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
  throw new OndineError('ONDINE_ERR_NO_KERNEL_PATH', undefined, `this kernel cannot serve lazy images${choice === 'auto' ? '' : ` in ${choice} mode`}: ${why.join('; ')}`);
}
