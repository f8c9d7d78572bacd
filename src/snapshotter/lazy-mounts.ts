// The EROFS mounts lazy images run on: one per bootstrap snapshot, at <root>/lazy/<id>, made
// by the daemon from the image/image.boot containerd unpacked into that snapshot, with blobs
// from the image's registry repository. Made at the first Prepare/View that needs it (several
// callers at once share one request), and unmounted in the background once no active or view
// snapshot stands on it any more. Nothing here waits on the network: the daemon mounts from a
// local bootstrap, and every daemon call has a deadline.
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isMountPoint } from '../kernel/mounts.js';
import type { DaemonLink } from './daemon-link.js';
import { precondition } from './errors.js';
import { LABEL_IMAGE_REF } from './labels.js';
import type { SnapshotRecord } from './metadata.js';

export interface LazyMountsOptions {
  root: string;
  daemon: DaemonLink;
  hostsDir: string;
  log: Logger;
  /** Whether a bootstrap snapshot still has users (active/view snapshots standing on it). */
  inUse(bootstrapName: string): boolean;
}

export class LazyMounts {
  private readonly pending = new Map<number, Promise<string>>();
  private readonly releasing = new Set<number>();

  constructor(private readonly o: LazyMountsOptions) {}

  mountpoint(b: SnapshotRecord): string {
    return join(this.o.root, 'lazy', String(b.id));
  }

  /** The bootstrap's EROFS mount point, mounting it first if it is not mounted. */
  ensure(b: SnapshotRecord): Promise<string> {
    const running = this.pending.get(b.id);
    if (running) return running;
    const p = this.mount(b).finally(() => this.pending.delete(b.id));
    this.pending.set(b.id, p);
    return p;
  }

  private async mount(b: SnapshotRecord): Promise<string> {
    const mp = this.mountpoint(b);
    if (await isMountPoint(mp)) return mp;
    const image = b.bootstrap?.image;
    if (!image) {
      throw precondition(`snapshot ${b.name} holds a Nydus bootstrap but was pulled without ${LABEL_IMAGE_REF}, so where its blobs are is unknown: pull it through CRI, nerdctl or ctr-remote`);
    }
    await this.o.daemon.checkNamespace();
    mkdirSync(mp, { recursive: true, mode: 0o755 });
    const started = Date.now();
    await this.o.daemon.mount({ bootstrap: join(this.o.root, 'snapshots', String(b.id), 'fs', 'image', 'image.boot'), image, mountpoint: mp, hostsDir: this.o.hostsDir });
    this.o.log.info({ chainId: b.name, image, mountpoint: mp, ms: Date.now() - started }, 'lazy image mounted: this chain runs lazily');
    return mp;
  }

  /**
   * In the background: unmounts the bootstrap's EROFS mount if nothing stands on it any more.
   * A mount still busy (containerd has not unmounted the overlay yet) is tried again a few
   * times, then left to Cleanup.
   */
  release(b: SnapshotRecord, force = false): void {
    if (this.releasing.has(b.id)) return;
    this.releasing.add(b.id);
    void (async () => {
      try {
        for (let attempt = 0; attempt < 5; attempt++) {
          if (!force && this.o.inUse(b.name)) return;
          if (this.pending.has(b.id)) return;
          const mp = this.mountpoint(b);
          if (!(await isMountPoint(mp))) {
            try { rmdirSync(mp); } catch { /* absent */ }
            return;
          }
          try {
            await this.o.daemon.umount(mp);
            try { rmdirSync(mp); } catch { /* absent */ }
            this.o.log.info({ chainId: b.name, mountpoint: mp }, 'lazy image unmounted: its last user is gone');
            return;
          } catch (err) {
            this.o.log.warn({ chainId: b.name, mountpoint: mp, err: { code: (err as { code?: string }).code, message: (err as Error).message } }, 'unmounting a lazy image failed; retrying');
            await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
          }
        }
      } finally {
        this.releasing.delete(b.id);
      }
    })();
  }
}
