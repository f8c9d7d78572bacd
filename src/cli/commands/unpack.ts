// `ondine unpack <bootstrap> --blobs <dir> -o <dir>`: each blob's verified uncompressed image.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { checkBootstrapIdentifiers } from '../../format/identifiers.js';
import { parseBootstrap } from '../../format/bootstrap.js';
import { InvalidArgumentError, OndineError } from '../../errors.js';
import { DecodePool, defaultDecodeThreads } from '../../storage/decode-pool.js';
import { LocalDirSource } from '../../storage/local-dir-source.js';
import { unpackBlob } from '../../storage/unpack.js';
import { formatBytes, ProgressLine } from '../progress.js';

export function register(program: Command): void {
  program.command('unpack')
    .description("write each blob's uncompressed image (the content of a kernel cache file), verifying every chunk")
    .argument('<bootstrap>', 'bootstrap file')
    .requiredOption('--blobs <dir>', 'directory holding the blobs, named by blob id')
    .requiredOption('-o, --output <dir>', 'output directory: one file per blob, named by blob id')
    .option('--decode-threads <n>', 'worker threads decompressing and verifying large chunks (default 0 on 2 cores or fewer, else min(4, cores); 0: this thread)')
    .action(async (path: string, o: { blobs: string; output: string; decodeThreads?: string }) => {
      const threads = o.decodeThreads === undefined ? defaultDecodeThreads() : Number(o.decodeThreads);
      if (!Number.isInteger(threads) || threads < 0) throw new InvalidArgumentError(`--decode-threads ${o.decodeThreads}: a non-negative integer`);
      const b = parseBootstrap(await readFile(path));
      if (!b.isRafs) throw new OndineError('ONDINE_ERR_UNSUPPORTED', undefined, `${path} has no RAFS blob table: nothing to unpack`);
      checkBootstrapIdentifiers(b, path); // blob ids name the output files
      await mkdir(o.output, { recursive: true });
      const source = new LocalDirSource(o.blobs);
      const pool = threads > 0 ? new DecodePool({ size: threads }) : undefined;
      const progress = new ProgressLine();
      let failed = 0;
      try {
        for (const entry of b.blobs) {
          const r = await unpackBlob(b, entry, source, join(o.output, entry.blobId), {
            ...(pool ? { pool } : {}),
            onProgress: (p) => progress.update(`unpacking ${p.blobId.slice(0, 12)}: ${p.chunksDone}/${p.chunkCount} chunks`),
          });
          progress.done();
          for (const f of r.failures) process.stderr.write(`error: ${f.message}\n`);
          failed += r.failures.length;
          process.stdout.write(`${r.path}: ${formatBytes(r.uncompressedSize)}, ${r.chunks} chunks, ${r.failures.length ? `${r.failures.length} FAILED` : 'all verified'}\n`);
        }
      } finally {
        await pool?.close();
        await source.close();
      }
      if (failed) throw new OndineError('ONDINE_ERR_DIGEST_MISMATCH', undefined, `${failed} chunk(s) failed verification and were not written`);
    });
}
