// The builder's in-memory filesystem tree: what importers (directory walk, OCI layers) produce
// and what the bootstrap writer consumes. It owns the node shape, name <-> byte encoding and
// traversal order; it knows nothing of tar, the host filesystem or the on-disk format.
//
// Names and symlink targets are bytes on Linux. They are held as strings decoded from UTF-8;
// a byte that is not part of valid UTF-8 becomes the lone surrogate U+DC80+byte (the
// "surrogateescape" convention), which no valid UTF-8 can produce, so `nameToBytes` restores
// the exact original bytes. Every importer decodes with `nameFromBytes` and every writer must
// encode with `nameToBytes`, never with Buffer.from(name).

export type NodeKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

/** A regular file's content handle; its shape belongs to the ChunkSink that produced it. */
export type FileContent = unknown;

export interface TreeNode<C = FileContent> {
  kind: NodeKind;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777), never the type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch; may be negative or beyond 2^32. */
  mtimeSec: number;
  mtimeNsec: number;
  /** Full names ('user.foo', 'security.capability', 'trusted.x') to raw values. */
  xattrs: Map<string, Buffer>;
  /** Regular files: logical size (may exceed 4 GiB); symlinks: target length in bytes; else 0. */
  size: number;
  content?: C;
  target?: string;
  rdevMajor?: number;
  rdevMinor?: number;
  /** Directories only. Keys are single components (no '/', never '.' or '..'). */
  children?: Map<string, TreeNode<C>>;
}
// Hardlinks: the same TreeNode object referenced from several directories (identity = link).

/** File bytes at `offset`; ranges between segments are holes and read as zeros. */
export interface Segment {
  offset: number;
  data: Buffer;
}

export interface ChunkSink<C = FileContent> {
  /**
   * Store one regular file's bytes. `segments` yields data in increasing, non-overlapping offset
   * order, all below `size`; ranges not covered are holes. The sink must consume the iterable to
   * its end before resolving. Resolves to the file's content handle.
   */
  storeFile(size: number, segments: AsyncIterable<Segment>): Promise<C>;
}

export type NodeMeta = Pick<TreeNode, 'mode' | 'uid' | 'gid' | 'mtimeSec' | 'mtimeNsec'>;

/** Metadata given to directories nobody described (implicit tar parents, the layers' root). */
export const IMPLICIT_DIR_META: Readonly<NodeMeta> = Object.freeze({ mode: 0o755, uid: 0, gid: 0, mtimeSec: 0, mtimeNsec: 0 });

export function newNode<C = FileContent>(kind: NodeKind, meta: Partial<TreeNode<C>> = {}): TreeNode<C> {
  const node: TreeNode<C> = {
    kind,
    mode: meta.mode ?? (kind === 'dir' ? 0o755 : 0o644),
    uid: meta.uid ?? 0,
    gid: meta.gid ?? 0,
    mtimeSec: meta.mtimeSec ?? 0,
    mtimeNsec: meta.mtimeNsec ?? 0,
    xattrs: meta.xattrs ?? new Map(),
    size: meta.size ?? 0,
  };
  if (meta.content !== undefined) node.content = meta.content;
  if (meta.target !== undefined) {
    node.target = meta.target;
    if (meta.size === undefined) node.size = nameToBytes(meta.target).length;
  }
  if (meta.rdevMajor !== undefined) node.rdevMajor = meta.rdevMajor;
  if (meta.rdevMinor !== undefined) node.rdevMinor = meta.rdevMinor;
  if (kind === 'dir') node.children = meta.children ?? new Map();
  return node;
}

export function newDir<C = FileContent>(meta: Partial<TreeNode<C>> = {}): TreeNode<C> {
  return newNode<C>('dir', { ...IMPLICIT_DIR_META, ...meta });
}

export function isDir<C>(node: TreeNode<C> | undefined): node is TreeNode<C> & { children: Map<string, TreeNode<C>> } {
  return node !== undefined && node.kind === 'dir' && node.children !== undefined;
}

/** Split a '/'-separated path into components, ignoring empty and '.' parts. '..' is kept. */
export function splitPath(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Find the node at `path` without following symlinks anywhere: a symlink or non-directory in an
 * intermediate position means "not found", exactly as if the component were missing.
 */
export function lookup<C>(root: TreeNode<C>, path: string | readonly string[]): TreeNode<C> | undefined {
  const parts = typeof path === 'string' ? splitPath(path) : path;
  let node: TreeNode<C> | undefined = root;
  for (const part of parts) {
    if (!isDir(node)) return undefined;
    node = node.children.get(part);
  }
  return node;
}

// ---- name bytes ----

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function nameFromBytes(bytes: Uint8Array): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return decodeEscaped(bytes);
  }
}

function decodeEscaped(b: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < b.length) {
    const len = utf8SequenceLength(b, i);
    if (len === 0) {
      out += String.fromCharCode(0xdc00 + b[i]!);
      i += 1;
    } else {
      out += utf8Strict.decode(b.subarray(i, i + len));
      i += len;
    }
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at i, or 0 when b[i] does not start one. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // excludes UTF-16 surrogates
  if (c >= 0xe1 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

export function nameToBytes(name: string): Buffer {
  if (!/[\ud800-\udfff]/.test(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (let i = 0; i < name.length; i++) {
    const u = name.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < name.length) {
      const v = name.charCodeAt(i + 1);
      if (v >= 0xdc00 && v <= 0xdfff) {
        run += name[i]! + name[i + 1]!;
        i++;
        continue;
      }
    }
    if (u >= 0xdc80 && u <= 0xdcff) {
      parts.push(Buffer.from(run, 'utf8'), Buffer.of(u - 0xdc00));
      run = '';
      continue;
    }
    if (u >= 0xd800 && u <= 0xdfff) throw new TypeError(`name ${JSON.stringify(name)} holds a lone surrogate that no byte string maps to`);
    run += name[i]!;
  }
  parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

/** Byte order of the encoded names: the order EROFS directories are sorted in. */
export function compareNames(a: string, b: string): number {
  if (isPlainAscii(a) && isPlainAscii(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(nameToBytes(a), nameToBytes(b));
}

function isPlainAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

export function sortedChildren<C>(dir: TreeNode<C>): Array<[string, TreeNode<C>]> {
  if (!dir.children) return [];
  return [...dir.children].sort((x, y) => compareNames(x[0], y[0]));
}

// ---- traversal ----

/**
 * Depth-first pre-order walk yielding ['/a/b', node], the root as '/'. Children come in
 * byte order of their names. A hardlinked node is yielded once per path.
 */
export function* walk<C>(root: TreeNode<C>): Generator<[string, TreeNode<C>]> {
  // An explicit stack: real trees are deeper than is comfortable for nested generators.
  const stack: Array<[string, TreeNode<C>]> = [['/', root]];
  while (stack.length > 0) {
    const [path, node] = stack.pop()!;
    yield [path, node];
    if (!isDir(node)) continue;
    const kids = sortedChildren(node);
    const prefix = path === '/' ? '/' : `${path}/`;
    for (let i = kids.length - 1; i >= 0; i--) stack.push([prefix + kids[i]![0], kids[i]![1]]);
  }
}

export interface TreeCounts {
  /** Paths, the root included; a node with n links counts n times. */
  entries: number;
  /** Distinct nodes (inodes). */
  nodes: number;
  byKind: Record<NodeKind, number>;
  /** Sum of the logical sizes of distinct regular files. */
  fileBytes: number;
  /** Nodes reachable through more than one path. */
  hardlinked: number;
}

export function countNodes<C>(root: TreeNode<C>): TreeCounts {
  const byKind: Record<NodeKind, number> = { file: 0, dir: 0, symlink: 0, chardev: 0, blockdev: 0, fifo: 0, socket: 0 };
  const links = new Map<TreeNode<C>, number>();
  let entries = 0;
  let fileBytes = 0;
  for (const [, node] of walk(root)) {
    entries++;
    const n = links.get(node) ?? 0;
    links.set(node, n + 1);
    if (n > 0) continue;
    byKind[node.kind]++;
    if (node.kind === 'file') fileBytes += node.size;
  }
  let hardlinked = 0;
  for (const n of links.values()) if (n > 1) hardlinked++;
  return { entries, nodes: links.size, byKind, fileBytes, hardlinked };
}

/** How many paths reach each node: the nlink an image writer records (directories excluded). */
export function linkCounts<C>(root: TreeNode<C>): Map<TreeNode<C>, number> {
  const links = new Map<TreeNode<C>, number>();
  for (const [, node] of walk(root)) links.set(node, (links.get(node) ?? 0) + 1);
  return links;
}
