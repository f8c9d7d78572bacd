// `ondine push <outdir> <ref>`: the output of `ondine build` pushed as a Nydus image.
import type { Command } from 'commander';
import { pushOutDir, type PushedImage } from '../../oci/push.js';
import { openImageTarget } from '../../oci/convert.js';
import { parseReference } from '../../registry/reference.js';
import type { RegistryClient } from '../../registry/client.js';
import { formatBytes } from '../progress.js';
import { addRegistryFlags, registryClient } from '../registry-flags.js';

export async function pushBuilt(client: RegistryClient, outDir: string, ref: string): Promise<PushedImage & { target: string }> {
  const target = await openImageTarget(ref, { client, parseReference });
  return { ...(await pushOutDir(target, outDir)), target: target.reference };
}

export function printPushed(p: PushedImage & { target: string }): void {
  const s = p.summary;
  process.stdout.write(`pushed ${p.target} ${p.image.manifest.digest}: ${formatBytes(s.bytesUploaded)} uploaded ` +
    `(${s.blobsUploaded} blobs uploaded, ${s.blobsSkipped} already there, ${s.blobsMounted} mounted)\n`);
}

export function register(program: Command): void {
  const cmd = program.command('push')
    .description('push the output of `ondine build` (bootstrap + blobs/) as a lazy Nydus image')
    .argument('<outdir>', 'build output directory')
    .argument('<ref>', 'image reference, or oci:<dir>:<tag>')
    .option('--json', 'print the result as JSON');
  addRegistryFlags(cmd).action(async (outDir: string, ref: string, o: Record<string, string | boolean | undefined>) => {
    const client = await registryClient(o);
    try {
      const p = await pushBuilt(client, outDir, ref);
      if (o.json) process.stdout.write(JSON.stringify({ target: p.target, digest: p.image.manifest.digest, ...p.summary }, null, 2) + '\n');
      else printPushed(p);
    } finally {
      await client.close();
    }
  });
}
