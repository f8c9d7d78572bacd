// Platforms: parsing `--platform os/arch[/variant]`, this machine's platform in OCI names, and
// picking the manifests of an index that a conversion should handle.
import { InvalidArgumentError } from '../errors.js';
import type { Descriptor, Platform } from './types.js';

export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new InvalidArgumentError(`bad platform "${s}" (expected os/arch or os/arch/variant, e.g. linux/amd64)`);
  }
  return { os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

const NODE_ARCH: Record<string, Platform['architecture']> = {
  x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips64el: 'mips64le',
};

export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  return { os: process.platform === 'win32' ? 'windows' : process.platform, architecture, ...(architecture === 'arm' ? { variant: 'v7' } : {}) };
}

/** Variants that mean the same thing when left out (arm64 is v8 unless it says otherwise). */
function normVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === '')) return 'v8';
  return p.variant || undefined;
}

/** `want` matches `have` when os and architecture agree and `want` names no other variant. */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return false;
  if (want.variant === undefined) return true;
  return normVariant(want) === normVariant(have);
}

/**
 * The image manifests of an index to convert: the one matching `platform`, or every entry with
 * a real platform (buildx attestation manifests say `unknown/unknown` and carry no image).
 */
export function pickManifests(manifests: readonly Descriptor[], platform?: Platform): Descriptor[] {
  const images = manifests.filter((d) => d.platform?.os !== 'unknown' && d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
  if (platform) {
    const m = images.find((d) => platformMatches(platform, d.platform));
    return m ? [m] : [];
  }
  return images;
}
