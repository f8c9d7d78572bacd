// WWW-Authenticate parsing, scope merging, and the token cache's promises: one fetch for many
// concurrent callers, renewal shortly before expiry, one renewal per refused token, no loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator, basicHeader, mergeScopes, parseChallenges, type TokenRequest } from '../../src/registry/auth.js';

test('Bearer challenges with quoted commas and spaces, several challenges, Basic', () => {
  const c = parseChallenges('Bearer realm="https://auth.example/token?a=1,b=2",service="registry.example",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"');
  assert.deepEqual(c, [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token?a=1,b=2', service: 'registry.example', scope: 'repository:a/b:pull,push repository:c:pull', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseChallenges('Basic realm="x", Bearer realm="https://t/", service=svc'), [
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'https://t/', service: 'svc' } },
  ]);
  assert.deepEqual(parseChallenges(['Basic realm="a"', 'Bearer realm="b"']).map((x) => x.scheme), ['basic', 'bearer']);
  assert.deepEqual(parseChallenges('bearer Realm="q\\"uote"'), [{ scheme: 'bearer', params: { realm: 'q"uote' } }]);
  assert.deepEqual(parseChallenges(undefined), []);
  assert.deepEqual(parseChallenges(''), []);
});

test('scopes merge per resource with sorted actions', () => {
  assert.deepEqual(mergeScopes(['repository:a:push,pull'], ['repository:a:pull repository:b:pull']), ['repository:a:pull,push', 'repository:b:pull']);
  assert.deepEqual(mergeScopes(['repository:127.0.0.1:5000/x:pull']), ['repository:127.0.0.1:5000/x:pull']);
});

function fakeFetcher(lifeS: number | undefined) {
  const calls: TokenRequest[] = [];
  let n = 0;
  const fetch = async (req: TokenRequest) => {
    calls.push(req);
    await new Promise((r) => setTimeout(r, 5));
    n++;
    return lifeS === undefined ? { token: `t${n}` } : { token: `t${n}`, expiresInS: lifeS };
  };
  return { calls, fetch };
}

const BEARER = 'Bearer realm="https://auth/token",service="svc"';

test('many callers after one challenge share one token fetch', async () => {
  const f = fakeFetcher(300);
  const a = new Authenticator(f.fetch);
  assert.equal(await a.authorization('http://r', ['repository:x:pull']), undefined, 'nothing known before a challenge');
  const headers = await Promise.all(Array.from({ length: 20 }, () => a.afterUnauthorized('http://r', BEARER, ['repository:x:pull'], undefined, undefined)));
  assert.equal(f.calls.length, 1);
  assert.ok(headers.every((h) => h === 'Bearer t1'));
  assert.deepEqual(f.calls[0], { realm: 'https://auth/token', service: 'svc', scopes: ['repository:x:pull'] });
  assert.equal(await a.authorization('http://r', ['repository:x:pull']), 'Bearer t1');
  // Another scope is another token.
  assert.equal(await a.authorization('http://r', ['repository:y:pull']), 'Bearer t2');
});

test('tokens renew shortly before expires_in (60 s when absent), once for concurrent callers', async () => {
  let now = 1_000_000;
  const f = fakeFetcher(undefined);
  const a = new Authenticator(f.fetch, () => now);
  await a.afterUnauthorized('http://r', BEARER, ['repository:x:pull'], undefined, undefined);
  now += 40_000;
  assert.equal(await a.authorization('http://r', ['repository:x:pull']), 'Bearer t1', 'still fresh at 40 s of 60');
  now += 15_000; // 55 s: inside the renewal margin
  const hs = await Promise.all(Array.from({ length: 20 }, () => a.authorization('http://r', ['repository:x:pull'])));
  assert.ok(hs.every((h) => h === 'Bearer t2'));
  assert.equal(f.calls.length, 2);
});

test('a refused token is renewed once for all its holders; the same refusal twice gives up', async () => {
  const f = fakeFetcher(300);
  const a = new Authenticator(f.fetch);
  await a.afterUnauthorized('http://r', BEARER, ['repository:x:pull'], undefined, undefined);
  const retried = await Promise.all(Array.from({ length: 20 }, () => a.afterUnauthorized('http://r', BEARER, ['repository:x:pull'], undefined, 'Bearer t1')));
  assert.ok(retried.every((h) => h === 'Bearer t2'));
  assert.equal(f.calls.length, 2);
  // t2 refused too: one more fetch (t3) for the request that saw t2 refused; the caller stops after its one retry.
  assert.equal(await a.afterUnauthorized('http://r', BEARER, ['repository:x:pull'], undefined, 'Bearer t2'), 'Bearer t3');
});

test('Basic: credentials after the challenge; none, or the same ones refused, give nothing to retry', async () => {
  const a = new Authenticator(fakeFetcher(1).fetch);
  const creds = { username: 'u', password: 'p' };
  assert.equal(await a.afterUnauthorized('http://r', 'Basic realm="x"', [], undefined, undefined), undefined);
  const h = await a.afterUnauthorized('http://r', 'Basic realm="x"', [], creds, undefined);
  assert.equal(h, basicHeader('u', 'p'));
  assert.equal(await a.authorization('http://r', [], creds), h, 'sent up front once known');
  assert.equal(await a.afterUnauthorized('http://r', 'Basic realm="x"', [], creds, h), undefined);
});

test('a failed token fetch is not cached: the next caller tries again', async () => {
  let n = 0;
  const a = new Authenticator(async () => {
    n++;
    if (n === 1) throw new Error('down');
    return { token: 'ok' };
  });
  await assert.rejects(a.afterUnauthorized('http://r', BEARER, ['repository:x:pull'], undefined, undefined), /down/);
  assert.equal(await a.authorization('http://r', ['repository:x:pull']), 'Bearer ok');
});
