// The cachefiles front end's view of the catalog: (volume key, cookie key) → the cache file's
// contents (the bootstrap, a chunked data blob, or a flat device image). One BlobCache per
// cache object key, kept across re-opens, since the kernel keeps the same cache file.
import { ChunkedBlobCache, FlatBlobCache } from '../storage/blob-cache.js';
import type { CacheTarget, TargetResolver } from '../kernel/cachefiles/frontend.js';
import { volumeName } from '../kernel/cachefiles/messages.js';
import type { ImageCatalog, ImageRecord } from './catalog.js';

/** Bootstrap bytes written per metadata miss (aligned windows): all of a typical bootstrap. */
const BOOTSTRAP_WINDOW = 8 << 20;

export class CachefilesTargets implements TargetResolver {
  /** Targets by volume and cookie, with the image they came from (a removed image's go stale). */
  private readonly targets = new Map<string, { target: CacheTarget; image: ImageRecord }>();

  constructor(private readonly catalog: ImageCatalog) {}

  resolve(volumeKey: string, cookieKey: string): CacheTarget | undefined {
    const volume = volumeName(volumeKey);
    if (volume === undefined) return undefined;
    const key = `${volume}\0${cookieKey}`;
    const known = this.targets.get(key);
    if (known && this.catalog.inVolume(volume).includes(known.image)) {
      // A new OPEN of a known object: the kernel may have replaced its cache file (culled,
      // or its size did not match), so what this daemon knew present must be asked again.
      if (known.target.cache instanceof ChunkedBlobCache) known.target.cache.resetPresence();
      return known.target;
    }
    this.targets.delete(key);
    const made = this.make(volume, cookieKey);
    if (made) this.targets.set(key, made);
    return made?.target;
  }

  private make(volume: string, cookieKey: string): { target: CacheTarget; image: ImageRecord } | undefined {
    const own = this.catalog.image(volume, cookieKey);
    if (own) {
      const bytes = own.bytes;
      // The whole bootstrap is in memory: the first metadata READ writes all of it (up to
      // BOOTSTRAP_WINDOW at a time), so metadata never costs a READ round trip again.
      return {
        image: own,
        target: {
          size: bytes.length,
          label: `bootstrap:${own.spec.fsid}`,
          cache: new FlatBlobCache(bytes.length, async (o, n) => bytes.subarray(o, Math.min(o + n, bytes.length)), { window: BOOTSTRAP_WINDOW }),
        },
      };
    }
    for (const rec of this.catalog.inVolume(volume)) {
      const flat = rec.flat.get(cookieKey);
      if (flat) {
        return { image: rec, target: { size: flat.size, label: `device:${cookieKey}`, cache: new FlatBlobCache(flat.size, (o, n) => flat.read(o, Math.min(n, flat.size - o))) } };
      }
      const index = rec.bootstrap.devices.findIndex((d) => d.tag === cookieKey);
      const entry = index >= 0 ? rec.bootstrap.blobs[index] : undefined;
      if (entry) {
        const handle = this.catalog.blob(rec.source, entry, rec.bootstrap);
        return {
          image: rec,
          target: {
            size: entry.uncompressedSize,
            label: `blob:${entry.blobId.slice(0, 12)}`,
            cache: new ChunkedBlobCache(entry.uncompressedSize, handle, { ...(this.catalog.opts.amplifyBytes !== undefined ? { amplifyBytes: this.catalog.opts.amplifyBytes } : {}), ...(this.catalog.opts.failedChunkMs !== undefined ? { failedChunkMs: this.catalog.opts.failedChunkMs } : {}) }),
          },
        };
      }
    }
    return undefined;
  }
}
