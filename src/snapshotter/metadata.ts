// The snapshotter's metadata: every snapshot's record in one JSON file under the root, replaced
// whole and durably on each change (written to a temp file, fsynced, renamed over the old one,
// the directory fsynced) before the call that made the change answers. So kill -9 at any
// instant leaves either the old or the new state, never a torn one, and never loses what
// containerd was told. Synchronous on purpose: a change is a few KiB on local disk, and
// no other call can interleave between a check and the write it guards. No native database
// (one build of those breaks on the next Node major).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptError } from '../errors.js';

export type Kind = 'active' | 'view' | 'committed';

export interface SnapshotRecord {
  /** Names the snapshot's directory (snapshots/<id>): keys never reach a path. */
  id: number;
  /** The key (active, view) or name (committed). */
  name: string;
  /** The parent's name, '' for none. */
  parent: string;
  kind: Kind;
  createdMs: number;
  updatedMs: number;
  labels: Record<string, string>;
  /** Measured at commit (committed snapshots do not change). */
  usage?: { size: number; inodes: number };
  /** Committed by the snapshotter for a Nydus data layer: no content of its own. */
  remote?: boolean;
  /** A Nydus bootstrap layer's snapshot; `image` is where its blobs are (cri.image-ref). */
  bootstrap?: { image?: string };
  /** Name of the bootstrap snapshot whose EROFS mount this active/view snapshot stands on. */
  lazy?: string;
}

interface StoreFile {
  version: 1;
  nextId: number;
  snapshots: SnapshotRecord[];
}

export class MetadataStore {
  private readonly byName = new Map<string, SnapshotRecord>();
  private nextId = 1;
  readonly file: string;

  constructor(readonly root: string) {
    this.file = join(root, 'metadata.json');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    let text: string | undefined;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      let parsed: StoreFile;
      try {
        parsed = JSON.parse(text) as StoreFile;
      } catch (err) {
        throw new CorruptError(this.file, 0, `not JSON (${(err as Error).message})`);
      }
      if (parsed?.version !== 1 || !Array.isArray(parsed.snapshots) || !Number.isInteger(parsed.nextId)) {
        throw new CorruptError(this.file, 0, 'not a version 1 snapshot metadata file');
      }
      this.nextId = parsed.nextId;
      for (const r of parsed.snapshots) this.byName.set(r.name, r);
    }
  }

  get(name: string): SnapshotRecord | undefined {
    return this.byName.get(name);
  }

  all(): SnapshotRecord[] {
    return [...this.byName.values()];
  }

  children(name: string): SnapshotRecord[] {
    return this.all().filter((r) => r.parent === name);
  }

  allocateId(): number {
    return this.nextId++;
  }

  /** Applies `change` (puts and deletes by name) and makes it durable before returning. */
  apply(change: { put?: SnapshotRecord[]; remove?: string[] }): void {
    const undo = new Map<string, SnapshotRecord | undefined>();
    for (const n of change.remove ?? []) { undo.set(n, this.byName.get(n)); this.byName.delete(n); }
    for (const r of change.put ?? []) { if (!undo.has(r.name)) undo.set(r.name, this.byName.get(r.name)); this.byName.set(r.name, r); }
    try {
      this.save();
    } catch (err) {
      // Memory must not claim what the disk does not hold.
      for (const [n, r] of undo) { if (r) this.byName.set(n, r); else this.byName.delete(n); }
      throw err;
    }
  }

  private save(): void {
    const data: StoreFile = { version: 1, nextId: this.nextId, snapshots: this.all() };
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      const buf = Buffer.from(JSON.stringify(data));
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const dir = openSync(this.root, 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
