// A reader run as its own process by fanotify end-to-end tests, so that a read the kernel
// never completes can hang only this process, never the test. It reads the jobs listed in the
// JSON file named by argv[2] (whole files, or byte ranges; thousands of paths outgrow one
// argument) and writes one JSON line per job as it finishes it, so the test sees progress and
// can tell a hang from slow work.
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';

export interface ReadJob {
  path: string;
  /** Byte range to read (default: the whole file). */
  offset?: number;
  length?: number;
}

export interface ReadOutcome {
  /** Index of the job in the list. */
  i: number;
  /** 'ok', or the errno code of the first failed read ('EIO', 'ENOENT', …). */
  result: string;
  /** sha256 of the bytes read (present when result is 'ok'). */
  sha?: string;
  /** Bytes read before the failure or end. */
  bytes: number;
  /** 4 KiB blocks of what was read that are all zeros. */
  zeroBlocks: number;
}

function readJob(job: ReadJob, buf: Buffer): Omit<ReadOutcome, 'i'> {
  let fd: number;
  try {
    fd = openSync(job.path, 'r');
  } catch (err) {
    return { result: (err as NodeJS.ErrnoException).code ?? String(err), bytes: 0, zeroBlocks: 0 };
  }
  const hash = createHash('sha256');
  let at = job.offset ?? 0;
  const end = job.length === undefined ? Infinity : at + job.length;
  let bytes = 0;
  let zeroBlocks = 0;
  try {
    while (at < end) {
      const want = Math.min(buf.length, end - at);
      const n = readSync(fd, buf, 0, want, at);
      if (n === 0) break;
      const got = buf.subarray(0, n);
      hash.update(got);
      for (let b = 0; b < n; b += 4096) {
        const block = got.subarray(b, Math.min(n, b + 4096));
        if (block.every((x) => x === 0)) zeroBlocks++;
      }
      at += n;
      bytes += n;
    }
  } catch (err) {
    return { result: (err as NodeJS.ErrnoException).code ?? String(err), bytes, zeroBlocks };
  } finally {
    closeSync(fd);
  }
  return { result: 'ok', sha: hash.digest('hex'), bytes, zeroBlocks };
}

const jobs = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ReadJob[];
const buf = Buffer.allocUnsafe(1 << 20);
for (let i = 0; i < jobs.length; i++) {
  const out: ReadOutcome = { i, ...readJob(jobs[i]!, buf) };
  writeSync(1, JSON.stringify(out) + '\n');
}
