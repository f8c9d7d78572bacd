// EROFS mounts: fscache (fsid=) and file-backed (bootstrap + device= cache files), and
// reading them back from /proc/self/mountinfo.
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { OndineError } from '../errors.js';
import { checkName } from '../format/identifiers.js';
import { MS_RDONLY, mountAsync, mountErofsFile, NativeError, umount2Async } from '../native/index.js';

export interface FscacheMount {
  mountpoint: string;
  fsid: string;
  domain?: string;
}

export async function mountFscache(mountpoint: string, fsid: string, domain?: string, devices: string[] = []): Promise<void> {
  // Each goes into a comma-split option string: one outside the grammar could add options.
  checkName(fsid, 'fsid');
  if (domain) checkName(domain, 'domain');
  devices.forEach((d, i) => checkName(d, `device ${i + 1} (a device tag)`));
  const data = [`fsid=${fsid}`, ...(domain ? [`domain_id=${domain}`] : []), ...devices.map((d) => `device=${d}`)].join(',');
  try {
    await mountAsync('none', mountpoint, 'erofs', MS_RDONLY, data);
  } catch (err) {
    if (err instanceof NativeError) {
      const hint = err.errno === constants.errno.ENOENT ? ' (the daemon does not know this fsid or one of its blobs)'
        : err.errno === constants.errno.EINVAL ? ' (the kernel refused the options: is EROFS built with CONFIG_EROFS_FS_ONDEMAND, and is a daemon bound to /dev/cachefiles?)'
        : err.errno === constants.errno.EOPNOTSUPP ? ' (this kernel lacks EROFS fscache mode)' : '';
      throw new OndineError('ONDINE_ERR_MOUNT', err.errno, `mount -t erofs -o ${data} none ${mountpoint} failed: ${err.code}${hint}`, { cause: err });
    }
    throw err;
  }
}

export async function umount(mountpoint: string): Promise<void> {
  await umount2Async(mountpoint, 0);
}

/** EROFS mounts in fscache mode, with their fsid and domain. */
export async function listFscacheMounts(): Promise<FscacheMount[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: FscacheMount[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const [fstype, , superOpts] = right.split(' ');
    if (fstype !== 'erofs' || !superOpts) continue;
    const opts = new Map(superOpts.split(',').map((o) => { const i = o.indexOf('='); return i < 0 ? [o, ''] : [o.slice(0, i), o.slice(i + 1)]; }));
    const fsid = opts.get('fsid');
    if (!fsid) continue;
    const mountpoint = unescapeMountPath(left.split(' ')[4]!);
    const domain = opts.get('domain_id');
    out.push({ mountpoint, fsid, ...(domain ? { domain } : {}) });
  }
  return out;
}

/** Every mount in this process's mount table: where, what filesystem, from what source. */
export async function listMounts(): Promise<Array<{ mountpoint: string; fstype: string; source: string }>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: Array<{ mountpoint: string; fstype: string; source: string }> = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const [fstype, source] = right.split(' ');
    out.push({ mountpoint: unescapeMountPath(left.split(' ')[4] ?? ''), fstype: fstype ?? '', source: unescapeMountPath(source ?? '') });
  }
  return out;
}

/** Whether `dir` is a mount point now. */
export async function isMountPoint(dir: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((l) => unescapeMountPath(l.split(' ')[4] ?? '') === dir);
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * A read-only file-backed EROFS mount of `bootstrap` with `devices` as its blobs, in device
 * order: no loop device (over a loop device no pre-content event would ever arrive). `shown`
 * names the files for messages when the kernel is given /proc/self/fd/<n> paths.
 */
export async function mountFileBacked(bootstrap: string, devices: readonly string[], mountpoint: string, shown?: { bootstrap: string; devices: readonly string[] }): Promise<void> {
  try {
    // The new mount API: one `device` key per blob, so neither commas in paths nor the
    // one-page limit of mount(2) options can bite.
    await mountErofsFile(bootstrap, mountpoint, devices);
  } catch (err) {
    if (err instanceof NativeError) {
      // /proc/self/fd/<n> paths mean nothing to a user: name the files they stand for.
      let message = err.message;
      if (shown) {
        message = message.replaceAll(`'${bootstrap}'`, `'${shown.bootstrap}'`);
        devices.forEach((d, i) => { message = message.replaceAll(`'${d}'`, `'${shown.devices[i] ?? d}'`); });
      }
      throw new OndineError('ONDINE_ERR_MOUNT', err.errno, `mounting ${shown?.bootstrap ?? bootstrap} on ${mountpoint} (file-backed EROFS) failed: ${message}`, { cause: err });
    }
    throw err;
  }
}
