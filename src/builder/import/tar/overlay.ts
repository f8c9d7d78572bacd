// OCI layer semantics on the in-memory tree: places one layer's tar entries over what the lower
// layers built, then applies that layer's whiteouts. It never touches the host filesystem and
// never follows a symlink of the image.
//
// Decisions (the builder relies on them):
//   - Entry names are confined by paths.ts (absolute made relative with a warning, '..' above
//     the root rejected with UnsafePathError).
//   - A parent component that is a symlink in the tree fails with SymlinkParentError; one that
//     is another non-directory fails with LayerEntryError. Nothing is replaced implicitly.
//   - Missing parents are created as implicit directories: mode 0755, uid/gid 0, mtime 0, no
//     xattrs. A later entry for the directory itself sets its metadata.
//   - A directory entry over a directory updates its metadata (xattrs replaced as a whole) and
//     keeps its children; any other combination replaces the old node (a subtree included).
//   - A hardlink shares the TreeNode of its target, which must already exist in the tree
//     (lower layers or earlier in this layer) and not be a directory. The hardlink entry's own
//     metadata is ignored: it is the same inode.
//   - Whiteouts and opaque markers act only on lower layers, whatever their position in the tar:
//     they are collected and applied when the layer ends, against the record of which names
//     this layer wrote. `.wh.<x>` removes a lower <x>; if this layer also wrote <x> as a
//     directory, only the lower content below it goes (and its metadata becomes implicit unless
//     this layer gave a directory entry for it). `.wh..wh..opq` keeps only this layer's
//     entries below its directory. Other `.wh..wh.` names (aufs bookkeeping) are skipped.
//   - A hardlink whose target is whited out in the same layer keeps the node (links are placed
//     before whiteouts apply).
import { IMPLICIT_DIR_META, isDir, lookup, newNode, type ChunkSink, type Segment, type TreeNode } from '../../tree.js';
import { HardlinkTargetError, LayerEntryError, SymlinkParentError, type EntryContext } from '../errors.js';
import { joinComponents, normaliseMemberPath } from '../paths.js';
import type { TarEntry, TarWarning } from './reader.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const AUFS_META = '.wh..wh.';

export interface OverlayOptions {
  source: string;
  onWarning?: ((w: TarWarning) => void) | undefined;
  /** Called with the byte count of each file segment as the sink takes it. */
  onData?: ((bytes: number) => void) | undefined;
}

interface PendingWhiteout {
  dir: string[];
  name: string | undefined; // undefined: opaque marker
}

export class LayerApplier<C> {
  readonly #root: TreeNode<C>;
  readonly #sink: ChunkSink<C>;
  readonly #opts: OverlayOptions;
  /** Per directory node, the child names this layer wrote (entries and implied parents). */
  readonly #written = new Map<TreeNode<C>, Set<string>>();
  /** Directories whose metadata this layer set with an entry of their own. */
  readonly #explicit = new Set<TreeNode<C>>();
  readonly #whiteouts: PendingWhiteout[] = [];
  #files = 0;

  constructor(root: TreeNode<C>, sink: ChunkSink<C>, opts: OverlayOptions) {
    this.#root = root;
    this.#sink = sink;
    this.#opts = opts;
  }

  get whiteoutCount(): number {
    return this.#whiteouts.length;
  }

  /** Regular files stored through the sink so far. */
  get fileCount(): number {
    return this.#files;
  }

  async apply(entry: TarEntry): Promise<void> {
    const ctx: EntryContext = { source: this.#opts.source, offset: entry.offset, entry: entry.path };
    const { components, wasAbsolute } = normaliseMemberPath(entry.path, ctx);
    if (wasAbsolute) this.#warn('TAR_ABSOLUTE_PATH', 'absolute member name made relative to the image root', ctx);
    if (components.length === 0) {
      if (entry.type !== 'dir') throw new LayerEntryError(ctx, `a ${entry.type} entry names the image root`);
      setMeta(this.#root, entry);
      this.#explicit.add(this.#root);
      return;
    }
    const name = components[components.length - 1]!;
    const parentPath = components.slice(0, -1);

    if (name.startsWith(WHITEOUT)) {
      this.#ensureDir(parentPath, ctx);
      if (name === OPAQUE) {
        this.#whiteouts.push({ dir: parentPath, name: undefined });
      } else if (name.startsWith(AUFS_META)) {
        this.#warn('LAYER_AUFS_METADATA', 'aufs bookkeeping entry skipped', ctx);
      } else {
        const victim = name.slice(WHITEOUT.length);
        if (victim === '' || victim === '.' || victim === '..') throw new LayerEntryError(ctx, `whiteout ${JSON.stringify(name)} names no entry`);
        this.#whiteouts.push({ dir: parentPath, name: victim });
      }
      return;
    }

    // Resolve a hardlink before changing anything, so a bad link leaves the tree as it was.
    const linkTarget = entry.type === 'hardlink' ? this.#resolveHardlink(entry, ctx) : undefined;
    const parent = this.#ensureDir(parentPath, ctx);
    this.#mark(parent, name);
    const children = parent.children!;
    const existing = children.get(name);
    switch (entry.type) {
      case 'dir':
        if (isDir(existing)) {
          setMeta(existing, entry);
          this.#explicit.add(existing);
        } else {
          const dir = newNode<C>('dir', meta(entry));
          children.set(name, dir);
          this.#explicit.add(dir);
        }
        return;
      case 'file': {
        const content = await this.#store(entry, ctx);
        this.#files++;
        children.set(name, newNode<C>('file', { ...meta(entry), size: entry.size, content }));
        return;
      }
      case 'symlink':
        if (entry.linkPath === '') throw new LayerEntryError(ctx, 'symlink with an empty target');
        // Linux gives every symlink mode 0777 whatever the archive says (an unpacked image
        // shows lrwxrwxrwx); a Mac-made tar records 0755.
        children.set(name, newNode<C>('symlink', { ...meta(entry), mode: 0o777, target: entry.linkPath }));
        return;
      case 'hardlink':
        children.set(name, linkTarget!);
        return;
      case 'chardev':
      case 'blockdev':
        children.set(name, newNode<C>(entry.type, { ...meta(entry), rdevMajor: entry.devMajor, rdevMinor: entry.devMinor }));
        return;
      case 'fifo':
        children.set(name, newNode<C>('fifo', meta(entry)));
        return;
    }
  }

  /** Applies the layer's whiteouts and opaque markers; call once, after the last entry. */
  finish(): void {
    for (const w of this.#whiteouts) {
      const dir = lookup(this.#root, w.dir);
      if (!isDir(dir)) continue; // replaced later in this layer by a non-directory: nothing below it is lower
      if (w.name === undefined) {
        this.#pruneLower(dir);
        continue;
      }
      const child = dir.children.get(w.name);
      if (child === undefined) continue;
      if (!this.#written.get(dir)?.has(w.name)) {
        dir.children.delete(w.name);
      } else if (isDir(child)) {
        this.#pruneLower(child);
        if (!this.#explicit.has(child)) Object.assign(child, IMPLICIT_DIR_META, { xattrs: new Map() });
      }
    }
  }

  async #store(entry: TarEntry, ctx: EntryContext): Promise<C> {
    let finished = false;
    const onData = this.#opts.onData;
    const source = entry.segments();
    async function* tracked(): AsyncGenerator<Segment> {
      for await (const seg of source) {
        onData?.(seg.data.length);
        yield seg;
      }
      finished = true;
    }
    const content = await this.#sink.storeFile(entry.size, tracked());
    // A sink that resolves early would leave the file silently short in the image.
    if (!finished) throw new LayerEntryError(ctx, 'the chunk sink resolved before reading all of the file data');
    return content;
  }

  #resolveHardlink(entry: TarEntry, ctx: EntryContext): TreeNode<C> {
    const { components, wasAbsolute } = normaliseMemberPath(entry.linkPath, ctx);
    if (wasAbsolute) this.#warn('TAR_ABSOLUTE_LINK', `absolute hardlink target ${JSON.stringify(entry.linkPath)} made relative`, ctx);
    if (components.length === 0) throw new HardlinkTargetError(ctx, entry.linkPath, 'is the image root');
    let node: TreeNode<C> = this.#root;
    for (let i = 0; i < components.length; i++) {
      if (!isDir(node)) {
        if (node.kind === 'symlink') throw new SymlinkParentError(ctx, joinComponents(components.slice(0, i)));
        throw new HardlinkTargetError(ctx, entry.linkPath, `has a ${node.kind} as a parent`);
      }
      const next = node.children.get(components[i]!);
      if (next === undefined) throw new HardlinkTargetError(ctx, entry.linkPath, 'does not exist in the image');
      node = next;
    }
    if (node.kind === 'dir') throw new HardlinkTargetError(ctx, entry.linkPath, 'is a directory');
    return node;
  }

  #ensureDir(components: readonly string[], ctx: EntryContext): TreeNode<C> {
    let dir = this.#root;
    for (let i = 0; i < components.length; i++) {
      const c = components[i]!;
      let child = dir.children!.get(c);
      if (child === undefined) {
        child = newNode<C>('dir', { ...IMPLICIT_DIR_META });
        dir.children!.set(c, child);
      } else if (child.kind === 'symlink') {
        throw new SymlinkParentError(ctx, joinComponents(components.slice(0, i + 1)));
      } else if (!isDir(child)) {
        throw new LayerEntryError(ctx, `parent ${JSON.stringify(joinComponents(components.slice(0, i + 1)))} is a ${child.kind}, not a directory`);
      }
      this.#mark(dir, c);
      dir = child;
    }
    return dir;
  }

  #mark(dir: TreeNode<C>, name: string): void {
    let names = this.#written.get(dir);
    if (names === undefined) this.#written.set(dir, (names = new Set()));
    names.add(name);
  }

  /** Removes everything below `dir` that this layer did not write. */
  #pruneLower(dir: TreeNode<C>): void {
    const stack = [dir];
    while (stack.length > 0) {
      const d = stack.pop()!;
      const mine = this.#written.get(d);
      for (const [name, child] of d.children!) {
        if (!mine?.has(name)) d.children!.delete(name);
        else if (isDir(child)) stack.push(child);
      }
    }
  }

  #warn(code: string, message: string, ctx: EntryContext): void {
    // The message names the entry itself: callers often print only source and message.
    const full = `entry ${JSON.stringify(ctx.entry)} at offset ${ctx.offset}: ${message}`;
    this.#opts.onWarning?.({ code, message: full, source: ctx.source, offset: ctx.offset, entry: ctx.entry });
  }
}

function meta(entry: TarEntry): Partial<TreeNode<never>> {
  return { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtimeSec: entry.mtimeSec, mtimeNsec: entry.mtimeNsec, xattrs: new Map(entry.xattrs) };
}

function setMeta<C>(node: TreeNode<C>, entry: TarEntry): void {
  Object.assign(node, meta(entry));
}
