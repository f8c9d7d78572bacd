// Docker's config: auths in each form, per-host credHelpers and a default credsStore run as
// real programs (a docker-credential-test script written here and put on PATH), key matching
// as Docker does it, and a missing helper named in the error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerCredentials, normaliseAuthKey } from '../../src/registry/credentials.js';

function scratch(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync('/var/tmp/ondine-creds-test-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A credential helper that answers from a fixed table and logs the server URLs it was asked for. */
function writeHelper(binDir: string, name: string): string {
  const askedLog = join(binDir, `${name}.asked`);
  const script = `#!/bin/sh
[ "$1" = get ] || exit 2
read server
echo "$server" >> ${askedLog}
case "$server" in
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hub-secret"}' ;;
  helper.example.com) echo '{"ServerURL":"helper.example.com","Username":"<token>","Secret":"identity-xyz"}' ;;
  store.example.com:5000) echo '{"ServerURL":"store.example.com:5000","Username":"storeuser","Secret":"store-secret"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
  const path = join(binDir, `docker-credential-${name}`);
  writeFileSync(path, script);
  chmodSync(path, 0o755);
  return askedLog;
}

test('auths: base64 auth, username/password, identitytoken; keys with or without scheme; Docker Hub key', async (t) => {
  const dir = scratch(t);
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hub:pa:ss').toString('base64') },
        'registry.example.com': { username: 'u', password: 'p' },
        'https://other.example.com:5000': { identitytoken: 'tok-1' },
        'http://127.0.0.1:5000/v2/': { auth: Buffer.from('local:pw').toString('base64') },
      },
    }),
  );
  assert.deepEqual(await dockerCredentials('docker.io', { configDir: dir }), { username: 'hub', password: 'pa:ss' });
  assert.deepEqual(await dockerCredentials('registry.example.com', { configDir: dir }), { username: 'u', password: 'p' });
  assert.deepEqual(await dockerCredentials('other.example.com:5000', { configDir: dir }), { identityToken: 'tok-1' });
  assert.deepEqual(await dockerCredentials('127.0.0.1:5000', { configDir: dir }), { username: 'local', password: 'pw' });
  assert.equal(await dockerCredentials('other.example.com', { configDir: dir }), undefined, 'the port is part of the key');
  assert.equal(await dockerCredentials('nowhere.example.com', { configDir: dir }), undefined);
  assert.equal(await dockerCredentials('docker.io', { configDir: join(dir, 'absent') }), undefined, 'no config: no credentials');
  // $DOCKER_CONFIG is where the file is looked for.
  assert.deepEqual(await dockerCredentials('registry.example.com', { env: { DOCKER_CONFIG: dir } }), { username: 'u', password: 'p' });
});

test('credHelpers per host and credsStore run docker-credential-<name> get', async (t) => {
  const dir = scratch(t);
  const asked = writeHelper(dir, 'test');
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}` };
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      credsStore: 'test',
      credHelpers: { 'helper.example.com': 'test', 'missing.example.com': 'absent' },
      auths: { 'fallback.example.com': { username: 'f', password: 'g' } },
    }),
  );
  const o = { configDir: dir, env };
  assert.deepEqual(await dockerCredentials('helper.example.com', o), { identityToken: 'identity-xyz' });
  assert.deepEqual(await dockerCredentials('store.example.com:5000', o), { username: 'storeuser', password: 'store-secret' });
  assert.deepEqual(await dockerCredentials('docker.io', o), { username: 'hubuser', password: 'hub-secret' });
  // The store does not know it: the auths entry is used.
  assert.deepEqual(await dockerCredentials('fallback.example.com', o), { username: 'f', password: 'g' });
  const { readFileSync } = await import('node:fs');
  assert.deepEqual(readFileSync(asked, 'utf8').trim().split('\n'), ['helper.example.com', 'store.example.com:5000', 'https://index.docker.io/v1/', 'fallback.example.com']);
  await assert.rejects(dockerCredentials('missing.example.com', o), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ONDINE_ERR_AUTH');
    assert.match(e.message, /docker-credential-absent/);
    assert.match(e.message, /not installed/);
    return true;
  });
});

test('a config that is not JSON is named in the error', async (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, 'config.json'), '{ not json');
  await assert.rejects(dockerCredentials('docker.io', { configDir: dir }), (e: Error) => e.message.includes(join(dir, 'config.json')));
});

test('auth keys normalise like Docker', () => {
  assert.equal(normaliseAuthKey('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normaliseAuthKey('registry-1.docker.io'), 'docker.io');
  assert.equal(normaliseAuthKey('http://Registry.Example.com:5000/v2/'), 'registry.example.com:5000');
});
