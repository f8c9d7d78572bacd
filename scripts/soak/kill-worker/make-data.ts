// Writes the source trees of scripts/soak/kill-worker.sh and prints what every file must read
// as (sha256 per file, JSON): one big file (src-big/big.bin) and a tree of many small files
// in nested directories (src-tree/). Deterministic from fixed seeds. A quarter of the 4 KiB
// blocks are pseudo-random (AES-CTR keystream), the rest word-like text, so zstd lands near
// 2x; every block starts with its own index, so none is all zeros and none dedups with
// another: zeros read back anywhere are always wrong.
//
//   node dist/scripts/soak/kill-worker/make-data.js <outdir> [--big-mib 512] [--files 20000]
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../../../test/helpers/prng.js';

export interface SoakExpected {
  big: { path: string; bytes: number; sha256: string };
  tree: Array<{ path: string; bytes: number; sha256: string }>;
}

class BlockGen {
  private readonly text: Buffer;
  private readonly keystream = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  private readonly zeros = Buffer.alloc(4096);
  private block = 0n;

  constructor(private readonly next: () => number) {
    const words: Buffer[] = [];
    for (let i = 0; i < 2048; i++) {
      const w = Buffer.alloc(3 + Math.floor(next() * 8));
      for (let j = 0; j < w.length; j++) w[j] = 97 + Math.floor(next() * 26);
      words.push(w);
    }
    const text = Buffer.alloc(1 << 20);
    for (let i = 0, n = 0; i < text.length;) {
      const w = words[Math.floor(next() * words.length)]!;
      i += w.copy(text, i);
      if (i < text.length) text[i++] = ++n % 12 === 0 ? 10 : 32;
    }
    this.text = text;
  }

  fill(buf: Buffer): void {
    for (let at = 0; at < buf.length; at += 4096) {
      const end = Math.min(at + 4096, buf.length);
      const len = end - at;
      if (this.next() < 0.25) {
        this.keystream.update(this.zeros.subarray(0, len)).copy(buf, at);
      } else {
        const from = Math.floor(this.next() * (this.text.length - len));
        this.text.copy(buf, at, from, from + len);
      }
      const stamp = Buffer.from(`#${(this.block++).toString(16)}#`);
      stamp.copy(buf, at, 0, Math.min(stamp.length, len));
    }
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const out = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  const opt = (name: string, dflt: number): number => {
    const i = args.indexOf(name);
    const v = i >= 0 ? Number(args[i + 1]) : dflt;
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} wants a positive integer`);
    return v;
  };
  if (!out) {
    process.stderr.write('usage: make-data <outdir> [--big-mib N] [--files N]\n');
    process.exit(2);
  }
  const bigMiB = opt('--big-mib', 512);
  const nFiles = opt('--files', 20000);
  const gen = new BlockGen(mulberry32(20260501));

  mkdirSync(join(out, 'src-big'), { recursive: true });
  const fd = openSync(join(out, 'src-big', 'big.bin'), 'w');
  const h = createHash('sha256');
  const buf = Buffer.alloc(1 << 20);
  for (let i = 0; i < bigMiB; i++) {
    gen.fill(buf);
    h.update(buf);
    writeSync(fd, buf);
  }
  closeSync(fd);

  // Sizes log-uniform from 1 KiB to 64 KiB (not page multiples), 50 files per leaf directory,
  // 20 leaves per parent.
  const sizes = mulberry32(11);
  const tree: SoakExpected['tree'] = [];
  for (let i = 0; i < nFiles; i++) {
    const leaf = Math.floor(i / 50);
    const dir = join(`p${String(Math.floor(leaf / 20)).padStart(3, '0')}`, `d${String(leaf % 20).padStart(2, '0')}`);
    if (i % 50 === 0) mkdirSync(join(out, 'src-tree', dir), { recursive: true });
    const data = Buffer.alloc(Math.round(1024 * Math.pow(64, sizes())));
    gen.fill(data);
    const path = join(dir, `f${String(i).padStart(5, '0')}.dat`);
    writeFileSync(join(out, 'src-tree', path), data);
    tree.push({ path, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') });
  }
  const expected: SoakExpected = { big: { path: 'big.bin', bytes: bigMiB << 20, sha256: h.digest('hex') }, tree };
  process.stdout.write(JSON.stringify(expected) + '\n');
}

main();
