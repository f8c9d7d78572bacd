// Where a converted or built image goes: a registry repository (through the registry client)
// or an OCI layout directory. One small interface so push does not care which; a registry
// target skips blobs it has and mounts blobs from another repository where it can.
import { stat } from 'node:fs/promises';
import { OciLayout } from './oci-layout.js';

/** The part of src/registry's RegistryClient that convert and push use. */
export interface RegistryApi {
  getManifest(ref: RefLike): Promise<{ digest: string; mediaType: string; bytes: Buffer; json: any }>;
  blobStream(registry: string, repository: string, digest: string, signal?: AbortSignal, size?: number): Promise<import('node:stream').Readable>;
  blobSize(registry: string, repository: string, digest: string): Promise<number>;
  hasBlob(registry: string, repository: string, digest: string): Promise<boolean>;
  mountBlob(registry: string, repository: string, digest: string, fromRepository: string): Promise<boolean>;
  uploadBlob(registry: string, repository: string, digest: string, body: { path: string } | { bytes: Buffer }, size: number): Promise<number>;
  putManifest(ref: RefLike, mediaType: string, bytes: Buffer): Promise<string>;
  readonly stats: { requests: number; bytesDown: number; bytesUp: number };
}

export interface RefLike {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  toString(): string;
}

export function refWith(base: RefLike, at: { tag?: string; digest?: string }): RefLike {
  const r = { registry: base.registry, repository: base.repository, ...at };
  return { ...r, toString: () => `${r.registry}/${r.repository}${r.digest ? `@${r.digest}` : r.tag ? `:${r.tag}` : ''}` };
}

export type BlobOutcome = { kind: 'skipped' | 'mounted' | 'uploaded'; bytes: number };

export interface ImageTarget {
  /** Human-readable destination, no credentials. */
  readonly name: string;
  /** Size of a blob the target already holds, or undefined. */
  blobSize(digest: string): Promise<number | undefined>;
  /** Makes the blob present: skip when there, else mount from `mountFrom` (a repository on the same registry) when allowed, else upload. */
  putBlob(digest: string, body: { path: string } | { bytes: Buffer }, size: number, mountFrom?: string): Promise<BlobOutcome>;
  /** Tries only a cross-repository mount (a blob the caller does not have locally). */
  mountBlob(digest: string, fromRepository: string): Promise<boolean>;
  /** Stores a manifest or index; `tagged` false stores it by digest only (an index will name it). */
  putManifest(mediaType: string, bytes: Buffer, digest: string, tagged: boolean): Promise<void>;
  /** Names the tag or the digest that the final document was pushed under. */
  readonly reference: string;
}

export class RegistryTarget implements ImageTarget {
  constructor(private readonly client: RegistryApi, readonly ref: RefLike) {}

  get name(): string {
    return String(this.ref);
  }

  get reference(): string {
    return String(this.ref);
  }

  async blobSize(digest: string): Promise<number | undefined> {
    if (!(await this.client.hasBlob(this.ref.registry, this.ref.repository, digest))) return undefined;
    return this.client.blobSize(this.ref.registry, this.ref.repository, digest);
  }

  async mountBlob(digest: string, fromRepository: string): Promise<boolean> {
    if (fromRepository === this.ref.repository) return false;
    return this.client.mountBlob(this.ref.registry, this.ref.repository, digest, fromRepository);
  }

  async putBlob(digest: string, body: { path: string } | { bytes: Buffer }, size: number, mountFrom?: string): Promise<BlobOutcome> {
    const { registry, repository } = this.ref;
    if (await this.client.hasBlob(registry, repository, digest)) return { kind: 'skipped', bytes: 0 };
    if (mountFrom && mountFrom !== repository && (await this.client.mountBlob(registry, repository, digest, mountFrom))) {
      return { kind: 'mounted', bytes: 0 };
    }
    const sent = await this.client.uploadBlob(registry, repository, digest, body, size);
    return sent === 0 && size > 0 ? { kind: 'skipped', bytes: 0 } : { kind: 'uploaded', bytes: sent };
  }

  async putManifest(mediaType: string, bytes: Buffer, digest: string, tagged: boolean): Promise<void> {
    const ref = tagged && this.ref.tag ? refWith(this.ref, { tag: this.ref.tag }) : refWith(this.ref, { digest });
    await this.client.putManifest(ref, mediaType, bytes);
  }
}

/** `oci:<dir>:<tag>` as a target: blobs copied in, the final document tagged in index.json. */
export class LayoutTarget implements ImageTarget {
  private constructor(private readonly layout: OciLayout, private readonly tag: string | undefined) {}

  static async create(dir: string, tag: string | undefined): Promise<LayoutTarget> {
    return new LayoutTarget(await OciLayout.init(dir), tag);
  }

  get name(): string {
    return `oci:${this.layout.dir}${this.tag ? `:${this.tag}` : ''}`;
  }

  get reference(): string {
    return this.name;
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return stat(this.layout.blobPath(digest)).then((s) => s.size, () => undefined);
  }

  async mountBlob(): Promise<boolean> {
    return false;
  }

  async putBlob(digest: string, body: { path: string } | { bytes: Buffer }, size: number): Promise<BlobOutcome> {
    if (await this.layout.hasBlob(digest)) return { kind: 'skipped', bytes: 0 };
    await this.layout.writeBlob(digest, body);
    return { kind: 'uploaded', bytes: size };
  }

  async putManifest(mediaType: string, bytes: Buffer, digest: string, tagged: boolean): Promise<void> {
    await this.layout.writeBlob(digest, { bytes });
    if (tagged) await this.layout.tag({ mediaType, digest, size: bytes.length }, this.tag);
  }
}
