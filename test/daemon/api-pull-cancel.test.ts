// A pull by reference lives only as long as its caller: the API cancels it (the signal handed
// to the pull aborts, with a reason that says why) when the client goes away before the answer,
// and at the request's deadlineMs; a deadline out of range is refused before anything is pulled.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { startApi } from '../../src/daemon/api.js';
import { ImageCatalog } from '../../src/daemon/catalog.js';
import { DaemonClient } from '../../src/daemon/client.js';
import type { PulledImage, PullRequest } from '../../src/daemon/image-pull.js';

let dir: string;
let server: Server;
let client: DaemonClient;
/** Every pull started, with the signal it was given. */
const pulls: Array<{ req: PullRequest; signal: AbortSignal }> = [];

before(async () => {
  dir = mkdtempSync('/var/tmp/ondine-api-cancel-');
  const catalog = new ImageCatalog();
  server = await startApi(join(dir, 'ondine.sock'), {
    catalog, fanotify: undefined, health: () => ({ ok: true }), stats: async () => ({}), shutdown: async () => undefined,
    pullDeadlineMs: 60_000,
    // A registry that never answers: the pull ends only through its signal.
    pull: (req, signal) => {
      pulls.push({ req, signal });
      return new Promise<PulledImage>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
    },
  });
  client = new DaemonClient(join(dir, 'ondine.sock'));
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

test('the client going away cancels its pull', async () => {
  const ac = new AbortController();
  const call = client.registerRef({ ref: '127.0.0.1:1/a/b:1' }, ac.signal);
  await until(() => pulls.length === 1);
  assert.equal(pulls.length, 1);
  const { signal } = pulls[0]!;
  assert.equal(signal.aborted, false);
  ac.abort(new Error('gave up'));
  await assert.rejects(call, /gave up/);
  await until(() => signal.aborted);
  assert.equal(signal.aborted, true, 'the pull was cancelled');
  assert.match((signal.reason as Error).message, /cancelled: its client went away/);
});

test("a pull ends at the request's deadlineMs with ONDINE_ERR_TIMEOUT, told to the client", async () => {
  await assert.rejects(client.registerRef({ ref: '127.0.0.1:1/a/b:2', deadlineMs: 200 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ONDINE_ERR_TIMEOUT');
    assert.equal(err.message, '127.0.0.1:1/a/b:2: the pull did not finish within 0.2 s');
    return true;
  });
  assert.equal(pulls[1]?.signal.aborted, true);
});

test('a deadline out of range is refused before any pull', async () => {
  const before = pulls.length;
  for (const deadlineMs of [0, -1, 1.5, 3_600_001]) {
    await assert.rejects(client.registerRef({ ref: '127.0.0.1:1/a/b:3', deadlineMs }), { code: 'ONDINE_ERR_INVALID' });
  }
  assert.equal(pulls.length, before);
});
