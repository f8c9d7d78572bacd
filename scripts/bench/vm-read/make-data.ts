// Writes the benchmark tree for scripts/bench/vm-read.sh: one big file and a tree of small
// files, deterministic from a fixed seed (the same bytes on every machine and run), and
// prints their expected digests as JSON. The content mixes word-like text (compresses well)
// with random 4 KiB blocks (does not), so zstd lands near 2x, like real image layers.
//
//   node dist/scripts/bench/vm-read/make-data.js <outdir> [--big-mib 256] [--files 5000]
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { rng, treeDigest } from './common.js';

class ContentGen {
  private readonly words: Buffer[] = [];
  constructor(private readonly next: () => number) {
    for (let i = 0; i < 4096; i++) {
      const len = 3 + Math.floor(next() * 8);
      const w = Buffer.alloc(len);
      for (let j = 0; j < len; j++) w[j] = 97 + Math.floor(next() * 26);
      this.words.push(w);
    }
  }

  /** Fills `buf` block by block: a quarter of the 4 KiB blocks random, the rest text. */
  fill(buf: Buffer): void {
    for (let at = 0; at < buf.length; at += 4096) {
      const end = Math.min(at + 4096, buf.length);
      if (this.next() < 0.25) {
        for (let i = at; i < end; i += 4) {
          const v = (this.next() * 4294967296) >>> 0;
          for (let k = 0; k < 4 && i + k < end; k++) buf[i + k] = (v >>> (8 * k)) & 0xff;
        }
        continue;
      }
      let i = at;
      let n = 0;
      while (i < end) {
        const w = this.words[Math.floor(this.next() * this.words.length)]!;
        const take = Math.min(w.length, end - i);
        w.copy(buf, i, 0, take);
        i += take;
        if (i < end) buf[i++] = ++n % 12 === 0 ? 10 : 32;
      }
    }
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const out = args.find((a) => !a.startsWith('--'));
  const opt = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  if (!out) {
    process.stderr.write('usage: make-data <outdir> [--big-mib N] [--files N]\n');
    process.exit(2);
  }
  const bigMiB = opt('--big-mib', 256);
  const nFiles = opt('--files', 5000);
  const gen = new ContentGen(rng(20250101));
  mkdirSync(out, { recursive: true });

  const big = join(out, 'big.bin');
  const fd = openSync(big, 'w');
  const h = createHash('sha256');
  const buf = Buffer.alloc(1 << 20);
  for (let i = 0; i < bigMiB; i++) {
    gen.fill(buf);
    h.update(buf);
    writeSync(fd, buf);
  }
  closeSync(fd);

  // Log-uniform sizes from 256 B to 32 KiB, 50 files a directory.
  const sizes = rng(7);
  const files: Array<{ path: string; sha256: string }> = [];
  let bytes = 0;
  for (let i = 0; i < nFiles; i++) {
    const dir = join('tree', `d${String(Math.floor(i / 50)).padStart(3, '0')}`);
    if (i % 50 === 0) mkdirSync(join(out, dir), { recursive: true });
    const size = Math.round(256 * Math.pow(128, sizes()));
    const data = Buffer.alloc(size);
    gen.fill(data);
    const rel = join(dir, `f${String(i).padStart(5, '0')}.dat`);
    writeFileSync(join(out, rel), data);
    files.push({ path: rel.slice('tree/'.length), sha256: createHash('sha256').update(data).digest('hex') });
    bytes += size;
  }
  process.stdout.write(JSON.stringify({
    big: { path: 'big.bin', bytes: bigMiB << 20, sha256: h.digest('hex') },
    tree: { path: 'tree', files: nFiles, bytes, digest: treeDigest(files) },
  }, null, 2) + '\n');
}

main();
