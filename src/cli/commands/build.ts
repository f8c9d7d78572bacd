// `ondine build <source...> -o <outdir>`
import type { Command } from 'commander';
import { build } from '../../builder/builder.js';
import { formatBytes, ProgressLine } from '../progress.js';
import { InvalidArgumentError } from '../../errors.js';
import { addRegistryFlags, registryClient } from '../registry-flags.js';
import { printPushed, pushBuilt } from './push.js';

export function parseSize(v: string): number {
  const m = /^(\d+)\s*([kKmM]i?[bB]?)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`bad size "${v}" (e.g. 1048576, 64K, 1M)`);
  const unit = (m[2] ?? '').toLowerCase();
  return Number(m[1]) * (unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1 << 20 : 1);
}

export function register(program: Command): void {
  const cmd = program.command('build')
    .description('build a lazy image (bootstrap + blobs) from a directory or OCI layer tarballs (.tar, .tar.gz, .tar.zst) applied in order')
    .argument('<source...>', 'a directory, or layer tarballs, lowest layer first')
    .requiredOption('-o, --output <dir>', 'output directory: <dir>/bootstrap and <dir>/blobs/<sha256>')
    .option('--chunk-size <size>', 'chunk size, a power of two from 4K to 16M', '1M')
    .option('--compressor <name>', 'zstd | lz4 | none', 'zstd')
    .option('--level <n>', 'compression level (zstd 1-19)')
    .option('--digest <name>', 'blake3 | sha256', 'blake3')
    .option('--chunk-dict <bootstrap>', "reuse chunks that an existing image's blobs already hold")
    .option('--workers <n>', 'compression threads (default: one per core)')
    .option('--json', 'print the result as JSON')
    .option('--push <ref>', 'then push the image to a registry reference (or oci:<dir>:<tag>)');
  addRegistryFlags(cmd).action(async (sources: string[], o: Record<string, string | boolean | undefined>) => {
      const compressor = String(o.compressor);
      if (!['zstd', 'lz4', 'none'].includes(compressor)) throw new InvalidArgumentError(`--compressor ${compressor}: use zstd, lz4 or none`);
      const digest = String(o.digest);
      if (!['blake3', 'sha256'].includes(digest)) throw new InvalidArgumentError(`--digest ${digest}: use blake3 or sha256`);
      // Credentials are read (stdin, helpers) before the build, so a mistake there costs nothing.
      const client = o.push ? await registryClient(o) : undefined;
      const progress = new ProgressLine();
      let r;
      let pushed: Awaited<ReturnType<typeof pushBuilt>> | undefined;
      try {
        r = await build({
          sources, outDir: String(o.output), chunkSize: parseSize(String(o.chunkSize)),
          compressor: compressor as 'zstd', digest: digest as 'blake3',
          ...(o.level ? { level: Number(o.level) } : {}),
          ...(o.workers ? { workers: Number(o.workers) } : {}),
          ...(o.chunkDict ? { chunkDict: String(o.chunkDict) } : {}),
          onProgress: (p) => progress.update(() => `building: ${formatBytes(p.bytesIn)} read, ${p.uniqueChunks} chunks stored (${formatBytes(p.storedBytes)})`),
          onWarning: (m) => { progress.done(); process.stderr.write(`warning: ${m}\n`); },
        });
        progress.done();
        if (client) pushed = await pushBuilt(client, String(o.output), String(o.push));
      } finally {
        await client?.close();
      }
      if (o.json) {
        const push = pushed ? { target: pushed.target, digest: pushed.image.manifest.digest, ...pushed.summary } : undefined;
        process.stdout.write(JSON.stringify(push ? { ...r, push } : r, null, 2) + '\n');
        return;
      }
      const secs = r.elapsedMs / 1000;
      process.stdout.write(`bootstrap ${r.bootstrapPath} (${r.inodes} inodes)\n`);
      for (const b of r.blobs) {
        process.stdout.write(`blob ${b.blobId} ${formatBytes(b.compressedSize)} compressed, ${formatBytes(b.uncompressedSize)} uncompressed, ${b.chunkCount} chunks${b.fromDict ? ' (from chunk dict)' : ''}\n`);
      }
      process.stdout.write(`${formatBytes(r.bytesIn)} in ${secs.toFixed(2)} s (${(r.bytesIn / 1e6 / secs).toFixed(1)} MB/s); ` +
        `${r.chunks} chunks, ${r.uniqueChunks} stored, ${r.holeChunks} holes, dedup ratio ${r.dedupRatio.toFixed(3)}\n`);
      if (pushed) printPushed(pushed);
    });
}
