// How the client reaches a registry: HTTPS to a registry whose certificate comes from a CA
// file (loopback included), refused without it; HTTP_PROXY/HTTPS_PROXY through a real
// tunnelling proxy, and NO_PROXY honoured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RegistryClient } from '../../src/registry/client.js';
import { isRetryable, parseRetryAfter } from '../../src/registry/errors.js';
import { pushTestBlob, startConnectProxy, startRegistry } from '../helpers/registry-env.js';

test('TLS with a CA file: https even on loopback; without the CA the certificate is refused', async (t) => {
  const reg = await startRegistry({ tls: true });
  t.after(() => reg.stop());
  const data = randomBytes(5000);
  const digest = await pushTestBlob(reg, 'tls/blob', data);
  const c = new RegistryClient({ caFile: reg.caFile!, retryBaseMs: 5 });
  t.after(() => c.close());
  assert.deepEqual(await c.readRange(reg.host, 'tls/blob', digest, 10, 10), data.subarray(10, 20));
  const plain = new RegistryClient({ retryBaseMs: 5, retries: 0 });
  t.after(() => plain.close());
  // Loopback without a CA file speaks http to an https server: it fails (and says where).
  await assert.rejects(plain.readRange(reg.host, 'tls/blob', digest, 0, 1), (e: Error) => e.message.includes(reg.host));
});

test('HTTP_PROXY is used (CONNECT tunnels to the registry) unless NO_PROXY names the host', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startConnectProxy();
  t.after(() => proxy.stop());
  const data = randomBytes(5000);
  const digest = await pushTestBlob(reg, 'proxy/blob', data);
  const viaProxy = new RegistryClient({ env: { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url }, retryBaseMs: 5 });
  t.after(() => viaProxy.close());
  assert.deepEqual(await viaProxy.readRange(reg.host, 'proxy/blob', digest, 0, 100), data.subarray(0, 100));
  assert.deepEqual(await viaProxy.readRange(reg.host, 'proxy/blob', digest, 100, 100), data.subarray(100, 200));
  const tunnels = proxy.tunnels();
  assert.ok(tunnels.length >= 1 && tunnels.every((h) => h === reg.host), `tunnels: ${tunnels.join(', ')}`);
  const direct = new RegistryClient({ env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }, retryBaseMs: 5 });
  t.after(() => direct.close());
  assert.deepEqual(await direct.readRange(reg.host, 'proxy/blob', digest, 0, 100), data.subarray(0, 100));
  assert.equal(proxy.tunnels().length, tunnels.length, 'NO_PROXY: straight to the registry');
});

test('Retry-After: seconds or a date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(isRetryable(new Error('x')), false);
});
