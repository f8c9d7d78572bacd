// Where an image to convert comes from: a registry repository or an OCI layout directory.
// Both hand out the top document (manifest or index), documents by descriptor, small blobs
// whole, and layers as builder stream sources, so conversion never unpacks to disk.
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, OndineError } from '../errors.js';
import type { LayerSource } from '../builder/import/tar/source.js';
import { isIndexMediaType, isManifestMediaType, MEDIA_TYPE } from '../registry/media-types.js';
import { isLayoutDir, OciLayout, parseLayoutRef } from './oci-layout.js';
import { refWith, type RefLike, type RegistryApi } from './targets.js';
import type { Descriptor } from './types.js';

export interface SourceDocument {
  mediaType: string;
  digest: string;
  json: any;
}

export interface ImageSource {
  readonly name: string;
  /** Set for a registry source: blobs there can be mounted into a target on the same registry. */
  readonly repo?: { registry: string; repository: string };
  root(): Promise<SourceDocument>;
  document(desc: Descriptor): Promise<SourceDocument>;
  blob(desc: Descriptor): Promise<Buffer>;
  layer(desc: Descriptor): LayerSource;
}

/** The media type a document says it has, or the one its shape implies (older writers leave it out). */
export function documentMediaType(json: any, fallback?: string): string {
  const mt = typeof json?.mediaType === 'string' ? json.mediaType : fallback;
  if (isIndexMediaType(mt) || isManifestMediaType(mt)) return mt!;
  if (Array.isArray(json?.manifests)) return MEDIA_TYPE.ociIndex;
  if (json?.config && Array.isArray(json?.layers)) return MEDIA_TYPE.ociManifest;
  throw new InvalidArgumentError(`not an image manifest or index (media type ${mt ?? 'absent'})`);
}

/** Blobs handed out whole (configs) are small; a descriptor stating more is refused unread. */
export const MAX_WHOLE_BLOB = 64 << 20;

function checkWholeSize(desc: Descriptor, where: string): void {
  if (!Number.isSafeInteger(desc.size) || desc.size < 0 || desc.size > MAX_WHOLE_BLOB) {
    throw new OndineError('ONDINE_ERR_TOO_LARGE', undefined, `blob ${desc.digest} of ${where}: stated size ${desc.size} is over the ${MAX_WHOLE_BLOB}-byte limit for a config`);
  }
}

async function collect(s: Readable | AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export class RegistryImageSource implements ImageSource {
  readonly repo: { registry: string; repository: string };
  constructor(private readonly client: RegistryApi, readonly ref: RefLike) {
    this.repo = { registry: ref.registry, repository: ref.repository };
  }

  get name(): string {
    return String(this.ref);
  }

  async root(): Promise<SourceDocument> {
    const m = await this.client.getManifest(this.ref);
    return { mediaType: documentMediaType(m.json, m.mediaType), digest: m.digest, json: m.json };
  }

  async document(desc: Descriptor): Promise<SourceDocument> {
    const m = await this.client.getManifest(refWith(this.ref, { digest: desc.digest }));
    return { mediaType: documentMediaType(m.json, m.mediaType ?? desc.mediaType), digest: m.digest, json: m.json };
  }

  /** Cut off at the descriptor's size, digest-checked by the client. */
  async blob(desc: Descriptor): Promise<Buffer> {
    checkWholeSize(desc, this.name);
    return collect(await this.client.blobStream(this.ref.registry, this.ref.repository, desc.digest, undefined, desc.size));
  }

  /** The client cuts the body off at the descriptor's size and checks the digest at its end; the layer reader reads to that end. */
  layer(desc: Descriptor): LayerSource {
    return {
      name: `${this.ref.registry}/${this.ref.repository}@${desc.digest}`,
      size: desc.size,
      open: () => this.client.blobStream(this.ref.registry, this.ref.repository, desc.digest, undefined, desc.size),
    };
  }
}

export class LayoutSource implements ImageSource {
  private constructor(private readonly layout: OciLayout, private readonly tag: string | undefined) {}

  static async open(dir: string, tag?: string): Promise<LayoutSource> {
    return new LayoutSource(await OciLayout.open(dir), tag);
  }

  get name(): string {
    return `oci:${this.layout.dir}${this.tag ? `:${this.tag}` : ''}`;
  }

  async root(): Promise<SourceDocument> {
    return this.document(await this.layout.resolve(this.tag));
  }

  async document(desc: Descriptor): Promise<SourceDocument> {
    const json = JSON.parse((await this.layout.readBlob(desc.digest)).toString('utf8'));
    return { mediaType: documentMediaType(json, desc.mediaType), digest: desc.digest, json };
  }

  blob(desc: Descriptor): Promise<Buffer> {
    checkWholeSize(desc, this.name);
    return this.layout.readBlob(desc.digest, desc.size);
  }

  layer(desc: Descriptor): LayerSource {
    return this.layout.layerSource(desc);
  }
}

/** `oci:<dir>[:tag]` or a directory holding an oci-layout file. */
export async function layoutRefOf(s: string): Promise<{ dir: string; tag?: string } | undefined> {
  const parsed = parseLayoutRef(s);
  if (parsed) return parsed;
  if ((await stat(s).then((st) => st.isDirectory(), () => false)) && (await isLayoutDir(s))) return { dir: s };
  return undefined;
}
