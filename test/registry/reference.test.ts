// Reference normalisation as Docker does it, and refusals that say what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiHost, isLoopback, parseReference } from '../../src/registry/reference.js';

const D = 'sha256:' + 'ab'.repeat(32);

test('Docker Hub short names get docker.io/library and :latest', () => {
  const r = parseReference('debian:12');
  assert.deepEqual([r.registry, r.repository, r.tag, r.digest], ['docker.io', 'library/debian', '12', undefined]);
  assert.equal(r.toString(), 'docker.io/library/debian:12');
  assert.equal(parseReference('debian').toString(), 'docker.io/library/debian:latest');
  assert.equal(parseReference('user/app').toString(), 'docker.io/user/app:latest');
  assert.equal(parseReference('index.docker.io/library/busybox:1').toString(), 'docker.io/library/busybox:1');
  assert.equal(parseReference('docker.io/alpine').toString(), 'docker.io/library/alpine:latest');
});

test('registries with ports, localhost, IPs, digests and tag+digest', () => {
  const a = parseReference('localhost:5000/a/b:t');
  assert.deepEqual([a.registry, a.repository, a.tag], ['localhost:5000', 'a/b', 't']);
  const b = parseReference(`127.0.0.1:5000/x@${D}`);
  assert.deepEqual([b.registry, b.repository, b.tag, b.digest], ['127.0.0.1:5000', 'x', undefined, D]);
  assert.equal(b.toString(), `127.0.0.1:5000/x@${D}`);
  const c = parseReference(`ghcr.io/o/r:v1.2@${D}`);
  assert.deepEqual([c.registry, c.repository, c.tag, c.digest], ['ghcr.io', 'o/r', 'v1.2', D]);
  assert.equal(c.toString(), `ghcr.io/o/r:v1.2@${D}`);
  assert.equal(parseReference('localhost/x').registry, 'localhost');
  assert.equal(parseReference('[::1]:5000/x:y').registry, '[::1]:5000');
  // A spread copy still prints itself, with its own fields.
  assert.equal(String({ ...b, digest: 'sha256:' + 'cd'.repeat(32) }), `127.0.0.1:5000/x@sha256:${'cd'.repeat(32)}`);
});

test('bad references are refused with the reason', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['Debian:12', /lowercase/],
    ['a//b', /component/],
    ['x:', /tag/],
    ['x@sha256:abc', /digest/],
    ['x:t@md5:' + 'a'.repeat(32), /digest/],
    ['a b', /white space/],
    ['localhost:5000/', /no repository/],
    ['x:' + 't'.repeat(200), /tag/],
    ['-a/b', /component/],
  ];
  for (const [s, re] of cases) {
    assert.throws(() => parseReference(s), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_INVALID' && re.test(e.message) && e.message.includes(JSON.stringify(s)), s);
  }
});

test('API host and loopback', () => {
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(apiHost('127.0.0.1:5000'), '127.0.0.1:5000');
  assert.ok(isLoopback('127.0.0.1:5000'));
  assert.ok(isLoopback('localhost'));
  assert.ok(isLoopback('[::1]:5000'));
  assert.ok(!isLoopback('registry.example.com:5000'));
  assert.ok(!isLoopback('docker.io'));
});
