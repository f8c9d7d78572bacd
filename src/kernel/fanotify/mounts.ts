// The fanotify front end's view of the catalog, and its mounts: for `ondine mount` it stores
// the bootstrap whole, makes one sparse cache file per blob (shared by every image that has
// the blob), marks the incomplete ones for pre-content events BEFORE mounting (a file opened
// unmarked never raises events), and mounts EROFS file-backed over them (no loop device).
// It answers "which cache file is this event about?" by inode, drops the mark of a blob once
// its file has no hole (warm reads then cost no event), and keeps a state file so a
// restarted worker serves the mounts that outlived it. A mount is released (marks, fds,
// record) when the kernel lets go of it (IN_UNMOUNT on its root), not when its mount point
// leaves the mount table: an overlay, a lazy detach or another namespace may still read it,
// and a released mark would hand them zeros. The path itself is free for a new mount at once.
// Blobs come from the image's source: a
// blob directory, or a registry repository (credentials then kept in the 0600 state file, so
// a restarted worker can still fetch, and never listed).
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { parseBootstrap, type Bootstrap } from '../../format/bootstrap.js';
import { checkBootstrapIdentifiers } from '../../format/identifiers.js';
import { InvalidArgumentError, NotFoundError, OndineError } from '../../errors.js';
import { FAN_MARK_ADD, FAN_MARK_REMOVE, FAN_PRE_ACCESS, fanotifyMark, MNT_DETACH, NativeError, umount2Async } from '../../native/index.js';
import type { BlobTableEntry } from '../../format/blob-table.js';
import { ChunkedBlobCache, DEFAULT_READ_AHEAD_MAX, FlatBlobCache, type BlobCache, type BlobHandle } from '../../storage/blob-cache.js';
import type { BlobSource } from '../../storage/blob-source.js';
import type { FlatFileSource } from '../../storage/flat-file-source.js';
import { CacheDir, fdPath, fileComplete, type OpenedCacheFile } from '../../storage/cache-dir.js';
import { describeSource, type SourceSpec } from '../../storage/source-spec.js';
import type { FanotifyTarget, TargetLookup } from './frontend.js';
import { isMountPoint, listMounts, mountFileBacked } from '../mounts.js';
import { checkMountSpecNames } from '../request-names.js';
import { UnmountWatcher } from '../unmount-watch.js';

/** How long `umount` waits for the kernel to let go before it answers (the mount then stays listed, detached). */
const UMOUNT_SETTLE_MS = 2_000;

/** What the mounts need of the image catalog (the daemon's ImageCatalog is one): shared sources and blob handles. */
export interface BlobProvider {
  readonly opts: { amplifyBytes?: number; failedChunkMs?: number };
  flatSource(path: string, size: number): FlatFileSource;
  source(spec: SourceSpec): BlobSource;
  blob(source: BlobSource, entry: BlobTableEntry, bootstrap: Bootstrap): BlobHandle;
}

export interface FanotifyMountSpec {
  bootstrap: string;
  /** Directory of blobs named by id (default: blobs/ beside the bootstrap); ignored with `source`. */
  blobDir?: string;
  /** Where the blobs come from, when not a blob directory (a registry repository). */
  source?: SourceSpec;
  /** The reference the image was pulled by (for listings). */
  ref?: string;
  mountpoint: string;
  /**
   * Flat, uncompressed device images (mkfs.erofs --blobdev) by device tag, or by 1-based
   * device number for devices with an empty tag.
   */
  devices?: Record<string, string>;
}

export interface FanotifyMountInfo {
  mode: 'fanotify';
  mountpoint: string;
  bootstrap: string;
  /** The blob directory, for an image whose blobs are local. */
  blobDir?: string;
  /** Where the blobs come from (a directory, or `<registry>/<repository>`; never credentials). */
  source: string;
  ref?: string;
  /** The bootstrap's copy in the cache directory (what the kernel mounted). */
  bootstrapCache: string;
  blobs: Array<{ id: string; cacheFile: string; complete: boolean }>;
  devices?: Record<string, string>;
  /**
   * The mount point left the mount table but the kernel still uses the filesystem (an overlay's
   * clone, a lazy detach, another namespace): it is served until the kernel lets go.
   */
  detached?: boolean;
}

/** One mount as served: the path it was made at may since hold another mount. */
interface MountRecord {
  /** Who holds its blob files (a mount point can be reused while this one lives on). */
  id: string;
  info: FanotifyMountInfo;
  state: MountState;
  /** The unmount watch on its root; absent when the watch could not be set. */
  wd: number | undefined;
  /** The device of its root (its superblock's), which tells it from a later mount at the same path. */
  dev: number | undefined;
  detached: boolean;
  /** Resolves once the record is released. */
  released: Promise<void>;
  release: () => void;
}

interface BlobFile {
  /** The blob id, or `device:<key>` for a flat device image. */
  blobId: string;
  path: string;
  /** Read-only fd for presence checks (SEEK_HOLE); opening and seeking raise no event. */
  fd: number;
  cache: BlobCache;
  flat?: FlatFileSource;
  marked: boolean;
  users: Set<string>;
  target: FanotifyTarget;
}

/** What a mount is made of: enough to serve it again after a worker restart. */
interface MountState {
  mountpoint: string;
  bootstrap: string;
  bootstrapCache?: string;
  blobDir: string;
  /** Absent in state files written before registry sources: the blob directory. */
  source?: SourceSpec;
  ref?: string;
  devices?: Record<string, string>;
}

/** Written 0600: a registry source's credentials are in it. */
interface StateFile {
  version: 1;
  cacheDir: string;
  mounts: MountState[];
}

export class FanotifyMounts implements TargetLookup {
  private readonly byIno = new Map<string, BlobFile>();
  private readonly blobs = new Map<string, BlobFile>();
  /** By record id; each with what it is made of (with credentials: never listed, only saved). */
  private readonly records = new Map<string, MountRecord>();
  private seq = 0;
  private readonly watcher: UnmountWatcher | undefined;
  /**
   * Mount points with a mount() under way: two at once would both find the directory free,
   * stack two mounts there under one user, and the first umount would drop the marks the
   * other still needs (its holes would then read as zeros).
   */
  private readonly mounting = new Set<string>();
  readonly dir: CacheDir;

  constructor(
    private readonly catalog: BlobProvider,
    cacheDir: string,
    private readonly group: number,
    private readonly statePath: string,
    private readonly log?: Logger,
  ) {
    this.dir = new CacheDir(cacheDir);
    try {
      this.watcher = new UnmountWatcher(log);
    } catch (err) {
      // Without it a mount is released by `ondine umount` only, as before.
      log?.error({ err }, 'inotify is not available: mounts are released only by ondine umount');
    }
  }

  /**
   * Marks detached the mounts whose mount point left the mount table (a plain `umount DIR`),
   * so a listing says so; they stay served until the kernel lets go.
   */
  async refresh(): Promise<void> {
    const table = await listMounts();
    // Known by the device of its root, not by the source the table shows: the kernel was given
    // /proc/self/fd/<n>, a number another mount may show later.
    const erofsAt = new Set(table.filter((m) => m.fstype === 'erofs').map((m) => m.mountpoint));
    for (const r of this.records.values()) {
      if (r.detached) continue;
      const attached = erofsAt.has(r.info.mountpoint) && (r.dev === undefined || statSync(r.info.mountpoint, { throwIfNoEntry: false })?.dev === r.dev);
      if (!attached) this.detach(r);
    }
  }

  /** The record mounted at `mountpoint` as far as this daemon knows (not detached). */
  private attachedAt(mountpoint: string): MountRecord | undefined {
    for (const r of this.records.values()) if (!r.detached && r.info.mountpoint === mountpoint) return r;
    return undefined;
  }

  byInode(dev: number | bigint, ino: number | bigint): FanotifyTarget | undefined {
    return this.byIno.get(`${dev}:${ino}`)?.target;
  }

  list(): FanotifyMountInfo[] {
    return [...this.records.values()].map(({ info: m, detached }) => ({
      ...m,
      blobs: m.blobs.map((b) => ({ ...b, complete: !(this.blobs.get(b.id)?.marked ?? false) })),
      ...(detached ? { detached: true } : {}),
    }));
  }

  /** Mounts an image lazily; on any failure nothing stays mounted or marked for it. */
  /**
   * Mounts `spec`. `parsed` is the bootstrap already parsed and checked by whoever fetched it
   * (a mount by reference: the pull): it must be the file at `spec.bootstrap`, and it is not
   * read or parsed again. Never from an API caller's body (the daemon's own objects only).
   */
  async mount(spec: FanotifyMountSpec, parsed?: Bootstrap): Promise<FanotifyMountInfo> {
    checkMountSpecNames(spec);
    const mountpoint = resolve(spec.mountpoint);
    const st = statSync(mountpoint, { throwIfNoEntry: false });
    if (!st) throw new NotFoundError(`mount point ${mountpoint} (create the directory first)`);
    if (!st.isDirectory()) throw new InvalidArgumentError(`mount point ${mountpoint} is not a directory`);
    if (this.mounting.has(mountpoint)) throw this.busy(mountpoint);
    this.mounting.add(mountpoint);
    try {
      const before = this.attachedAt(mountpoint);
      if (before) {
        if (await isMountPoint(mountpoint)) throw this.busy(mountpoint);
        // A plain `umount DIR` took it out of the mount table: the path is free, the
        // filesystem is served until the kernel lets go of it.
        this.detach(before);
      }
      return await this.mountAt(mountpoint, spec, parsed);
    } finally {
      this.mounting.delete(mountpoint);
    }
  }

  private busy(mountpoint: string): OndineError {
    return new OndineError('ONDINE_ERR_BUSY', constants.errno.EBUSY, `${mountpoint} is already a mount point; unmount it first`);
  }

  private async mountAt(mountpoint: string, spec: FanotifyMountSpec, parsed?: Bootstrap): Promise<FanotifyMountInfo> {
    if (await isMountPoint(mountpoint)) throw this.busy(mountpoint);
    const bootstrapPath = resolve(spec.bootstrap);
    const blobDir = resolve(spec.blobDir ?? resolve(bootstrapPath, '..', 'blobs'));
    const source: SourceSpec = spec.source ?? { kind: 'local', dir: blobDir };
    const { bootstrap, cache } = await this.loadBootstrap(bootstrapPath, parsed);
    const cachePath = cache.path;
    const id = this.newId();
    const files: BlobFile[] = [];
    try {
      for (let i = 0; i < bootstrap.devices.length; i++) files.push(this.acquire(bootstrap, i, source, id, spec.devices));
      // The kernel opens exactly the files checked and marked here, through their fds.
      await mountFileBacked(fdPath(cache.fd), files.map((f) => fdPath(f.fd)), mountpoint, { bootstrap: cachePath, devices: files.map((f) => f.path) });
    } catch (err) {
      for (const f of files) this.release(f, id);
      throw err;
    } finally {
      closeSync(cache.fd);
    }
    const state: MountState = {
      mountpoint, bootstrap: bootstrapPath, blobDir, source,
      ...(spec.ref ? { ref: spec.ref } : {}), ...(spec.devices ? { devices: spec.devices } : {}),
    };
    const info = this.record(id, state, cachePath, files).info;
    this.save();
    this.log?.info({ mountpoint, bootstrap: bootstrapPath, source: info.source, ...(spec.ref ? { ref: spec.ref } : {}), blobs: files.length, marked: files.filter((f) => f.marked).length }, 'mounted (fanotify)');
    return info;
  }

  /**
   * Unmounts; the marks and fds no other mount needs are released once the kernel lets go of
   * the filesystem, which is at once unless something else still uses it (then the mount stays
   * listed, detached, until it does).
   */
  async umount(target: string, opts: { detach?: boolean } = {}): Promise<void> {
    const mountpoint = resolve(target);
    const r = this.attachedAt(mountpoint);
    if (!r) throw new NotFoundError(`an Ondine fanotify mount at ${mountpoint}`);
    try {
      await umount2Async(mountpoint, opts.detach ? MNT_DETACH : 0);
    } catch (err) {
      if (err instanceof NativeError && err.code === 'EBUSY') {
        throw new OndineError('ONDINE_ERR_BUSY', err.errno, `${mountpoint} is busy (a process has files open there); close them and retry`, { cause: err });
      }
      if (!(err instanceof NativeError && err.code === 'EINVAL')) throw err; // EINVAL: already unmounted
    }
    if (r.wd === undefined) {
      this.forget(r);
      this.log?.info({ mountpoint }, 'unmounted (fanotify)');
      return;
    }
    this.detach(r);
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([r.released.then(() => true), new Promise<false>((res) => { timer = setTimeout(() => res(false), UMOUNT_SETTLE_MS); })]);
    clearTimeout(timer);
    this.log?.info({ mountpoint, released: settled }, settled ? 'unmounted (fanotify)' : 'unmounted (fanotify); the filesystem is still in use elsewhere (an overlay, a lazy detach, another namespace): served until the kernel lets go');
  }

  /**
   * For a stop: detaches every mount and releases all at once (the group closes next, so
   * nothing could be served anyway).
   */
  async umountAll(): Promise<void> {
    for (const r of [...this.records.values()]) {
      if (!r.detached) {
        await umount2Async(r.info.mountpoint, MNT_DETACH).catch((err: unknown) => {
          if (!(err instanceof NativeError && err.code === 'EINVAL')) this.log?.error({ err, mountpoint: r.info.mountpoint }, 'unmount failed');
        });
      }
      this.forget(r);
    }
  }

  private newId(): string {
    return `m${++this.seq}`;
  }

  /** The mount point left the mount table; the filesystem may live on. */
  private detach(r: MountRecord): void {
    if (r.detached) return;
    r.detached = true;
    this.save();
    this.log?.info({ mountpoint: r.info.mountpoint }, 'mount point released; serving the filesystem until the kernel lets go');
  }

  /** IN_UNMOUNT: the superblock is gone, nobody can read through it any more. */
  private onGone(id: string): void {
    const r = this.records.get(id);
    if (!r) return;
    r.wd = undefined;
    this.forget(r);
    this.log?.info({ mountpoint: r.info.mountpoint }, 'the kernel let go of the filesystem: marks and fds released');
  }

  /**
   * Rebuilds from the state file what a previous worker served (marks survive in the group
   * the supervisor holds): mounts no longer in the kernel are dropped.
   */
  async restore(): Promise<void> {
    let state: StateFile | null;
    try {
      state = JSON.parse(readFileSync(this.statePath, 'utf8')) as StateFile | null;
    } catch {
      return;
    }
    if (!state || !Array.isArray(state.mounts)) return;
    if (state.cacheDir !== this.dir.cacheDir) {
      this.log?.error({ state: state.cacheDir, now: this.dir.cacheDir }, 'the state file is for another cache directory: not restored');
      return;
    }
    for (const m of state.mounts) {
      if (!(await isMountPoint(m.mountpoint))) continue;
      const taken: BlobFile[] = [];
      const id = this.newId();
      try {
        // The copy in the cache directory is what the kernel mounted; the original may be gone.
        const { bootstrap, cache } = await this.loadBootstrap(m.bootstrapCache ?? m.bootstrap);
        closeSync(cache.fd);
        const cachePath = cache.path;
        const source: SourceSpec = m.source ?? { kind: 'local', dir: m.blobDir };
        const files = bootstrap.devices.map((_, i) => {
          const f = this.acquire(bootstrap, i, source, id, m.devices);
          taken.push(f);
          return f;
        });
        this.record(id, m, cachePath, files);
      } catch (err) {
        for (const f of taken) this.release(f, id);
        this.log?.error({ err, mountpoint: m.mountpoint }, 'could not restore a mount: its uncached reads get EIO');
      }
    }
    this.log?.info({ mounts: this.records.size }, 'restored mounts from the state file');
    this.save();
  }

  /** Records a mount (made now, or restored) as served by these cache files, and watches its root. */
  private record(id: string, m: MountState, bootstrapCache: string, files: readonly BlobFile[]): MountRecord {
    const source: SourceSpec = m.source ?? { kind: 'local', dir: m.blobDir };
    const info: FanotifyMountInfo = {
      mode: 'fanotify', mountpoint: m.mountpoint, bootstrap: m.bootstrap,
      ...(source.kind === 'local' ? { blobDir: m.blobDir } : {}),
      source: describeSource(source),
      ...(m.ref ? { ref: m.ref } : {}),
      bootstrapCache,
      blobs: files.map((f) => ({ id: f.blobId, cacheFile: f.path, complete: !f.marked })),
      ...(m.devices ? { devices: m.devices } : {}),
    };
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    const dev = statSync(m.mountpoint, { throwIfNoEntry: false })?.dev;
    const r: MountRecord = { id, info, state: { ...m, bootstrapCache }, wd: undefined, dev, detached: false, released, release };
    this.records.set(id, r);
    try {
      r.wd = this.watcher?.watch(m.mountpoint, () => this.onGone(id));
    } catch (err) {
      this.log?.warn({ err, mountpoint: m.mountpoint }, 'cannot watch the mount for its unmount: released by ondine umount only');
    }
    return r;
  }

  /** The bootstrap at `path` (or its parse, when the caller has one), checked, and its copy in the cache directory. */
  private async loadBootstrap(path: string, parsed?: Bootstrap): Promise<{ bootstrap: Bootstrap; cache: OpenedCacheFile }> {
    let bootstrap = parsed;
    if (!bootstrap) {
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch {
        throw new NotFoundError(`bootstrap ${path}`);
      }
      bootstrap = parseBootstrap(bytes);
    }
    // Checked here whoever parsed it: these are the mount's own conditions.
    if (bootstrap.blockSize !== 4096) throw new InvalidArgumentError(`block size ${bootstrap.blockSize}: file-backed lazy mounts need the page size (4096)`);
    checkBootstrapIdentifiers(bootstrap, `bootstrap ${path}`);
    return { bootstrap, cache: this.dir.openBootstrap(bootstrap.buf) };
  }

  /** The cache file of device i's blob, made and marked if new; `user` now holds it. */
  private acquire(bootstrap: Bootstrap, i: number, source: SourceSpec, user: string, devices?: Record<string, string>): BlobFile {
    const tag = bootstrap.devices[i]?.tag ?? '';
    const flatPath = devices?.[tag || String(i + 1)] ?? (tag ? undefined : devices?.[String(i + 1)]);
    const entry = flatPath === undefined ? bootstrap.blobs[i] : undefined;
    if (flatPath === undefined && !entry) {
      throw new InvalidArgumentError(`device ${i + 1}${tag ? ` (${tag})` : ''} has no blob table entry: it is a flat device image (mkfs.erofs --blobdev); give its path with --device ${tag || i + 1}=<file>`);
    }
    let flat: FlatFileSource | undefined;
    let key: string;
    let size: number;
    if (flatPath !== undefined) {
      const st = statSync(flatPath, { throwIfNoEntry: false });
      if (!st?.isFile()) throw new NotFoundError(`device image ${flatPath}`);
      flat = this.catalog.flatSource(flatPath, st.size);
      // A flat image is known by where it is and what it was: a changed file is another cache.
      // 56 hex digits (224 bits) keep the name within the 64 characters of a cache file name.
      key = `device-${createHash('sha256').update(`${flat.path}\0${st.size}\0${st.mtimeMs}`).digest('hex').slice(0, 56)}`;
      size = st.size;
    } else {
      key = entry!.blobId;
      size = entry!.uncompressedSize;
    }
    let f = this.blobs.get(key);
    if (!f) {
      const { fd, path } = this.dir.openBlob(key, size);
      let marked = false;
      try {
        if (!fileComplete(fd)) {
          // On the fd opened (beneath the cache dir, no links): the file the kernel will read.
          fanotifyMark(this.group, FAN_MARK_ADD, FAN_PRE_ACCESS, fd, null);
          marked = true;
        }
      } catch (err) {
        closeSync(fd);
        if (err instanceof NativeError && (err.code === 'EOPNOTSUPP' || err.code === 'EINVAL')) {
          throw new OndineError('ONDINE_ERR_CACHE_DIR', err.errno, `the filesystem of ${this.dir.cacheDir} refuses fanotify pre-content marks (tmpfs and overlayfs do); use a cache directory on ext4, xfs or btrfs`, { cause: err });
        }
        throw err;
      }
      const st = fstatSync(fd);
      let cache: BlobCache;
      if (flat) {
        const src = flat;
        cache = new FlatBlobCache(src.size, (o, n) => src.read(o, Math.min(n, src.size - o)));
      } else {
        const handle = this.catalog.blob(this.catalog.source(source), entry!, bootstrap);
        // Loading the chunk map costs a range read of the blob's chunk-info table (a round
        // trip to the registry) and ~10-40 ms of decoding for app1's blobs: started now, so
        // the first read does not wait for it. A failure is forgotten by the handle; the first
        // fill tries again.
        if (marked) void handle.chunkReader().catch(() => undefined);
        // Completion is checked when the last chunk lands, which may be read-ahead written
        // after the last event was answered (no later event would ever ask).
        cache = new ChunkedBlobCache(entry!.uncompressedSize, handle, {
          amplifyBytes: this.catalog.opts.amplifyBytes ?? DEFAULT_READ_AHEAD_MAX,
          ...(this.catalog.opts.failedChunkMs !== undefined ? { failedChunkMs: this.catalog.opts.failedChunkMs } : {}),
          onComplete: () => this.maybeComplete(file),
        });
      }
      const file: BlobFile = {
        blobId: key, path, fd, cache, marked, users: new Set(),
        target: { label: flat ? `device:${flat.path}` : `blob:${key.slice(0, 12)}`, cache },
        ...(flat ? { flat } : {}),
      };
      f = file;
      this.blobs.set(key, f);
      this.byIno.set(`${st.dev}:${st.ino}`, f);
    }
    f.users.add(user);
    return f;
  }

  /** Drops the mark of a blob whose cache file has no hole left: warm reads cost no event. */
  private maybeComplete(f: BlobFile): void {
    if (!f.marked || !f.cache.complete || this.blobs.get(f.blobId) !== f || !fileComplete(f.fd)) return;
    try {
      fanotifyMark(this.group, FAN_MARK_REMOVE, FAN_PRE_ACCESS, f.fd, null);
    } catch (err) {
      if (!(err instanceof NativeError && err.code === 'ENOENT')) {
        this.log?.warn({ err, blob: f.blobId }, 'removing the mark of a complete blob failed');
        return;
      }
    }
    f.marked = false;
    this.log?.info({ blob: f.blobId }, 'blob complete: mark removed');
  }

  private release(f: BlobFile, user: string): void {
    f.users.delete(user);
    if (f.users.size > 0) return;
    if (f.marked) {
      try {
        fanotifyMark(this.group, FAN_MARK_REMOVE, FAN_PRE_ACCESS, f.fd, null);
      } catch (err) {
        this.log?.warn({ err, blob: f.blobId }, 'removing a mark failed');
      }
    }
    this.blobs.delete(f.blobId);
    for (const [k, v] of this.byIno) if (v === f) this.byIno.delete(k);
    closeSync(f.fd);
  }

  private forget(r: MountRecord): void {
    if (this.records.get(r.id) !== r) return;
    if (r.wd !== undefined) this.watcher?.unwatch(r.wd);
    r.wd = undefined;
    for (const b of r.info.blobs) {
      const f = this.blobs.get(b.id);
      if (f) this.release(f, r.id);
    }
    this.records.delete(r.id);
    this.save();
    r.release();
  }

  private save(): void {
    const state: StateFile = {
      version: 1,
      cacheDir: this.dir.cacheDir,
      // Not the detached ones: their path may hold another mount by now, which a restarted
      // worker would take for theirs.
      mounts: [...this.records.values()].filter((r) => !r.detached).map((r) => r.state),
    };
    const tmp = `${this.statePath}.new`;
    writeFileSync(tmp, JSON.stringify(state, null, 1), { mode: 0o600 });
    // The mode above applies only to a new file: a leftover one keeps its own.
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.statePath);
  }

  close(): void {
    this.watcher?.close();
    for (const f of this.blobs.values()) {
      try { closeSync(f.fd); } catch { /* closed */ }
    }
    this.blobs.clear();
    this.byIno.clear();
  }
}
