// Disk usage of one directory tree as containerd's fs.DiskUsage counts it: allocated blocks
// of each inode once (hard links count once), and the number of inodes. Only ever pointed at
// a snapshot's own upper dir: never at an EROFS mount (that would fetch nothing, but would
// walk a whole image every time CRI asks, every 10 s per container).
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export async function diskUsage(dir: string): Promise<{ size: number; inodes: number }> {
  const seen = new Set<string>();
  let size = 0;
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await lstat(p, { bigint: true });
    } catch {
      return; // removed while walking
    }
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += Number(st.blocks) * 512;
    }
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = await readdir(p);
    } catch {
      return;
    }
    for (const n of names) await walk(join(p, n));
  };
  await walk(dir);
  return { size, inodes: seen.size };
}
