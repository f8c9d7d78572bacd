// `ondine inspect <bootstrap> [--json] [--tree]`
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseBootstrap, type Bootstrap } from '../../format/bootstrap.js';
import { Compressor, DigestAlgo, S_IFMT, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK } from '../../format/constants.js';
import { formatBytes } from '../progress.js';

export interface ImageSummary {
  blockSize: number;
  rafs: boolean;
  inodes: number;
  rootNid: number;
  chunkSize: number;
  buildTime: number;
  blobs: Array<{ index: number; blobId: string; compressor: string; digest: string; compressedSize: number; uncompressedSize: number; chunkCount: number; referencedChunks: number }>;
  files: number;
  dataBytes: number;
  chunkRefs: number;
  uniqueChunks: number;
  holes: number;
  dedupRatio: number;
  tree?: Array<{ path: string; mode: string; uid: number; gid: number; size: number; nlink: number; target?: string; rdev?: string; chunks?: number; xattrs?: string[] }>;
}

export function summarize(b: Bootstrap, withTree: boolean): ImageSummary {
  let files = 0;
  let dataBytes = 0;
  let chunkRefs = 0;
  let holes = 0;
  const unique = new Set<string>();
  const perBlob = new Map<number, Set<number>>();
  const tree: NonNullable<ImageSummary['tree']> = [];
  for (const { path, ino } of b.walk()) {
    const type = ino.mode & S_IFMT;
    let chunks: number | undefined;
    if (type === S_IFREG) {
      files++;
      dataBytes += ino.size;
      if (ino.size > 0 && ino.layout === 4) {
        const map = b.chunkMap(ino);
        chunks = map.length;
        for (const m of map) {
          if (m.chunk.blkaddr === 0xffffffff) { holes++; continue; }
          chunkRefs++;
          unique.add(`${m.chunk.deviceId}:${m.chunk.blkaddr}`);
          let s = perBlob.get(m.chunk.deviceId - 1);
          if (!s) perBlob.set(m.chunk.deviceId - 1, (s = new Set()));
          s.add(m.chunk.blkaddr);
        }
      }
    }
    if (withTree) {
      const row: NonNullable<ImageSummary['tree']>[number] = { path, mode: ino.mode.toString(8).padStart(6, '0'), uid: ino.uid, gid: ino.gid, size: ino.size, nlink: ino.nlink };
      if (type === S_IFLNK) row.target = b.readSymlink(ino);
      if (type === S_IFCHR || type === S_IFBLK) { const d = b.rdev(ino); row.rdev = `${d.major}:${d.minor}`; }
      if (chunks !== undefined) row.chunks = chunks;
      if (ino.xattrs.size) row.xattrs = [...ino.xattrs.keys()];
      tree.push(row);
    }
  }
  const blobs = b.devices.map((d, i) => {
    const e = b.blobs[i];
    return {
      index: i, blobId: d.tag || e?.blobId || '',
      compressor: e ? (Compressor[e.compressor] ?? String(e.compressor)).toLowerCase() : 'unknown',
      digest: e ? (DigestAlgo[e.digester] ?? String(e.digester)).toLowerCase() : 'unknown',
      compressedSize: e?.compressedSize ?? 0, uncompressedSize: e?.uncompressedSize ?? d.blocks * b.blockSize,
      chunkCount: e?.chunkCount ?? 0, referencedChunks: perBlob.get(i)?.size ?? 0,
    };
  });
  return {
    blockSize: b.blockSize, rafs: b.isRafs, inodes: b.sb.inos, rootNid: b.sb.rootNid, chunkSize: b.chunkSize,
    buildTime: b.sb.buildTime, blobs, files, dataBytes, chunkRefs, uniqueChunks: unique.size, holes,
    dedupRatio: unique.size ? chunkRefs / unique.size : 1,
    ...(withTree ? { tree } : {}),
  };
}

export function register(program: Command): void {
  program.command('inspect')
    .description('show what an image holds: superblock, blobs, chunks, dedup ratio, files')
    .argument('<bootstrap>', 'bootstrap file')
    .option('--json', 'machine-readable output')
    .option('--tree', 'list every file')
    .action(async (path: string, o: { json?: boolean; tree?: boolean }) => {
      const b = parseBootstrap(await readFile(path));
      const s = summarize(b, o.tree === true || o.json === true);
      if (o.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      const out: string[] = [];
      out.push(`image: ${path}`);
      out.push(`  format: EROFS${s.rafs ? ' (Nydus RAFS v6)' : ''}, block size ${s.blockSize}, ${s.inodes} inodes, root nid ${s.rootNid}${s.chunkSize ? `, chunk size ${formatBytes(s.chunkSize)}` : ''}`);
      out.push(`  files: ${s.files} regular, ${formatBytes(s.dataBytes)} of data; ${s.chunkRefs} chunk references, ${s.uniqueChunks} unique, ${s.holes} holes; dedup ratio ${s.dedupRatio.toFixed(3)}`);
      out.push(`  blobs: ${s.blobs.length}`);
      for (const bl of s.blobs) {
        out.push(`    [${bl.index}] ${bl.blobId}  ${bl.compressor}/${bl.digest}  ${formatBytes(bl.compressedSize)} compressed, ${formatBytes(bl.uncompressedSize)} uncompressed, ${bl.chunkCount} chunks (${bl.referencedChunks} referenced)`);
      }
      if (o.tree) {
        for (const f of s.tree ?? []) {
          const extra = f.target !== undefined ? ` -> ${f.target}` : f.rdev ? ` dev ${f.rdev}` : '';
          out.push(`${f.mode} ${String(f.uid).padStart(5)} ${String(f.gid).padStart(5)} ${String(f.size).padStart(12)}  ${f.path}${extra}`);
        }
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
