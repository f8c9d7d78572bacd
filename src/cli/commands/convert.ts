// `ondine convert <source> <target>`: an OCI image (registry or OCI layout) → a Nydus image.
import type { Command } from 'commander';
import { convert } from '../../oci/convert.js';
import { parsePlatform } from '../../registry/platform.js';
import { parseReference } from '../../registry/reference.js';
import { InvalidArgumentError } from '../../errors.js';
import { formatBytes, ProgressLine } from '../progress.js';
import { addRegistryFlags, registryClient } from '../registry-flags.js';
import { parseSize } from './build.js';
import { formatStages } from '../../builder/stages.js';

export function register(program: Command): void {
  const cmd = program.command('convert')
    .description('convert an OCI image (registry reference, or OCI layout oci:<dir>[:tag]) into a lazy Nydus image pushed to <target> (a reference, or oci:<dir>:<tag>)')
    .argument('<source>', 'image reference, oci:<dir>[:tag], or an OCI layout directory')
    .argument('<target>', 'image reference to push to, or oci:<dir>:<tag>')
    .option('--platform <os/arch[/variant]>', 'convert only this platform of a multi-platform image (default: all)')
    .option('--chunk-dict <ref|bootstrap>', 'reuse chunks of an existing Nydus image (a reference) or bootstrap file')
    .option('--chunk-size <size>', 'chunk size, a power of two from 4K to 16M', '1M')
    .option('--compressor <name>', 'zstd | lz4 | none', 'zstd')
    .option('--digest <name>', 'blake3 | sha256', 'blake3')
    .option('--workers <n>', 'compression threads (default: one per core)')
    .option('--work-dir <dir>', 'scratch directory for blobs before upload (default: under $TMPDIR)')
    .option('--json', 'print the result as JSON');
  addRegistryFlags(cmd).action(async (source: string, target: string, o: Record<string, string | boolean | undefined>) => {
    const compressor = String(o.compressor);
    if (!['zstd', 'lz4', 'none'].includes(compressor)) throw new InvalidArgumentError(`--compressor ${compressor}: use zstd, lz4 or none`);
    const digest = String(o.digest);
    if (!['blake3', 'sha256'].includes(digest)) throw new InvalidArgumentError(`--digest ${digest}: use blake3 or sha256`);
    const client = await registryClient(o);
    const progress = new ProgressLine();
    try {
      const r = await convert(source, target, { client, parseReference }, {
        chunkSize: parseSize(String(o.chunkSize)), compressor: compressor as 'zstd', digest: digest as 'blake3',
        ...(o.platform ? { platform: parsePlatform(String(o.platform)) } : {}),
        ...(o.chunkDict ? { chunkDict: String(o.chunkDict) } : {}),
        ...(o.workers ? { workers: Number(o.workers) } : {}),
        ...(o.workDir ? { workDir: String(o.workDir) } : {}),
        onProgress: (p) => progress.update(() => p.phase === 'build'
          ? `converting ${p.platform} [${p.platformIndex + 1}/${p.platformCount}]: layer ${p.layerIndex + 1}/${p.layerCount}, ${formatBytes(p.bytesRead)} read, ${formatBytes(p.storedBytes)} stored`
          : `pushing ${p.platform} [${p.platformIndex + 1}/${p.platformCount}]: ${p.blobsPushed}/${p.blobsToPush} blobs, ${formatBytes(p.bytesUploaded)} uploaded`),
        onWarning: (m) => { progress.done(); process.stderr.write(`warning: ${m}\n`); },
      });
      progress.done();
      // Where the time went, one line per stage on stderr (stdout keeps the result).
      for (const line of formatStages(r.stages, formatBytes)) process.stderr.write(`stage ${line}\n`);
      if (o.json) {
        const { platforms, ...rest } = r;
        process.stdout.write(JSON.stringify({ ...rest, platforms: platforms.map(({ build, ...p }) => ({ ...p, inodes: build.inodes, dedupRatio: build.dedupRatio })) }, null, 2) + '\n');
        return;
      }
      for (const p of r.platforms) {
        process.stdout.write(`${p.platform}: ${p.layers} layers -> ${p.blobs} blobs + bootstrap, manifest ${p.manifestDigest}\n`);
      }
      const s = r.push;
      process.stdout.write(`${r.target} ${r.digest}\n`);
      process.stdout.write(`${formatBytes(r.bytesRead)} read, ${formatBytes(r.bytesWritten)} written, ${formatBytes(s.bytesUploaded)} uploaded ` +
        `(${s.blobsUploaded} blobs uploaded, ${s.blobsSkipped} already there, ${s.blobsMounted} mounted) in ${(r.elapsedMs / 1000).toFixed(2)} s\n`);
    } finally {
      progress.done();
      await client.close();
    }
  });
}
