// Manifest media types and choosing one platform's manifest out of an OCI index or a Docker
// manifest list, the way `docker pull` does for this machine (linux/<arch>[/variant]).
import { NotFoundError } from '../errors.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** Accept header for manifests: every type Ondine understands. */
export const MANIFEST_ACCEPT = Object.values(MEDIA_TYPES).join(', ');

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
}

/** This machine's platform in OCI terms (always linux: that is what Ondine mounts). */
export function defaultPlatform(arch: string = process.arch): Platform {
  switch (arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64' };
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { os: 'linux', architecture: '386' };
    case 'ppc64':
      return { os: 'linux', architecture: 'ppc64le' };
    default:
      return { os: 'linux', architecture: arch };
  }
}

/** `linux/arm64/v8` -> Platform. */
export function parsePlatform(s: string): Platform {
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw new NotFoundError(`platform ${JSON.stringify(s)} (expected os/arch[/variant])`);
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  return p;
}

export function formatPlatform(p: { os?: string; architecture?: string; variant?: string }): string {
  return `${p.os ?? '?'}/${p.architecture ?? '?'}${p.variant ? `/${p.variant}` : ''}`;
}

export interface IndexEntry {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string; 'os.features'?: string[] };
}

/** No entry of an index matches the platform asked for; lists what there is. */
export class PlatformNotFoundError extends NotFoundError {
  readonly retryable = false;
  constructor(readonly wanted: Platform, readonly available: string[], where: string) {
    super(`${where}: no manifest for platform ${formatPlatform(wanted)} (available: ${available.length > 0 ? available.join(', ') : 'none'})`);
  }
}

function variantOf(p: { architecture?: string; variant?: string }): string | undefined {
  // arm64 images usually leave out the v8 everyone means.
  return p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
}

/**
 * The entry for `wanted`: same os and architecture, same variant when one is asked for. Among
 * several, entries carrying every one of `osFeatures` come first, then entries without any
 * os.features (the plain image rather than a Nydus sibling), then index order.
 */
export function pickPlatform(entries: IndexEntry[], wanted: Platform, where: string, osFeatures: string[] = []): IndexEntry {
  const wantVariant = wanted.variant !== undefined ? variantOf(wanted) : undefined;
  const matches = entries.filter((e) => {
    const p = e.platform;
    if (p === undefined || p.os !== wanted.os || p.architecture !== wanted.architecture) return false;
    return wantVariant === undefined || variantOf(p) === wantVariant;
  });
  if (matches.length === 0) {
    const available = [...new Set(entries.filter((e) => e.platform !== undefined).map((e) => formatPlatform(e.platform!)))];
    throw new PlatformNotFoundError(wanted, available, where);
  }
  const rank = (e: IndexEntry): number => {
    const features = e.platform?.['os.features'] ?? [];
    if (osFeatures.length > 0 && osFeatures.every((f) => features.includes(f))) return 0;
    return features.length === 0 ? 1 : 2;
  };
  return matches.reduce((best, e) => (rank(e) < rank(best) ? e : best));
}
