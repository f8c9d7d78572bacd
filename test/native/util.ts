// Shared fixtures for the native tests: temp dirs that clean up (mounts inside included),
// root detection, polling for a condition.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

import { MNT_DETACH, umount2 } from '../../src/native/index.js';

export const isRoot = process.getuid?.() === 0;

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4];
    if (point !== undefined && (point === dir || point.startsWith(dir + '/'))) points.push(point);
  }
  return points.sort((a, b) => b.length - a.length);
}

/** A fresh directory under `base`, removed after the test (mounts in it detached first). */
export function tempDir(t: TestContext, base = tmpdir()): string {
  const dir = mkdtempSync(join(base, 'ondine-native-'));
  t.after(() => {
    for (const point of mountsUnder(dir)) umount2(point, MNT_DETACH);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Resolves when `predicate` holds, polling on timers; rejects after `ms`. */
export async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Lets the event loop run a few turns (timers, I/O polls, immediates). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setImmediate(resolve));
  }
}
