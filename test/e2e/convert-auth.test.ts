// Host end-to-end: `ondine convert` against a docker-registry with htpasswd basic auth, from a
// Docker schema 2 source (skopeo --format v2s2). Credentials from --username/--password-stdin
// and from a Docker config file; wrong ones give one line with ONDINE_ERR_AUTH and never the
// password; a missing tag and an already converted image give one-line errors too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { RegistryClient } from '../../src/registry/client.js';
import { parseReference } from '../../src/registry/reference.js';
import { MEDIA_TYPE } from '../../src/registry/media-types.js';
import { findBootstrapLayer } from '../../src/oci/nydus-image.js';
import { Cleanup, cliPath, run, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { deriveUmociImage, makeUmociImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryServer } from '../helpers/registry-env.js';

const USER = 'ondine';
const PASSWORD = 'test-password';

describe('ondine convert with registry credentials', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let reg: RegistryServer;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = scratchDir(suite, 'convert-auth');
    reg = await startRegistry({ auth: 'basic', users: { [USER]: PASSWORD } });
    suite.after(() => reg.stop());
    const img = makeUmociImage(work, 'a', { seed: 21, bigBytes: 1 << 20 });
    execFileSync('skopeo', ['copy', '-q', '--format', 'v2s2', '--dest-tls-verify=false', '--dest-creds', `${USER}:${PASSWORD}`, img.ref, `docker://${reg.host}/src/app:1`]);
    // No ambient Docker credentials: an empty config dir unless a test writes one.
    env = { ...process.env, DOCKER_CONFIG: join(work, 'no-docker-config') };
  });

  const ondine = (args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) =>
    run(process.execPath, [cliPath, ...args], { env: opts.env ?? env, ...(opts.input !== undefined ? { input: opts.input } : {}) });

  async function manifest(ref: string): Promise<{ mediaType: string; json: any }> {
    const client = new RegistryClient({ credentials: { username: USER, password: PASSWORD }, retries: 0 });
    try {
      return await client.getManifest(parseReference(ref));
    } finally {
      await client.close();
    }
  }

  test('--username/--password-stdin: a Docker schema 2 source converts to an OCI Nydus manifest', async () => {
    const src = await manifest(`${reg.host}/src/app:1`);
    assert.equal(src.mediaType, MEDIA_TYPE.dockerManifest);
    const r = await ondine(['convert', `${reg.host}/src/app:1`, `${reg.host}/dst/app:1`, '--username', USER, '--password-stdin'], { input: `${PASSWORD}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD));
    const m = await manifest(`${reg.host}/dst/app:1`);
    assert.equal(m.mediaType, MEDIA_TYPE.ociManifest);
    assert.ok(findBootstrapLayer(m.json));
    assert.equal(m.json.layers.length, 3);
  });

  test('credentials from the Docker config file', async () => {
    const dir = join(work, 'docker-config');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
    const r = await ondine(['convert', `${reg.host}/src/app:1`, `${reg.host}/dst/app:2`], { env: { ...process.env, DOCKER_CONFIG: dir } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(findBootstrapLayer((await manifest(`${reg.host}/dst/app:2`)).json));
  });

  test('errors are one line: wrong password, no credentials, missing tag, an image already converted', async () => {
    const wrong = await ondine(['convert', `${reg.host}/src/app:1`, `${reg.host}/dst/app:3`, '--username', USER, '--password-stdin'], { input: 'not-the-password-xyz\n' });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /^ondine: .*\[ONDINE_ERR_AUTH\]\n$/);
    assert.ok(!wrong.stderr.includes('not-the-password-xyz'));
    const none = await ondine(['convert', `${reg.host}/src/app:1`, `${reg.host}/dst/app:3`]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^ondine: .*\[ONDINE_ERR_AUTH\]\n$/);
    const creds = ['--username', USER, '--password-stdin'];
    const missing = await ondine(['convert', `${reg.host}/src/app:nope`, `${reg.host}/dst/app:3`, ...creds], { input: PASSWORD });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^ondine: .*\[ONDINE_ERR_NOT_FOUND\]\n$/);
    const again = await ondine(['convert', `${reg.host}/dst/app:1`, `${reg.host}/dst/app:4`, ...creds], { input: PASSWORD });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /^ondine: .*already a Nydus image.*\n$/);
    const half = await ondine(['convert', `${reg.host}/src/app:1`, `${reg.host}/dst/app:3`, '--username', USER]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--username and --password-stdin go together/);
  });
});

describe('ondine convert with a token-auth registry', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let reg: RegistryServer & { tokenIssuer?: { issued(): number } };
  let work: string;

  before(async () => {
    work = scratchDir(suite, 'convert-token');
    reg = await startRegistry({ auth: 'token', users: { [USER]: PASSWORD } });
    suite.after(() => reg.stop());
    const a = makeUmociImage(work, 'a', { seed: 31, bigBytes: 1 << 20 });
    const b = deriveUmociImage(a, work, 'b', 32);
    // The token issuer lives in this process: skopeo must run without blocking it.
    for (const [img, tag] of [[a, 'a'], [b, 'b']] as const) {
      const r = await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', '--dest-creds', `${USER}:${PASSWORD}`, img.ref, `docker://${reg.host}/src/app:${tag}`]);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  test('bearer tokens: convert, then --chunk-dict mounts across repositories with a handful of tokens, not a storm', async () => {
    const env = { ...process.env, DOCKER_CONFIG: join(work, 'no-docker-config') };
    const creds = ['--username', USER, '--password-stdin', '--chunk-size', '64K', '--json'];
    const ondine = (args: string[]) => run(process.execPath, [cliPath, ...args, ...creds], { env, input: PASSWORD });
    const first = await ondine(['convert', `${reg.host}/src/app:a`, `${reg.host}/dst/dict:a`]);
    assert.equal(first.code, 0, first.stderr);
    const before = reg.tokenIssuer!.issued();
    const second = await ondine(['convert', `${reg.host}/src/app:b`, `${reg.host}/dst/x:b`, '--chunk-dict', `${reg.host}/dst/dict:a`]);
    assert.equal(second.code, 0, second.stderr);
    const s = JSON.parse(second.stdout) as { push: { blobsMounted: number } };
    assert.equal(s.push.blobsMounted, 2);
    const tokens = reg.tokenIssuer!.issued() - before;
    assert.ok(tokens >= 1 && tokens <= 6, `${tokens} tokens for three repositories`);
  });
});
