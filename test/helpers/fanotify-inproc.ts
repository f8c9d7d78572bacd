// The fanotify front end in the test's own process, as `daemon --no-supervisor` runs it: a
// pre-content group, FanotifyMounts over a cache directory, the front end and the group
// reader. For tests that drive mounts directly, without a daemon process.
import { FanotifyFrontend } from '../../src/kernel/fanotify/frontend.js';
import { GroupReader } from '../../src/kernel/fanotify/group-reader.js';
import { openFanotifyGroup } from '../../src/kernel/fanotify/group.js';
import { FanotifyMounts, type BlobProvider } from '../../src/kernel/fanotify/mounts.js';
import { closeFd } from '../../src/native/index.js';
import { CacheFileIo } from '../../src/storage/cache-file.js';

export interface InProcessFanotify {
  mounts: FanotifyMounts;
  /** Detaches every mount, lets queued fills settle, then closes the reader and the group. */
  close(): Promise<void>;
}

export function startInProcessFanotify(blobs: BlobProvider, cacheDir: string, statePath: string): InProcessFanotify {
  const group = openFanotifyGroup();
  const mounts = new FanotifyMounts(blobs, cacheDir, group, statePath);
  const frontend = new FanotifyFrontend(new CacheFileIo(), mounts, (fd) => closeFd(fd));
  const reader = new GroupReader(group, frontend);
  reader.start();
  return {
    mounts,
    async close() {
      await mounts.umountAll();
      await frontend.idle();
      reader.close();
      mounts.close();
      closeFd(group);
    },
  };
}
