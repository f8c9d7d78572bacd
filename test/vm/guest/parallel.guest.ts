// Eight reader processes walk a 5000-file image at once and every byte matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { manifest, mountImage, startDaemon, umountImage, fetchedBytes } from './harness.js';

const READER = `
const fs = require('fs'), path = require('path'), c = require('crypto');
const [root, expectedJson, seed] = process.argv.slice(1);
const expected = JSON.parse(fs.readFileSync(expectedJson, 'utf8')).tree5k.files;
const names = Object.keys(expected);
// Each reader walks all files in its own order so that readers collide on chunks.
let x = Number(seed) + 1;
for (let i = names.length - 1; i > 0; i--) { x = (x * 1103515245 + 12345) & 0x7fffffff; const j = x % (i + 1); [names[i], names[j]] = [names[j], names[i]]; }
let bad = 0;
for (const n of names) {
  let h;
  try { h = c.createHash('sha256').update(fs.readFileSync(path.join(root, n))).digest('hex'); } catch (e) { h = e.code; }
  if (h !== expected[n]) { bad++; if (bad < 5) console.error('mismatch', n, h); }
}
console.log(JSON.stringify({ files: names.length, bad }));
`;

test('8 parallel readers over a tree of 5k files read it all correctly', async (t) => {
  const m = await manifest();
  const d = await startDaemon('parallel');
  try {
    const mnt = '/run/mnt-par';
    await mountImage(d, m.tree5k.dir, mnt, { fsid: 'par-5k' });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => new Promise<{ files: number; bad: number }>((resolve, reject) => {
      const p = spawn(process.execPath, ['-e', READER, mnt, `${process.env.ONDINE_VM_FIXTURES}/manifest.json`, String(i)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c));
      p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { files: number; bad: number }) : reject(new Error(`reader ${i} exited ${code}`))));
    })));
    for (const r of results) {
      assert.equal(r.files, 5000);
      assert.equal(r.bad, 0);
    }
    const fetched = [...(await fetchedBytes(d)).values()].reduce((s, n) => s + n, 0);
    const total = m.tree5k.blobs.reduce((s, b) => s + b.compressedSize, 0);
    t.diagnostic(`8 readers × 5000 files; fetched ${fetched} bytes of a ${total}-byte blob`);
    assert.ok(fetched <= total * 1.05, 'colliding readers did not refetch chunks');
    await umountImage(d, mnt);
  } finally {
    await d.stop();
  }
});
