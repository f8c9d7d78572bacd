// The client turns a daemon's error answer into the same Ondine error, with the errno of the
// error table (never a fixed one), and keeps a code it does not know in the message.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, constants } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DaemonClient } from '../../src/daemon/client.js';
import { OndineError } from '../../src/errors.js';

test("the daemon's error codes arrive with the table's errno", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ondine-client-'));
  const socket = join(dir, 'd.sock');
  let answer: { code: string; message: string } = { code: 'ONDINE_ERR_BUSY', message: 'busy' };
  const server = createServer((_req, res) => {
    res.writeHead(409, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
  });
  await new Promise<void>((r) => server.listen(socket, r));
  t.after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); });
  const client = new DaemonClient(socket);
  await assert.rejects(client.shutdown(), (e: unknown) => e instanceof OndineError && e.code === 'ONDINE_ERR_BUSY' && e.errno === constants.errno.EBUSY);
  answer = { code: 'ONDINE_ERR_NOT_FOUND', message: 'no such image' };
  await assert.rejects(client.shutdown(), (e: unknown) => e instanceof OndineError && e.code === 'ONDINE_ERR_NOT_FOUND' && e.errno === constants.errno.ENOENT);
  answer = { code: 'ONDINE_ERR_FROM_A_NEWER_DAEMON', message: 'something new' };
  await assert.rejects(client.shutdown(), (e: unknown) => e instanceof OndineError && e.code === 'ONDINE_ERR_DAEMON' && /something new \[ONDINE_ERR_FROM_A_NEWER_DAEMON\]/.test(e.message));
});
