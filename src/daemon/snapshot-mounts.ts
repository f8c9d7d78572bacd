// The management API's route for the containerd snapshotter: mount a lazy image from a
// bootstrap containerd already unpacked (a snapshot's image/image.boot) with its blobs read from
// the registry repository an image reference names, and unmount it again. Nothing here touches
// the network: the bootstrap is local, the blobs are fetched when the kernel asks for them.
// Only a repository is taken from the caller (never TLS, proxy or credential settings): how the
// registry is reached comes from the hosts.toml files of the hosts dir (containerd's certs.d).
// fanotify daemons mount file-backed; cachefiles daemons register the image and mount fsid=.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { ImageCatalog } from './catalog.js';
import type { FanotifyMounts } from '../kernel/fanotify/mounts.js';
import { listFscacheMounts, mountFscache, umount } from '../kernel/mounts.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';
import { parseReference } from '../registry/reference.js';
import type { SourceSpec } from '../storage/source-spec.js';
import { MNT_DETACH, NativeError, umount2Async } from '../native/index.js';

export interface SnapshotMountRequest {
  /** The bootstrap file (absolute path). */
  bootstrap: string;
  /** An image reference: its registry and repository hold the blobs. */
  image: string;
  mountpoint: string;
  /** containerd's certs.d (default: the daemon's). */
  hostsDir?: string;
}

export interface SnapshotMountInfo {
  mode: 'fanotify' | 'cachefiles';
  mountpoint: string;
  fsid?: string;
}

export interface SnapshotMountDeps {
  catalog: ImageCatalog;
  fanotify: FanotifyMounts | undefined;
  cachefiles: boolean;
}

function checkPath(name: string, v: unknown): string {
  if (typeof v !== 'string' || !v.startsWith('/') || v.length > 4096 || v.includes('\0')) {
    throw new InvalidArgumentError(`"${name}" must be an absolute path`);
  }
  return resolve(v);
}

export function checkSnapshotMountRequest(v: unknown): SnapshotMountRequest {
  const b = v as Record<string, unknown>;
  if (typeof b !== 'object' || b === null) throw new InvalidArgumentError('a snapshot mount needs "bootstrap", "image" and "mountpoint"');
  if (typeof b.image !== 'string' || b.image.length > 1024) throw new InvalidArgumentError('"image" must be an image reference');
  parseReference(b.image);
  return {
    bootstrap: checkPath('bootstrap', b.bootstrap),
    image: b.image,
    mountpoint: checkPath('mountpoint', b.mountpoint),
    ...(b.hostsDir !== undefined ? { hostsDir: checkPath('hostsDir', b.hostsDir) } : {}),
  };
}

/** The fsid a bootstrap and repository are registered under (stable across calls). */
function fsidFor(bootstrap: string, source: SourceSpec): string {
  return `ondine-s-${createHash('sha256').update(`${bootstrap}\0${JSON.stringify(source)}`).digest('hex').slice(0, 16)}`;
}

export async function snapshotMount(deps: SnapshotMountDeps, req: SnapshotMountRequest): Promise<SnapshotMountInfo> {
  const ref = parseReference(req.image);
  const source: SourceSpec = { kind: 'registry', registry: ref.registry, repository: ref.repository, ...(req.hostsDir ? { hostsDir: req.hostsDir } : {}) };
  if (deps.fanotify) {
    await deps.fanotify.mount({ bootstrap: req.bootstrap, source, ref: ref.toString(), mountpoint: req.mountpoint });
    return { mode: 'fanotify', mountpoint: req.mountpoint };
  }
  if (!deps.cachefiles) throw new InvalidArgumentError('this daemon serves neither fanotify nor cachefiles');
  const fsid = fsidFor(req.bootstrap, source);
  await deps.catalog.add({ fsid, bootstrap: req.bootstrap, source, ref: ref.toString() });
  try {
    await mountFscache(req.mountpoint, fsid);
  } catch (err) {
    if (!(await listFscacheMounts()).some((m) => m.fsid === fsid)) deps.catalog.remove(fsid);
    throw err;
  }
  return { mode: 'cachefiles', mountpoint: req.mountpoint, fsid };
}

/** Unmounts (not detached: a busy mount answers ONDINE_ERR_BUSY and stays served). */
export async function snapshotUmount(deps: SnapshotMountDeps, target: string, detach = false): Promise<void> {
  const mountpoint = checkPath('mountpoint', target);
  if (deps.fanotify?.list().some((m) => m.mountpoint === mountpoint)) {
    await deps.fanotify.umount(mountpoint, { detach });
    return;
  }
  const mnt = (await listFscacheMounts()).find((m) => m.mountpoint === mountpoint);
  if (!mnt || !mnt.fsid.startsWith('ondine-s-')) throw new NotFoundError(`a snapshot mount at ${mountpoint}`);
  try {
    if (detach) await umount2Async(mountpoint, MNT_DETACH);
    else await umount(mountpoint);
  } catch (err) {
    if (err instanceof NativeError && err.code === 'EBUSY') throw new OndineError('ONDINE_ERR_BUSY', err.errno, `${mountpoint} is busy`, { cause: err });
    if (!(err instanceof NativeError && err.code === 'EINVAL')) throw err;
  }
  if (!(await listFscacheMounts()).some((m) => m.fsid === mnt.fsid)) deps.catalog.remove(mnt.fsid);
}
