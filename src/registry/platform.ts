// Manifest media types and choosing one platform's manifest out of an OCI index or a Docker
// manifest list, the way `docker pull` does for this machine (linux/<arch>[/variant]).
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { MEDIA_TYPE } from './media-types.js';

/** Accept header for manifests: every manifest and index type Ondine understands. */
export const MANIFEST_ACCEPT = [MEDIA_TYPE.ociManifest, MEDIA_TYPE.ociIndex, MEDIA_TYPE.dockerManifest, MEDIA_TYPE.dockerManifestList].join(', ');

/** A platform as OCI descriptors and `--platform` name it (the one type for every layer). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
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

/** `linux/arm64/v8` -> Platform (what `--platform` and the API's `platform` take). */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new InvalidArgumentError(`bad platform "${s}" (expected os/arch or os/arch/variant, e.g. linux/amd64)`);
  }
  return { os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) };
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
  return p.variant || (p.architecture === 'arm64' ? 'v8' : undefined);
}

/** `have` is what `wanted` asks for: same os and architecture, same variant when one is asked for. */
export function platformMatches(wanted: Platform, have: { os?: string; architecture?: string; variant?: string } | undefined): boolean {
  if (have === undefined || have.os !== wanted.os || have.architecture !== wanted.architecture) return false;
  return wanted.variant === undefined || variantOf(have) === variantOf(wanted);
}

/**
 * The entry for `wanted`: same os and architecture, same variant when one is asked for. Among
 * several, entries carrying every one of `osFeatures` come first, then entries without any
 * os.features (the plain image rather than a Nydus sibling), then index order.
 */
export function pickPlatform(entries: IndexEntry[], wanted: Platform, where: string, osFeatures: string[] = []): IndexEntry {
  const matches = entries.filter((e) => platformMatches(wanted, e.platform));
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
