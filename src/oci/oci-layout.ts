// An OCI image layout directory (what skopeo, umoci and buildx write): `oci-layout`,
// `index.json`, `blobs/sha256/<hex>`. Reading resolves `oci:<dir>[:<tag>]` by the
// `org.opencontainers.image.ref.name` annotation and hands out blobs verified against their
// digests (a layer's digest is checked by the layer reader over every byte); writing adds blobs and tags an entry of index.json.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError, OndineError } from '../errors.js';
import type { LayerSource } from '../builder/import/tar/source.js';
import { ANNOTATION, MEDIA_TYPE } from '../registry/media-types.js';
import type { Descriptor, ImageIndex } from './types.js';

export interface LayoutRef {
  dir: string;
  tag?: string;
}

/** `oci:<dir>[:<tag>]` (the first colon after `oci:` ends the directory, as in skopeo). */
export function parseLayoutRef(s: string): LayoutRef | undefined {
  if (!s.startsWith('oci:')) return undefined;
  const rest = s.slice(4);
  const i = rest.indexOf(':');
  const dir = i < 0 ? rest : rest.slice(0, i);
  const tag = i < 0 ? undefined : rest.slice(i + 1);
  if (!dir) throw new InvalidArgumentError(`"${s}": no directory after oci:`);
  return { dir, ...(tag ? { tag } : {}) };
}

export async function isLayoutDir(dir: string): Promise<boolean> {
  return stat(join(dir, 'oci-layout')).then((s) => s.isFile(), () => false);
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function checkDigest(digest: string): string {
  if (!DIGEST_RE.test(digest)) throw new InvalidArgumentError(`unsupported or malformed digest "${digest}"`);
  return digest.slice(7);
}

export class LayoutDigestError extends OndineError {
  constructor(what: string, expected: string, actual: string) {
    super('ONDINE_ERR_DIGEST_MISMATCH', undefined, `${what}: digest mismatch (expected ${expected}, got ${actual})`);
  }
}

export class OciLayout {
  constructor(readonly dir: string) {}

  static async open(dir: string): Promise<OciLayout> {
    let text: string;
    try {
      text = await readFile(join(dir, 'oci-layout'), 'utf8');
    } catch {
      throw new NotFoundError(`OCI layout ${dir} (no oci-layout file)`);
    }
    let version: unknown;
    try {
      version = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      throw new InvalidArgumentError(`${dir}/oci-layout is not JSON`);
    }
    if (version !== '1.0.0') throw new InvalidArgumentError(`${dir}: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
    return new OciLayout(dir);
  }

  /** Creates the layout files when missing (an empty index). */
  static async init(dir: string): Promise<OciLayout> {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    if (!(await isLayoutDir(dir))) await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    if (!(await stat(join(dir, 'index.json')).catch(() => undefined))) {
      await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE.ociIndex, manifests: [] }));
    }
    return new OciLayout(dir);
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', checkDigest(digest));
  }

  async index(): Promise<ImageIndex> {
    let text: string;
    try {
      text = await readFile(join(this.dir, 'index.json'), 'utf8');
    } catch {
      throw new NotFoundError(`${this.dir}/index.json`);
    }
    try {
      const idx = JSON.parse(text) as ImageIndex;
      if (!Array.isArray(idx.manifests)) throw new Error('no manifests array');
      return idx;
    } catch (err) {
      throw new InvalidArgumentError(`${this.dir}/index.json: ${(err as Error).message}`);
    }
  }

  /** The index.json entry tagged `tag`, or the only entry when no tag is given. */
  async resolve(tag?: string): Promise<Descriptor> {
    const { manifests } = await this.index();
    if (tag !== undefined) {
      const d = manifests.find((m) => m.annotations?.[ANNOTATION.refName] === tag);
      if (!d) throw new NotFoundError(`tag "${tag}" in OCI layout ${this.dir}`);
      return d;
    }
    if (manifests.length === 1) return manifests[0]!;
    if (manifests.length === 0) throw new NotFoundError(`an image in OCI layout ${this.dir} (index.json is empty)`);
    const tags = manifests.map((m) => m.annotations?.[ANNOTATION.refName]).filter(Boolean);
    throw new InvalidArgumentError(`OCI layout ${this.dir} holds ${manifests.length} images; name one: oci:${this.dir}:<tag> (tags: ${tags.join(', ') || 'none'})`);
  }

  /** A whole blob, checked against its digest (and its size, when a descriptor gives one: a larger file is not read). */
  async readBlob(digest: string, size?: number): Promise<Buffer> {
    let b: Buffer;
    try {
      if (size !== undefined) {
        const st = await stat(this.blobPath(digest));
        if (st.size !== size) throw new LayoutDigestError(`blob in OCI layout ${this.dir}`, `${digest} of ${size} bytes`, `a file of ${st.size} bytes`);
      }
      b = await readFile(this.blobPath(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`blob ${digest} in OCI layout ${this.dir}`);
      throw err;
    }
    const actual = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    if (actual !== digest) throw new LayoutDigestError(`blob in OCI layout ${this.dir}`, digest, actual);
    return b;
  }

  /**
   * A blob as a builder layer source. The layer reader checks the size and the digest over
   * every byte at the end of the file, before the layer counts as read.
   */
  layerSource(desc: Descriptor): LayerSource {
    const path = this.blobPath(desc.digest);
    return {
      name: `layer ${desc.digest} in OCI layout ${this.dir}`,
      size: desc.size,
      digest: desc.digest,
      open: async (): Promise<Readable> => {
        await stat(path).catch(() => {
          throw new NotFoundError(`blob ${desc.digest} in OCI layout ${this.dir}`);
        });
        return createReadStream(path, { highWaterMark: 1 << 20 });
      },
    };
  }

  async hasBlob(digest: string): Promise<boolean> {
    return stat(this.blobPath(digest)).then(() => true, () => false);
  }

  /** Adds a blob whose digest the caller has checked (a file it made, bytes it hashed). */
  async writeBlob(digest: string, body: { path: string } | { bytes: Buffer }): Promise<void> {
    const dest = this.blobPath(digest);
    if (await this.hasBlob(digest)) return;
    const tmp = `${dest}.tmp-${process.pid}`;
    if ('path' in body) await copyFile(body.path, tmp);
    else await writeFile(tmp, body.bytes);
    await rename(tmp, dest);
  }

  /** Points `tag` at `desc` in index.json (replacing what the tag named before). */
  async tag(desc: Descriptor, tag: string | undefined): Promise<void> {
    const idx = await this.index();
    const entry: Descriptor = { ...desc, annotations: { ...(desc.annotations ?? {}), ...(tag ? { [ANNOTATION.refName]: tag } : {}) } };
    if (!tag) delete entry.annotations;
    idx.manifests = idx.manifests.filter((m) => (tag ? m.annotations?.[ANNOTATION.refName] !== tag : m.digest !== desc.digest));
    idx.manifests.push(entry);
    const path = join(this.dir, 'index.json');
    await writeFile(`${path}.tmp`, JSON.stringify(idx));
    await rename(`${path}.tmp`, path);
  }
}
