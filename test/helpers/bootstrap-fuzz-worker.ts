// Worker thread for the bootstrap mutation test: it parses and fully reads mutated bootstraps
// (walk, directories, symlinks, chunk maps, devices, xattrs, and the CLI's `inspect` summary)
// and reports, per mutation, whether the outcome was acceptable: success, or an OndineError with
// a stable code. It runs in a worker so that a parser stuck in a loop can be stopped and named
// by the main thread instead of hanging the test run.
import { parentPort, workerData } from 'node:worker_threads';

import { OndineError } from '../../src/errors.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { S_IFMT, S_IFLNK, S_IFREG } from '../../src/format/constants.js';
import { summarize } from '../../src/cli/commands/inspect.js';
import { mutate, type Region } from './mutations.js';

export interface FuzzJob {
  bootstrap: Uint8Array;
  regions: Region[];
  seed: number;
  from: number;
  to: number;
}

export type FuzzMessage =
  | { type: 'start'; index: number }
  | { type: 'bad'; index: number; desc: string; error: string }
  | { type: 'done'; accepted: number; codes: Record<string, number>; walkedInodes: number };

const STABLE_CODE = /^ONDINE_ERR_[A-Z0-9_]+$/;

function exercise(buf: Buffer, verifyChecksum: boolean): number {
  const b = parseBootstrap(buf, { verifyChecksum });
  let inodes = 0;
  for (const { ino } of b.walk()) {
    if (++inodes > 1_000_000) throw new Error('walk yielded a million entries from a small image');
    const type = ino.mode & S_IFMT;
    if (type === S_IFLNK) b.readSymlink(ino);
    if (type === S_IFREG && ino.size > 0) b.chunkMap(ino);
    b.rdev(ino);
    for (const [name, value] of ino.xattrs) if (typeof name !== 'string' || !(value instanceof Uint8Array)) throw new Error('bad xattr shape');
  }
  for (let i = 0; i < b.devices.length; i++) b.blobIdOfDevice(i + 1);
  summarize(b, true);
  return inodes;
}

if (parentPort) {
  const job = workerData as FuzzJob;
  const orig = Buffer.from(job.bootstrap);
  const codes: Record<string, number> = {};
  let accepted = 0;
  let walkedInodes = 0;
  for (let i = job.from; i < job.to; i++) {
    parentPort.postMessage({ type: 'start', index: i } satisfies FuzzMessage);
    const m = mutate(orig, job.regions, job.seed, i);
    try {
      walkedInodes += exercise(m.data, m.verifyChecksum);
      accepted++;
    } catch (err) {
      if (err instanceof OndineError && STABLE_CODE.test(err.code)) {
        codes[err.code] = (codes[err.code] ?? 0) + 1;
      } else {
        parentPort.postMessage({ type: 'bad', index: i, desc: m.desc, error: (err as Error)?.stack ?? String(err) } satisfies FuzzMessage);
      }
    }
  }
  parentPort.postMessage({ type: 'done', accepted, codes, walkedInodes } satisfies FuzzMessage);
}
