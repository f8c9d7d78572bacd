// Mount by reference: the blobs an image's bootstrap names must be the data layers its
// manifest lists. The manifest is what the registry vouches for (by digest); a bootstrap whose
// blob table names anything else (another repository's blob, a made-up id) is refused before
// the image is stored, mounted or registered.
import { OndineError } from '../errors.js';
import { parseBootstrap, type Bootstrap } from '../format/bootstrap.js';
import { blobIdOfDigest, checkBootstrapIdentifiers, quoteIdentifier } from '../format/identifiers.js';
import { blobLayers } from './nydus-image.js';

/** A bootstrap blob that is not a data layer of the image's manifest. */
export class ForeignBlobError extends OndineError {
  constructor(readonly image: string, readonly blobIndex: number, readonly blobId: string) {
    super('ONDINE_ERR_FOREIGN_BLOB', undefined,
      `${image}: blob ${blobIndex + 1} of its bootstrap (${quoteIdentifier(blobId)}) is not a data layer of its manifest: refusing to mount it`);
  }
}

/** Checks every blob id of `bootstrap` (grammar, then membership in the manifest's data layers). */
export function checkBlobsInManifest(bootstrap: Bootstrap, manifest: unknown, image: string): void {
  checkBootstrapIdentifiers(bootstrap, `the bootstrap of ${image}`);
  const layers = new Set(blobLayers(manifest).map((l) => blobIdOfDigest(l.digest)).filter((id): id is string => id !== undefined));
  bootstrap.blobs.forEach((e, i) => {
    if (!layers.has(e.blobId)) throw new ForeignBlobError(image, i, e.blobId);
  });
}

/** The same, from the bootstrap's bytes (parsed here: a broken one fails with its CorruptError). */
export function checkBootstrapBytesInManifest(bytes: Uint8Array, manifest: unknown, image: string): Bootstrap {
  const b = parseBootstrap(bytes);
  checkBlobsInManifest(b, manifest, image);
  return b;
}
