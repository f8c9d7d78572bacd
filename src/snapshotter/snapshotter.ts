// The Snapshots semantics, independent of gRPC: containerd's overlayfs snapshotter for plain
// layers (a bind mount without parent, else overlay of the parents' fs dirs under a fresh
// upper/work; views read-only), plus the remote-snapshot contract for Nydus images (data
// layers committed here without content, the bootstrap applied by containerd, an EROFS mount
// of it as the lower of whatever stands on it).
// Each call checks, then changes the metadata synchronously and durably; anything that waits
// (a daemon mount, a disk-usage walk) happens before that step, and everything is checked
// again after it. Remove answers at once: directories go in the background, and an EROFS
// mount goes once its last user is gone.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isMountPoint } from '../kernel/mounts.js';
import type { DaemonLink } from './daemon-link.js';
import { exists, invalid, notFound, precondition } from './errors.js';
import { matches, parseFilter } from './filters.js';
import { checkKey, checkLabels, imageRefOf, isNydusBlob, isNydusBootstrap, LABEL_REF, LABEL_REMOTE } from './labels.js';
import { LazyMounts } from './lazy-mounts.js';
import { MetadataStore, type SnapshotRecord } from './metadata.js';
import { diskUsage } from './usage.js';

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** What containerd is told of a snapshot: its record's public fields. */
export type Info = Pick<SnapshotRecord, 'name' | 'parent' | 'kind' | 'createdMs' | 'updatedMs' | 'labels'>;

export interface SnapshotterOptions {
  root: string;
  daemon: DaemonLink;
  hostsDir: string;
  log: Logger;
}

export class Snapshotter {
  readonly store: MetadataStore;
  readonly lazy: LazyMounts;
  private readonly log: Logger;
  /** overlayfs takes index=off where the module has the option (as containerd does). */
  private readonly indexOff = existsSync('/sys/module/overlay/parameters/index');
  /** Background removals still running (Cleanup and tests wait for them). */
  private readonly removals = new Set<Promise<void>>();

  constructor(private readonly o: SnapshotterOptions) {
    this.log = o.log;
    this.store = new MetadataStore(o.root);
    mkdirSync(join(o.root, 'snapshots'), { recursive: true, mode: 0o700 });
    mkdirSync(join(o.root, 'trash'), { recursive: true, mode: 0o700 });
    this.lazy = new LazyMounts({ root: o.root, daemon: o.daemon, hostsDir: o.hostsDir, log: o.log, inUse: (b) => this.store.all().some((r) => r.lazy === b && r.kind !== 'committed') });
  }

  private dir(r: { id: number }): string {
    return join(this.o.root, 'snapshots', String(r.id));
  }

  private info(r: SnapshotRecord): Info {
    return { name: r.name, parent: r.parent, kind: r.kind, createdMs: r.createdMs, updatedMs: r.updatedMs, labels: { ...r.labels } };
  }

  private committedParent(parent: string): SnapshotRecord | undefined {
    if (!parent) return undefined;
    const p = this.store.get(parent);
    if (!p) throw notFound(`parent snapshot ${parent}`);
    if (p.kind !== 'committed') throw invalid(`parent ${parent} is not a committed snapshot`);
    return p;
  }

  /** The lower dirs a snapshot over `parent` sees, nearest first, and the bootstrap it stands on. */
  private chain(parent: string): { lowers: SnapshotRecord[]; bootstrap?: SnapshotRecord } {
    const lowers: SnapshotRecord[] = [];
    for (let name = parent; name;) {
      const r = this.store.get(name);
      if (!r) throw notFound(`snapshot ${name} in the parent chain`);
      if (r.bootstrap && r.kind === 'committed') return { lowers, bootstrap: r };
      lowers.push(r);
      name = r.parent;
      if (lowers.length > 4096) throw precondition('parent chain longer than 4096 snapshots');
    }
    return { lowers };
  }

  /** Prepare (active) and View: a new snapshot over `parent`; its mounts. */
  async create(kind: 'active' | 'view', keyIn: unknown, parentIn: unknown, labelsIn: unknown): Promise<Mount[]> {
    const key = checkKey('key', keyIn);
    const parent = checkKey('parent', parentIn, true);
    const labels = checkLabels(labelsIn);
    if (kind === 'active' && labels[LABEL_REF] && isNydusBlob(labels)) return this.commitRemote(key, parent, labels);
    if (this.store.get(key)) throw exists(`snapshot ${key}`);
    this.committedParent(parent);
    const image = imageRefOf(labels);
    let { bootstrap } = this.chain(parent);
    // The wait for the daemon comes before the record: a failed mount leaves nothing behind.
    if (bootstrap) await this.lazy.ensure(bootstrap);
    if (this.store.get(key)) throw exists(`snapshot ${key}`);
    this.committedParent(parent);
    bootstrap = this.chain(parent).bootstrap;
    const now = Date.now();
    const rec: SnapshotRecord = {
      id: this.store.allocateId(), name: key, parent, kind, createdMs: now, updatedMs: now, labels,
      ...(isNydusBootstrap(labels) ? { bootstrap: image ? { image } : {} } : {}),
      ...(bootstrap ? { lazy: bootstrap.name } : {}),
    };
    this.makeDirs(rec);
    this.store.apply({ put: [rec] });
    if (bootstrap) this.log.info({ key, kind, chainId: bootstrap.name }, 'snapshot over a lazy image');
    return this.mountsOf(rec);
  }

  /**
   * A Nydus data layer: its content is read from the registry through the bootstrap's EROFS
   * mount, so the snapshot is committed here under the chain id containerd named, empty, and
   * containerd is told it exists (it then skips fetching and applying the layer).
   */
  private commitRemote(key: string, parent: string, labels: Record<string, string>): never {
    const target = checkKey(LABEL_REF, labels[LABEL_REF]);
    if (this.store.get(target)) throw exists(`target snapshot ${target}`);
    if (this.store.get(key)) throw exists(`snapshot ${key}`);
    this.committedParent(parent);
    const image = imageRefOf(labels);
    const now = Date.now();
    const rec: SnapshotRecord = {
      id: this.store.allocateId(), name: target, parent, kind: 'committed', createdMs: now, updatedMs: now,
      labels: { ...labels, [LABEL_REMOTE]: 'remote' }, remote: true, usage: { size: 0, inodes: 0 },
    };
    this.makeDirs(rec);
    this.store.apply({ put: [rec] });
    this.log.info({ chainId: target, image, parent: parent || undefined }, 'Nydus data layer committed remotely (not downloaded)');
    throw exists(`target snapshot ${target}`);
  }

  private makeDirs(rec: SnapshotRecord): void {
    const d = this.dir(rec);
    // An id handed out before a crash, whose record never became durable, may have a dir.
    rmSync(d, { recursive: true, force: true });
    mkdirSync(join(d, 'fs'), { recursive: true, mode: 0o755 });
    if (rec.kind === 'active') mkdirSync(join(d, 'work'), { mode: 0o711 });
  }

  private mountsOf(rec: SnapshotRecord): Mount[] {
    const { lowers, bootstrap } = this.chain(rec.parent);
    const dirs = lowers.map((l) => join(this.dir(l), 'fs'));
    if (bootstrap) dirs.push(this.lazy.mountpoint(bootstrap));
    const ro = rec.kind === 'view';
    if (!dirs.length) return [{ type: 'bind', source: join(this.dir(rec), 'fs'), options: [ro ? 'ro' : 'rw', 'rbind'] }];
    if (ro && dirs.length === 1) return [{ type: 'bind', source: dirs[0]!, options: ['ro', 'rbind'] }];
    const options = this.indexOff ? ['index=off'] : [];
    if (!ro) options.push(`workdir=${join(this.dir(rec), 'work')}`, `upperdir=${join(this.dir(rec), 'fs')}`);
    options.push(`lowerdir=${dirs.join(':')}`);
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  async mounts(keyIn: unknown): Promise<Mount[]> {
    const key = checkKey('key', keyIn);
    const rec = this.store.get(key);
    if (!rec) throw notFound(`snapshot ${key}`);
    if (rec.kind === 'committed') throw precondition(`snapshot ${key} is committed: only active and view snapshots have mounts`);
    const { bootstrap } = this.chain(rec.parent);
    if (bootstrap) await this.lazy.ensure(bootstrap);
    const again = this.store.get(key);
    if (!again) throw notFound(`snapshot ${key}`);
    return this.mountsOf(again);
  }

  async commit(nameIn: unknown, keyIn: unknown, labelsIn: unknown): Promise<void> {
    const name = checkKey('name', nameIn);
    const key = checkKey('key', keyIn);
    const labels = checkLabels(labelsIn);
    const check = () => {
      const rec = this.store.get(key);
      if (!rec) throw notFound(`snapshot ${key}`);
      if (rec.kind !== 'active') throw precondition(`snapshot ${key} is not active`);
      if (this.store.get(name)) throw exists(`snapshot ${name}`);
      return rec;
    };
    const before = check();
    const usage = await diskUsage(join(this.dir(before), 'fs'));
    const rec = check();
    if (rec.id !== before.id) throw precondition(`snapshot ${key} changed during commit`);
    const image = imageRefOf(labels) ?? rec.bootstrap?.image;
    const isBootstrap = rec.bootstrap || isNydusBootstrap(labels);
    const committed: SnapshotRecord = {
      id: rec.id, name, parent: rec.parent, kind: 'committed', createdMs: Date.now(), updatedMs: Date.now(), labels, usage,
      ...(isBootstrap ? { bootstrap: image ? { image } : {} } : {}),
    };
    if (isBootstrap && !existsSync(join(this.dir(rec), 'fs', 'image', 'image.boot'))) {
      throw precondition(`snapshot ${key} is labelled a Nydus bootstrap layer but has no image/image.boot`);
    }
    this.store.apply({ remove: [key], put: [committed] });
    if (isBootstrap) this.log.info({ chainId: name, image }, 'Nydus bootstrap layer committed');
    if (rec.lazy) this.releaseLazy(rec.lazy);
    rm(join(this.dir(rec), 'work'), { recursive: true, force: true }).catch(() => undefined);
  }

  private releaseLazy(bootstrapName: string): void {
    const b = this.store.get(bootstrapName);
    if (b) this.lazy.release(b);
  }

  /** Forgets the snapshot durably and answers; its directory goes in the background. */
  remove(keyIn: unknown): void {
    const key = checkKey('key', keyIn);
    const rec = this.store.get(key);
    if (!rec) throw notFound(`snapshot ${key}`);
    const kids = this.store.children(key);
    if (kids.length) throw precondition(`cannot remove snapshot ${key}: ${kids.length} snapshot${kids.length > 1 ? 's' : ''} stand${kids.length > 1 ? '' : 's'} on it`);
    this.store.apply({ remove: [key] });
    if (rec.lazy) this.releaseLazy(rec.lazy);
    if (rec.bootstrap) this.lazy.release(rec, true);
    this.track(this.discard(rec.id));
  }

  private track(p: Promise<void>): void {
    this.removals.add(p);
    void p.finally(() => this.removals.delete(p));
  }

  private async discard(id: number): Promise<void> {
    const from = join(this.o.root, 'snapshots', String(id));
    const to = join(this.o.root, 'trash', `${id}-${Date.now()}`);
    try {
      renameSync(from, to);
    } catch {
      return;
    }
    await rm(to, { recursive: true, force: true }).catch((err: unknown) => this.log.warn({ err, dir: to }, 'removing a snapshot dir failed; Cleanup retries'));
  }

  /** Background removals finish (for Cleanup and tests). */
  async settled(): Promise<void> {
    while (this.removals.size) await Promise.all([...this.removals]);
  }

  stat(keyIn: unknown): Info {
    const key = checkKey('key', keyIn);
    const rec = this.store.get(key);
    if (!rec) throw notFound(`snapshot ${key}`);
    return this.info(rec);
  }

  update(nameIn: unknown, labelsIn: unknown, paths: readonly string[]): Info {
    const name = checkKey('name', nameIn);
    const labels = checkLabels(labelsIn);
    const rec = this.store.get(name);
    if (!rec) throw notFound(`snapshot ${name}`);
    let next: Record<string, string> = { ...rec.labels };
    if (!paths.length) next = labels;
    for (const p of paths) {
      if (p === 'labels') next = { ...labels };
      else if (p.startsWith('labels.')) {
        const k = p.slice('labels.'.length);
        if (k in labels) next[k] = labels[k]!;
        else delete next[k];
      } else throw invalid(`cannot update ${JSON.stringify(p)} field on snapshot ${name}`);
    }
    checkLabels(next);
    const updated: SnapshotRecord = { ...rec, labels: next, updatedMs: Date.now() };
    this.store.apply({ put: [updated] });
    return this.info(updated);
  }

  list(filters: readonly string[]): Info[] {
    const parsed = filters.filter((f) => f !== '').map(parseFilter);
    return this.store.all().filter((r) => matches(r, parsed)).map((r) => this.info(r));
  }

  async usage(keyIn: unknown): Promise<{ size: number; inodes: number }> {
    const key = checkKey('key', keyIn);
    const rec = this.store.get(key);
    if (!rec) throw notFound(`snapshot ${key}`);
    if (rec.kind === 'committed') return rec.usage ?? { size: 0, inodes: 0 };
    // The upper dir only: an EROFS lower is the registry's bytes, not this node's disk.
    return diskUsage(join(this.dir(rec), 'fs'));
  }

  /** Reclaims what no record names: snapshot dirs, the trash, EROFS mounts without users. */
  async cleanup(): Promise<void> {
    await this.settled();
    const ids = new Set(this.store.all().map((r) => String(r.id)));
    for (const name of readdirSync(join(this.o.root, 'snapshots'))) {
      if (!ids.has(name)) this.track(this.discard(Number(name)));
    }
    for (const name of readdirSync(join(this.o.root, 'trash'))) {
      this.track(rm(join(this.o.root, 'trash', name), { recursive: true, force: true }).catch(() => undefined));
    }
    const lazyRoot = join(this.o.root, 'lazy');
    const byId = new Map(this.store.all().map((r) => [String(r.id), r]));
    for (const name of existsSync(lazyRoot) ? readdirSync(lazyRoot) : []) {
      const b = byId.get(name);
      if (b?.bootstrap) this.lazy.release(b);
      else if (/^[0-9]+$/.test(name) && await isMountPoint(join(lazyRoot, name))) {
        this.lazy.release({ id: Number(name), name: `(gone ${name})`, parent: '', kind: 'committed', createdMs: 0, updatedMs: 0, labels: {}, bootstrap: {} }, true);
      }
    }
    await this.settled();
  }
}
