// Picking the manifests of an index that a conversion should handle. Parsing, naming and
// matching platforms live with the registry client (src/registry/platform.ts), which resolves
// one platform the same way.
import { platformMatches, type Platform } from '../registry/platform.js';
import type { Descriptor } from './types.js';

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
