// Credentialed registries for real: htpasswd basic auth and token auth behind the test
// issuer. Right credentials work; wrong ones give ONDINE_ERR_AUTH at once (no retry loop);
// an expired or refused token is renewed exactly once for many concurrent readers; and no
// credential or token shows up in a debug log line or an error message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient, type RegistryOptions } from '../../src/registry/client.js';
import { isRetryable } from '../../src/registry/errors.js';
import { parseReference } from '../../src/registry/reference.js';
import { pushTestBlob, pushTestImage, startRegistry } from '../helpers/registry-env.js';

const PASSWORD = 'S3cret-pass-Ondine';
const users = { alice: PASSWORD };

/** A client whose debug log lines are kept for inspection. */
function loggedClient(opts: RegistryOptions): { client: RegistryClient; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { client: new RegistryClient({ retryBaseMs: 10, ...opts, log }), lines };
}

const secretsSeen: string[] = [];
function assertNoSecrets(texts: string[], secrets: string[]): void {
  for (const t of texts) {
    for (const s of secrets) {
      assert.ok(!t.includes(s), `a secret leaked into: ${t.slice(0, 300)}`);
    }
    assert.ok(!/authorization/i.test(t) || !/Basic |Bearer /.test(t), `an Authorization header leaked into: ${t.slice(0, 300)}`);
  }
}
after(() => {
  secretsSeen.length = 0;
});

test('basic auth: right credentials read; wrong ones fail with ONDINE_ERR_AUTH after one authenticated try', async (t) => {
  const reg = await startRegistry({ auth: 'basic', users });
  t.after(() => reg.stop());
  const data = randomBytes(10_000);
  const digest = await pushTestBlob(reg, 'ondine/basic', data);
  const ok = loggedClient({ credentials: { username: 'alice', password: PASSWORD } });
  t.after(() => ok.client.close());
  assert.deepEqual(await ok.client.readRange(reg.host, 'ondine/basic', digest, 10, 20), data.subarray(10, 30));
  assert.deepEqual(await ok.client.readRange(reg.host, 'ondine/basic', digest, 0, 5), data.subarray(0, 5));
  assert.equal(ok.client.stats.requests, 3, 'a challenge, then credentials up front');

  const bad = loggedClient({ credentials: { username: 'alice', password: 'wrong-Password-123' } });
  t.after(() => bad.client.close());
  const before = (await reg.requests()).length;
  let message = '';
  await assert.rejects(bad.client.readRange(reg.host, 'ondine/basic', digest, 0, 10), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_AUTH');
    assert.equal(isRetryable(e), false);
    assert.match(e.message, /401/);
    assert.match(e.message, new RegExp(reg.host));
    message = e.message;
    return true;
  });
  const log = (await reg.requests()).slice(before);
  assert.deepEqual(log.map((l) => l.status), [401, 401], 'the anonymous challenge and one try with the credentials');
  assertNoSecrets([...ok.lines, ...bad.lines, message], [PASSWORD, 'wrong-Password-123', Buffer.from(`alice:${PASSWORD}`).toString('base64')]);
  assert.ok(ok.lines.some((l) => l.includes('registry request')), 'debug lines were captured');

  const none = new RegistryClient({ retryBaseMs: 10 });
  t.after(() => none.close());
  await assert.rejects(none.readRange(reg.host, 'ondine/basic', digest, 0, 10), (e: Error) => /no credentials given/.test(e.message));
});

test('token auth: pull and push with a token from the issuer; wrong password is ONDINE_ERR_AUTH without retries', async (t) => {
  const reg = await startRegistry({ auth: 'token', users });
  t.after(() => reg.stop());
  const issuer = reg.tokenIssuer!;
  const img = await pushTestImage(reg, 'ondine/tok', 'v1', [randomBytes(4096)]);
  const c = loggedClient({ credentials: { username: 'alice', password: PASSWORD } });
  t.after(() => c.client.close());
  const m = await c.client.resolve(parseReference(`${reg.host}/ondine/tok:v1`));
  assert.equal(m.digest, img.manifestDigest);
  const layer = img.layerDigests[0]!;
  assert.equal((await c.client.readRange(reg.host, 'ondine/tok', layer, 0, 100)).length, 100);
  assert.equal(issuer.issued(), 1, 'one token serves the repository for pulls');
  // Push to another repository: a push token, a mount across repositories.
  assert.equal(await c.client.mountBlob(reg.host, 'ondine/tok2', layer, 'ondine/tok'), true);
  const data = randomBytes(2000);
  const { createHash } = await import('node:crypto');
  const d = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const fetchesBefore = issuer.issued();
  assert.equal(await c.client.uploadBlob(reg.host, 'ondine/tok3', d, { bytes: data }, data.length), data.length);
  assert.equal(issuer.issued() - fetchesBefore, 1, 'one pull,push token for the HEAD and the upload');
  assert.equal(c.client.stats.tokenFetches, issuer.issued());

  const bad = loggedClient({ credentials: { username: 'alice', password: 'nope-Wrong-999' } });
  t.after(() => bad.client.close());
  const refusedBefore = issuer.refused();
  let message = '';
  await assert.rejects(bad.client.readRange(reg.host, 'ondine/tok', layer, 0, 10), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_AUTH');
    assert.equal(isRetryable(e), false);
    message = e.message;
    return true;
  });
  assert.equal(issuer.refused() - refusedBefore, 1, 'one token request, no retry loop');
  assertNoSecrets([...c.lines, ...bad.lines, message], [PASSWORD, 'nope-Wrong-999', Buffer.from(`alice:${PASSWORD}`).toString('base64')]);
  // No token string in any log line either.
  const tokenLike = /eyJ[A-Za-z0-9_-]{10,}/;
  assert.ok(!c.lines.some((l) => tokenLike.test(l)), 'a JWT leaked into the log');
});

test('expired token: exactly one refresh for 20 concurrent readRange calls', async (t) => {
  const ttl = 3;
  const reg = await startRegistry({ auth: 'token', users, tokenTtlS: ttl });
  t.after(() => reg.stop());
  const issuer = reg.tokenIssuer!;
  const data = randomBytes(64 * 1024);
  const digest = await pushTestBlob(reg, 'ondine/exp', data);
  const c = new RegistryClient({ credentials: { username: 'alice', password: PASSWORD }, retryBaseMs: 10 });
  t.after(() => c.close());
  assert.equal((await c.readRange(reg.host, 'ondine/exp', digest, 0, 10)).length, 10);
  assert.equal(issuer.issued(), 1);
  await sleep(ttl * 1000 + 100); // past expires_in
  const reads = await Promise.all(Array.from({ length: 20 }, (_, i) => c.readRange(reg.host, 'ondine/exp', digest, i * 1000, 1000)));
  reads.forEach((b, i) => assert.deepEqual(b, data.subarray(i * 1000, i * 1000 + 1000)));
  assert.equal(issuer.issued(), 2, 'one renewal for all twenty readers');
});

test('a token the registry refuses (401) is renewed exactly once for 20 concurrent readers; refused twice is ONDINE_ERR_AUTH', async (t) => {
  const reg = await startRegistry({ auth: 'token', users, tokenTtlS: 300 });
  t.after(() => reg.stop());
  const issuer = reg.tokenIssuer!;
  const data = randomBytes(64 * 1024);
  const digest = await pushTestBlob(reg, 'ondine/dead', data);
  const other = await pushTestBlob(reg, 'ondine/dead2', data);
  const third = await pushTestBlob(reg, 'ondine/dead3', data);
  const c = new RegistryClient({ credentials: { username: 'alice', password: PASSWORD }, retryBaseMs: 10 });
  t.after(() => c.close());
  assert.equal((await c.readRange(reg.host, 'ondine/dead', digest, 0, 10)).length, 10); // learns the challenge
  assert.equal(issuer.issued(), 1);
  // A new scope whose first token is dead at the registry though it claims 300 s: all twenty
  // readers carry it, all meet a 401, one renewal serves them all.
  issuer.expireNext(1);
  const reads = await Promise.all(Array.from({ length: 20 }, (_, i) => c.readRange(reg.host, 'ondine/dead2', other, i * 100, 100)));
  reads.forEach((b, i) => assert.deepEqual(b, data.subarray(i * 100, i * 100 + 100)));
  assert.equal(issuer.issued(), 3, 'the dead token, then exactly one renewal');
  // Every token dead: one renewal, then ONDINE_ERR_AUTH, no loop and no retries.
  issuer.expireNext(100);
  const before = issuer.issued();
  const requestsBefore = (await reg.requests()).length;
  await assert.rejects(c.readRange(reg.host, 'ondine/dead3', third, 0, 10), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_AUTH' && !isRetryable(e));
  assert.equal(issuer.issued() - before, 2, 'the first token and one renewal');
  assert.equal((await reg.requests()).length - requestsBefore, 2, 'two tries at the registry');
  issuer.expireNext(0);
});

test('identity token: exchanged through the OAuth2 POST form', async (t) => {
  const reg = await startRegistry({ auth: 'token', users, identityTokens: { 'idt-0123456789': 'alice' } });
  t.after(() => reg.stop());
  const data = randomBytes(1000);
  const digest = await pushTestBlob(reg, 'ondine/idt', data);
  const c = new RegistryClient({ credentials: { identityToken: 'idt-0123456789' }, retryBaseMs: 10 });
  t.after(() => c.close());
  assert.deepEqual(await c.readRange(reg.host, 'ondine/idt', digest, 1, 2), data.subarray(1, 3));
  const bad = new RegistryClient({ credentials: { identityToken: 'idt-wrong' }, retryBaseMs: 10 });
  t.after(() => bad.close());
  await assert.rejects(bad.readRange(reg.host, 'ondine/idt', digest, 1, 2), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_AUTH' && !e.message.includes('idt-wrong'));
});
