// The one retry policy (registry/retry-policy.ts) and the time ladder it derives from: which
// errors are retried, attempts and budget, the Retry-After cap, digest-mismatch retries, the
// hard deadline cancelling an attempt in flight, the caller's abort, and "gave up after N
// attempts" said once with the true N. Against real HTTP on 127.0.0.1: a host name that does
// not resolve is one attempt and one clear error; a dripping body is broken off by the
// minimum rate; a dripping manifest by its total deadline.
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';

import { DigestMismatchError, NotFoundError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseReference } from '../../src/registry/reference.js';
import { isRetryable, retryPolicy, withRetries, type RetryPolicy } from '../../src/registry/retry-policy.js';
import { timeLadder } from '../../src/registry/time-ladder.js';

const fast: RetryPolicy = { ...retryPolicy(timeLadder(30_000)), baseDelayMs: 1, maxDelayMs: 2, random: () => 0.5 };
const transient = (msg = 'connection reset', retryAfterMs?: number) =>
  new RegistryError('ONDINE_ERR_REGISTRY', msg, { retryable: true, status: 503, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });

/** An attempt function failing with `errors` in turn, then answering 'ok'; counts its calls. */
function script(errors: Error[]): { calls: number; fn: () => Promise<string> } {
  const s = { calls: 0, fn: async () => { s.calls++; const e = errors.shift(); if (e) throw e; return 'ok'; } };
  return s;
}

function countGaveUp(msg: string): number {
  return msg.split('gave up after').length - 1;
}

test('the ladder: retry budget < fill timeout < supervisor deadline, all from the read timeout', () => {
  for (const r of [3_000, 30_000, 90_000]) {
    const l = timeLadder(r);
    assert.ok(l.attemptIdleMs < l.retryBudgetMs && l.retryBudgetMs < l.readTimeoutMs && l.readTimeoutMs < l.supervisorDeadlineMs, JSON.stringify(l));
    assert.ok(l.retryAfterCapMs < l.retryBudgetMs);
    assert.ok(l.mountDeadlineMs > l.manifestDeadlineMs);
  }
  const d = timeLadder();
  assert.deepEqual([d.readTimeoutMs, d.manifestDeadlineMs, d.bodyMinBytesPerSec, d.bodyRateWindowMs, d.failedChunkMs], [30_000, 30_000, 64 << 10, 10_000, 5_000]);
  assert.equal(retryPolicy(d).budgetMs, d.retryBudgetMs);
});

test('which errors retry: transient ones until success; permanent ones, DNS failures and non-registry errors once', async () => {
  const ok = script([transient(), transient()]);
  assert.equal(await withRetries(fast, { what: 'x' }, ok.fn), 'ok');
  assert.equal(ok.calls, 3);
  const dns = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.invalid'), { code: 'ENOTFOUND' });
  const eai = Object.assign(new Error('getaddrinfo EAI_AGAIN nowhere.invalid'), { code: 'EAI_AGAIN' });
  for (const e of [
    new RegistryError('ONDINE_ERR_DENIED', 'HTTP 403', { retryable: false, status: 403 }),
    new NotFoundError('blob'),
    new RegistryError('ONDINE_ERR_REGISTRY', 'cannot resolve', { retryable: true, cause: dns }),
    new RegistryError('ONDINE_ERR_REGISTRY', 'cannot resolve', { retryable: true, cause: eai }),
    new TypeError('a bug'),
  ]) {
    const s = script([e]);
    await assert.rejects(withRetries(fast, { what: 'x' }, s.fn), (err) => err === e);
    assert.equal(s.calls, 1, `${e.message}: one attempt`);
  }
  assert.equal(isRetryable(transient()), true);
  assert.equal(isRetryable(new DigestMismatchError('a'.repeat(64), 0, '00', '11')), true);
});

test('attempts: the last error, with "gave up after N attempts" once and N true', async () => {
  const s = script(Array.from({ length: 10 }, () => transient()));
  await assert.rejects(withRetries({ ...fast, attempts: 4 }, { what: 'x' }, s.fn), (err: Error) => {
    assert.match(err.message, /connection reset \(gave up after 4 attempts\)$/);
    assert.equal(countGaveUp(err.message), 1);
    assert.equal((err as RegistryError).retryable, true, 'still transient for the failure memo');
    return true;
  });
  assert.equal(s.calls, 4);
  const one = script([transient()]);
  await assert.rejects(withRetries({ ...fast, attempts: 1 }, { what: 'x' }, one.fn), /gave up after 1 attempt\)$/);
});

test('budget: no retry starts whose delay would end past it', async () => {
  const s = script(Array.from({ length: 10 }, () => transient()));
  const policy = { ...fast, attempts: 10, baseDelayMs: 400, maxDelayMs: 400, random: () => 1, budgetMs: 1_000 };
  await assert.rejects(withRetries(policy, { what: 'x' }, s.fn), /gave up after 3 attempts in /);
  assert.equal(s.calls, 3, 'attempts at 0, 400 and 800 ms; a fourth would start past 1 s');
});

test('Retry-After: waited for up to the cap; a longer one ends the loop at once', async () => {
  const delays: number[] = [];
  const s = script([transient('busy', 40)]);
  await withRetries(fast, { what: 'x', onRetry: (_e, _n, d) => delays.push(d) }, s.fn);
  assert.deepEqual(delays, [40]);
  const long = script([transient('busy', 60_000)]);
  await assert.rejects(withRetries({ ...fast, retryAfterCapMs: 1_000 }, { what: 'x' }, long.fn), /asks to wait 60 s, more than 1 s/);
  assert.equal(long.calls, 1);
});

test('a digest mismatch is retried digestMismatchRetries times, then stands', async () => {
  const mismatch = () => new DigestMismatchError('a'.repeat(64), 0, '00', '11');
  const m = script([mismatch(), mismatch(), mismatch()]);
  await assert.rejects(withRetries(fast, { what: 'x' }, m.fn), { code: 'ONDINE_ERR_DIGEST_MISMATCH' });
  assert.equal(m.calls, 2, 'one retry');
  const two = script([mismatch(), mismatch()]);
  assert.equal(await withRetries({ ...fast, digestMismatchRetries: 2 }, { what: 'x' }, two.fn), 'ok');
});

test('a hard deadline cancels the attempt in flight: ONDINE_ERR_TIMEOUT, the attempt saw its signal abort', async () => {
  let aborted = false;
  const p = withRetries(fast, { what: 'manifest m', deadlineMs: 150 }, (signal) => new Promise((_, reject) => {
    signal!.addEventListener('abort', () => { aborted = true; reject(new Error('aborted')); });
  }));
  await assert.rejects(p, { code: 'ONDINE_ERR_TIMEOUT', message: 'manifest m: no answer within 0.2 s' });
  assert.equal(aborted, true);
});

test("the caller's abort ends the backoff with its reason", async () => {
  const ac = new AbortController();
  const s = script(Array.from({ length: 10 }, () => transient()));
  const p = withRetries({ ...fast, baseDelayMs: 10_000, maxDelayMs: 10_000, random: () => 1 }, { what: 'x', signal: ac.signal }, s.fn);
  setTimeout(() => ac.abort(new Error('client went away')), 20);
  await assert.rejects(p, /client went away/);
  assert.equal(s.calls, 1);
});

async function serve(handler: (res: ServerResponse, path: string) => void): Promise<{ url: string; host: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(res, req.url ?? '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, server, requests };
}

function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

test('a host name that does not resolve: one attempt, one line naming the host', async () => {
  const client = new RegistryClient({ insecure: true, retryBaseMs: 1 });
  try {
    await assert.rejects(client.getManifest(parseReference('ondine-no-such-host.invalid/a/b:1')), (err: Error) => {
      assert.match(err.message, /cannot resolve host ondine-no-such-host\.invalid \((ENOTFOUND|EAI_AGAIN)\)/);
      assert.doesNotMatch(err.message, /gave up|\n/);
      return true;
    });
    assert.equal(client.stats.requests, 1, 'one attempt');
  } finally {
    await client.close();
  }
});

test('a body dripping one byte at a time is broken off by the minimum rate, and retried', async () => {
  const timers = new Set<NodeJS.Timeout>();
  const s = await serve((res) => {
    res.writeHead(206, { 'content-length': '4096', 'content-range': 'bytes 0-4095/4096' });
    const t = setInterval(() => res.write('x'), 100);
    timers.add(t);
    res.on('close', () => { clearInterval(t); timers.delete(t); });
  });
  const client = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 }, readTimeoutMs: 60_000, timeouts: { bodyMinBytesPerSec: 1024, bodyRateWindowMs: 1_000 } });
  try {
    await assert.rejects(client.readRange(s.host, 'a/b', `sha256:${'c'.repeat(64)}`, 0, 4096), (err: Error) => {
      assert.equal((err as RegistryError).code, 'ONDINE_ERR_TIMEOUT');
      assert.match(err.message, /the body came slower than 1 KiB\/s \(\d+ bytes in 1 s\) \(gave up after 2 attempts\)$/);
      return true;
    });
    assert.equal(s.requests.length, 2);
    // The server hears of the client's close a moment later.
    for (let i = 0; i < 100 && timers.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(timers.size, 0, 'both dripping answers were closed by the client');
  } finally {
    await client.close();
    for (const t of timers) clearInterval(t);
    await stop(s.server);
  }
});

test('a dripping manifest fails at its total deadline, however steady the drip', async () => {
  const s = await serve((res) => {
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', pad: 'x'.repeat(4000) });
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(body.length) });
    let i = 0;
    const t = setInterval(() => { res.write(body.slice(i, i + 50)); i += 50; }, 20);
    res.on('close', () => clearInterval(t));
  });
  // Fast enough for the rate watch: only the deadline can end it.
  const client = new RegistryClient({ retry: { baseDelayMs: 1 }, timeouts: { manifestDeadlineMs: 800, bodyMinBytesPerSec: 1, bodyRateWindowMs: 1_000 } });
  try {
    await assert.rejects(client.getManifest(parseReference(`${s.host}/a/b:1`)), { code: 'ONDINE_ERR_TIMEOUT', message: `manifest ${s.host}/a/b:1: no answer within 0.8 s` });
    assert.equal(s.requests.length, 1);
  } finally {
    await client.close();
    await stop(s.server);
  }
});

test('the rate watch blames the registry only: a consumer that stops reading for a while is not cut off', async () => {
  const body = Buffer.alloc(512 << 10, 7);
  const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(body).digest('hex')}`;
  const s = await serve((res) => {
    res.writeHead(200, { 'content-length': String(body.length) });
    res.end(body);
  });
  const client = new RegistryClient({ retry: { attempts: 1 }, timeouts: { bodyMinBytesPerSec: 64 << 10, bodyRateWindowMs: 500 } });
  try {
    const stream = await client.blobStream(s.host, 'a/b', digest);
    // Take one chunk, then read nothing for four windows: our stall, not the registry's.
    const it = stream[Symbol.asyncIterator]();
    let got = ((await it.next()).value as Buffer).length;
    await new Promise((r) => setTimeout(r, 2_000));
    for (let n = await it.next(); !n.done; n = await it.next()) got += (n.value as Buffer).length;
    assert.equal(got, body.length);
  } finally {
    await client.close();
    await stop(s.server);
  }
});
