// Choosing one platform out of an index, and which scheme an origin is reached with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { originEndpoint } from '../../src/registry/mirrors.js';
import { defaultPlatform, pickPlatform, type IndexEntry } from '../../src/registry/platform.js';

const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const entries: IndexEntry[] = [
  { digest: d(1), platform: { os: 'linux', architecture: 'amd64' } },
  { digest: d(2), platform: { os: 'linux', architecture: 'amd64', 'os.features': ['nydus.remoteimage.v1'] } },
  { digest: d(3), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  { digest: d(4), platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
  { digest: d(5), platform: { os: 'unknown', architecture: 'unknown' } },
];

test('platform pick: plain image first unless features are asked for; arm64 means v8; variants must match when given', () => {
  assert.equal(pickPlatform(entries, { os: 'linux', architecture: 'amd64' }, 'r').digest, d(1));
  assert.equal(pickPlatform(entries, { os: 'linux', architecture: 'amd64' }, 'r', ['nydus.remoteimage.v1']).digest, d(2));
  assert.equal(pickPlatform(entries, { os: 'linux', architecture: 'arm64' }, 'r').digest, d(3));
  assert.equal(pickPlatform(entries, { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'r').digest, d(3));
  assert.throws(() => pickPlatform(entries, { os: 'linux', architecture: 'arm', variant: 'v6' }, 'img'), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_NOT_FOUND' && /img: no manifest for platform linux\/arm\/v6/.test(e.message) && /linux\/arm\/v7/.test(e.message));
  assert.deepEqual(defaultPlatform('x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(defaultPlatform('arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
});

test('origin scheme: https, except loopback (unless a CA file) and --insecure', () => {
  assert.equal(originEndpoint('docker.io').origin, 'https://registry-1.docker.io');
  assert.equal(originEndpoint('127.0.0.1:5000').origin, 'http://127.0.0.1:5000');
  assert.equal(originEndpoint('localhost:5000', { caFile: '/ca.pem' }).origin, 'https://localhost:5000');
  assert.equal(originEndpoint('reg.example.com:5000', { insecure: true }).origin, 'http://reg.example.com:5000');
});
