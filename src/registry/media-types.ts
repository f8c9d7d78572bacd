// The names the OCI image spec, Docker's schema 2 and Nydus give to documents, layers and
// annotations: one place, so a typo cannot make an image that other tools ignore.
export const MEDIA_TYPE = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  nydusBlob: 'application/vnd.oci.image.layer.nydus.blob.v1',
} as const;

export const ANNOTATION = {
  nydusBlob: 'containerd.io/snapshot/nydus-blob',
  nydusBootstrap: 'containerd.io/snapshot/nydus-bootstrap',
  nydusFsVersion: 'containerd.io/snapshot/nydus-fs-version',
  refName: 'org.opencontainers.image.ref.name',
} as const;

/** `platform.os.features` entry that marks a Nydus manifest inside an index. */
export const NYDUS_OS_FEATURE = 'nydus.remoteimage.v1';
/** Where the bootstrap lives inside the bootstrap layer's tar. */
export const BOOTSTRAP_ENTRY = 'image/image.boot';

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MEDIA_TYPE.ociIndex || mt === MEDIA_TYPE.dockerManifestList;
}

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MEDIA_TYPE.ociManifest || mt === MEDIA_TYPE.dockerManifest;
}

/** Layer media types whose bytes are a (possibly compressed) tar the builder can read. */
export function isTarLayerMediaType(mt: string): boolean {
  return mt.startsWith('application/vnd.oci.image.layer.v1.tar') || mt.startsWith('application/vnd.docker.image.rootfs.');
}
