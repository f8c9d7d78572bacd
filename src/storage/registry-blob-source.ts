// Blobs of one repository of an OCI registry, read with HTTP Range requests through a
// registry client (which owns auth, mirrors, redirects and connection pools). Blob id = the
// sha256 hex of the blob; its registry digest is `sha256:<id>`. Retries, failure memory and
// counting wrap this source (source-spec.ts); nothing here retries.
import { InvalidArgumentError } from '../errors.js';
import type { BlobSource } from './blob-source.js';

const BLOB_ID = /^[0-9a-f]{64}$/;

/** What this source needs of a registry client (RegistryClient from src/registry/client.ts). */
export interface RangeClient {
  readRange(registry: string, repository: string, digest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  blobSize(registry: string, repository: string, digest: string): Promise<number>;
  close?(): Promise<void>;
}

export class RegistryBlobSource implements BlobSource {
  readonly description: string;
  readonly refetchCorrupt = true;
  private readonly sizes = new Map<string, number>();

  constructor(
    private readonly client: RangeClient,
    readonly registry: string,
    readonly repository: string,
    private readonly opts: { ownsClient?: boolean; sizes?: ReadonlyMap<string, number> } = {},
  ) {
    this.description = `registry ${registry}/${repository}`;
    for (const [id, n] of opts.sizes ?? []) this.sizes.set(id, n);
  }

  private digest(blobId: string): string {
    if (!BLOB_ID.test(blobId)) throw new InvalidArgumentError(`blob id "${blobId}" is not 64 hex characters`);
    return `sha256:${blobId}`;
  }

  async read(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const digest = this.digest(blobId);
    if (length === 0) return Buffer.alloc(0);
    return this.client.readRange(this.registry, this.repository, digest, offset, length, signal);
  }

  async size(blobId: string): Promise<number> {
    const known = this.sizes.get(blobId);
    if (known !== undefined) return known;
    const n = await this.client.blobSize(this.registry, this.repository, this.digest(blobId));
    this.sizes.set(blobId, n);
    return n;
  }

  /** Sizes known from a manifest's layers: size() then asks nothing. */
  learnSize(blobId: string, size: number): void {
    this.sizes.set(blobId, size);
  }

  async close(): Promise<void> {
    if (this.opts.ownsClient) await this.client.close?.();
  }
}
