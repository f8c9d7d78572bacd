// A child process that reads the files named in argv[2..] all at once (one libuv thread each:
// the parent sets UV_THREADPOOL_SIZE), and prints one JSON line per file as it ends: the
// result ('ok' or the errno code), the bytes read, and the milliseconds from this process's
// own start of that read (so the time the kernel held the read, not the time a loaded machine
// took to start a process). A read the kernel never completes hangs only this process.
import { open } from 'node:fs/promises';
import { writeSync } from 'node:fs';

async function readOne(path: string): Promise<{ result: string; bytes: number; ms: number }> {
  const t0 = performance.now();
  let bytes = 0;
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, bytes);
        if (bytesRead === 0) break;
        bytes += bytesRead;
      }
    } finally {
      await fh.close();
    }
    return { result: 'ok', bytes, ms: Math.round(performance.now() - t0) };
  } catch (err) {
    return { result: (err as NodeJS.ErrnoException).code ?? String(err), bytes, ms: Math.round(performance.now() - t0) };
  }
}

const paths = process.argv.slice(2);
await Promise.all(paths.map(async (path, i) => {
  const r = await readOne(path);
  writeSync(1, JSON.stringify({ i, path, ...r }) + '\n');
}));
