// Mount by reference when the way to the registry is not clean: nginx as a caching mirror
// (warm: the origin sees no blob reads; down: the origin is used), nginx answering 307 for
// blobs (Range kept across the redirect), a registry restarted mid-read, a proxy that resets,
// truncates or corrupts blob responses (retried; EIO once it persists, answered from memory
// without new requests, nothing corrupt in the cache, the daemon up), and a basic-auth registry
// whose credentials appear in no log line and no API answer, and survive a worker restart; a
// token-auth registry whose expired token costs one refresh however many readers need it.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { Cleanup, cliOk, cliPath, requireKernelFs, run, scratchDir, skipUnlessRoot } from '../helpers/e2e-env.js';
import { dropCaches, pseudoRandomBytes, readInChild, sha256, startFanotifyDaemon, type FanotifyDaemon } from '../helpers/fanotify-daemon.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { pushLazy, type PushedLazyImage } from '../helpers/lazy-push.js';
import { startNginx } from '../helpers/nginx.js';
import { freePort, httpCall, startRegistry, type RegistryServer } from '../helpers/registry-env.js';
import { assertSameTree } from '../helpers/tree-compare.js';

const FILES = 30;

describe('registry faults, mirrors and credentials (fanotify)', { skip: skipUnlessRoot }, () => {
  const suite = new Cleanup();
  after(() => suite.run());
  let work: string;
  let registry: RegistryServer;
  let src: string;
  let pushed: PushedLazyImage;
  const conf = (i: number) => pseudoRandomBytes(500 + i, 3000 + i * 111);

  before(async () => {
    requireKernelFs('erofs');
    work = scratchDir(suite, 'reg-faults');
    registry = await startRegistry();
    suite.after(() => registry.stop());
    src = join(work, 'src');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'big.bin'), pseudoRandomBytes(9, 8 << 20));
    for (let i = 0; i < FILES; i++) writeFileSync(join(src, 'etc', `conf-${i}`), conf(i));
    await cliOk(['build', src, '-o', join(work, 'img'), '--chunk-size', '1M']);
    pushed = await pushLazy(registry, 'team/app', '1', join(work, 'img', 'bootstrap'), join(work, 'img', 'blobs'));
  });

  const originBlobGets = async () => (await registry.requests()).filter((e) => e.method === 'GET' && e.path.includes('/blobs/sha256:')).length;

  /** Reads etc/conf-<i> under `mnt` in a child; its outcome. */
  async function readConf(mnt: string, i: number) {
    const r = await readInChild(work, [{ path: join(mnt, 'etc', `conf-${i}`) }]);
    assert.ok(!r.hung, 'the read hung');
    return r.outcomes[0]!;
  }

  async function daemon(t: { after(fn: () => unknown): void }, name: string, extra: string[]): Promise<FanotifyDaemon> {
    return startFanotifyDaemon(t, work, { cacheDir: join(work, `cache-${name}`), extraArgs: extra });
  }

  test('a warm caching mirror (nginx) serves every blob read: the origin sees none', async (t) => {
    const nginx = await startNginx({
      http: (dir) => `proxy_cache_path ${dir}/cache levels=1:2 keys_zone=reg:10m max_size=1g inactive=1h use_temp_path=off;`,
      server: () => `location /v2/ {
        proxy_pass http://${registry.host};
        proxy_http_version 1.1;
        proxy_cache reg;
        proxy_cache_key $request_method$uri;
        proxy_cache_valid 200 206 1h;
      }`,
    });
    t.after(() => nginx.stop());
    // Warm it: every blob of the image through the mirror once.
    for (const digest of [...pushed.blobs.map((b) => `sha256:${b.id}`), pushed.bootstrapLayerDigest]) {
      const r = await httpCall(`${nginx.url}/v2/team/app/blobs/${digest}`, 'GET');
      assert.equal(r.status, 200, `warming ${digest}`);
    }
    const before = await originBlobGets();
    const d = await daemon(t, 'mirror', ['--mirror', `${registry.host}=${nginx.url}`]);
    const mnt = join(work, 'mnt-mirror');
    await d.mount(`${registry.host}/team/app:1`, mnt);
    dropCaches();
    await assertSameTree(t, 'through a warm mirror vs source', src, mnt, { dirNlink: true });
    assert.equal(await originBlobGets(), before, 'the origin served no blob read');
    const hits = nginx.log().filter((e) => e.path.includes(`/blobs/sha256:${pushed.blobs[0]!.id}`) && e.range !== '-' && e.range !== '');
    assert.ok(hits.length > 0 && hits.every((e) => e.cache === 'HIT' && e.status === 206), `ranges served from the mirror's cache: ${JSON.stringify(hits.slice(0, 5))}`);
    await d.umount(mnt);
  });

  test('a mirror that is down is passed over: the origin serves', async (t) => {
    const dead = await freePort();
    const before = await originBlobGets();
    const d = await daemon(t, 'dead-mirror', ['--mirror', `${registry.host}=http://127.0.0.1:${dead}`]);
    const mnt = join(work, 'mnt-dead-mirror');
    await d.mount(`${registry.host}/team/app:1`, mnt);
    dropCaches();
    const o = await readConf(mnt, 3);
    assert.equal(o.result, 'ok');
    assert.equal(o.sha, sha256(conf(3)));
    assert.ok(await originBlobGets() > before, 'the origin served the blob reads');
    await d.umount(mnt);
  });

  test('nginx answering 307 for blobs: the redirect is followed with the Range kept', async (t) => {
    const nginx = await startNginx({
      server: () => `location ~ ^/v2/.+/blobs/sha256: { return 307 http://${registry.host}$request_uri; }
      location / { proxy_pass http://${registry.host}; proxy_http_version 1.1; }`,
    });
    t.after(() => nginx.stop());
    const originBefore = (await registry.requests()).length;
    const d = await daemon(t, 'redirect', []);
    const mnt = join(work, 'mnt-redirect');
    await d.mount(`${nginx.host}/team/app:1`, mnt);
    dropCaches();
    const o = await readConf(mnt, 4);
    assert.equal(o.result, 'ok');
    assert.equal(o.sha, sha256(conf(4)));
    const redirected = nginx.log().filter((e) => e.path.includes(`/blobs/sha256:${pushed.blobs[0]!.id}`));
    assert.ok(redirected.length > 0 && redirected.every((e) => e.status === 307 && e.range.startsWith('bytes=')), JSON.stringify(redirected));
    const atOrigin = (await registry.requests()).slice(originBefore).filter((e) => e.method === 'GET' && e.path.includes(`/blobs/sha256:${pushed.blobs[0]!.id}`));
    assert.equal(atOrigin.length, redirected.length, 'each redirect was followed');
    assert.ok(atOrigin.every((e) => e.status === 206), `the origin answered ranges (206), so Range survived the redirect: ${JSON.stringify(atOrigin.map((e) => e.status))}`);
    await d.umount(mnt);
  });

  describe('through a faulty proxy', () => {
    let proxy: FaultProxy;
    let d: FanotifyDaemon;
    let mnt: string;
    const sub = new Cleanup();
    after(() => sub.run());

    before(async () => {
      proxy = await FaultProxy.start(registry.url);
      sub.after(() => proxy.close());
      // No read-ahead: each read below fetches its own file's chunk and nothing else.
      d = await daemon(sub, 'faults', ['--amplify', '0', '--failure-memo', '1000']);
      mnt = join(work, 'mnt-faults');
      await d.mount(`${proxy.host}/team/app:1`, mnt);
      dropCaches();
    });

    for (const [i, fault] of [[5, 'reset'], [6, 'truncate'], [7, 'corrupt'], [8, 'refuse']] as const) {
      test(`one ${fault} blob response is retried and the read succeeds`, async () => {
        const injected = proxy.injected;
        proxy.set(fault, 1);
        const o = await readConf(mnt, i);
        proxy.set(undefined);
        assert.equal(proxy.injected, injected + 1, 'the fault was injected');
        assert.equal(o.result, 'ok');
        assert.equal(o.sha, sha256(conf(i)));
      });
    }

    test('the registry restarted mid-read: the read completes after retries', async () => {
      const injected = proxy.injected;
      proxy.set('refuse');
      const reading = readConf(mnt, 9);
      while (proxy.injected === injected) await sleep(20);
      await registry.restart();
      proxy.set(undefined);
      const o = await reading;
      assert.ok(proxy.injected > injected);
      assert.equal(o.result, 'ok');
      assert.equal(o.sha, sha256(conf(9)));
    });

    test('corruption that persists: EIO, then EIO from memory with no request, nothing corrupt cached, the daemon up', async () => {
      const worker = (await d.status()).workerPid;
      proxy.set('corrupt');
      const first = await readConf(mnt, 10);
      assert.equal(first.result, 'EIO');
      const gets = proxy.blobGets;
      const again = await readConf(mnt, 10);
      assert.equal(again.result, 'EIO');
      assert.equal(proxy.blobGets, gets, 'the failure was answered from memory');
      proxy.set(undefined);
      await sleep(1100); // the daemon remembers the failure for 1 s (--failure-memo 1000)
      const fixed = await readConf(mnt, 10);
      assert.equal(fixed.result, 'ok');
      assert.equal(fixed.sha, sha256(conf(10)), 'no corrupt byte was cached: the file reads right once the wire is clean');
      assert.equal((await d.status()).workerPid, worker, 'the same worker served throughout');
    });

    test('resets that persist: EIO after the retries, the daemon up', async () => {
      proxy.set('reset');
      const o = await readConf(mnt, 11);
      proxy.set(undefined);
      assert.equal(o.result, 'EIO');
      assert.ok(proxy.injected >= 5, `retried (${proxy.injected} faults injected in all)`);
      assert.ok(d.alive);
      await sleep(2100); // a transient failure is remembered 2 s
      const ok = await readConf(mnt, 11);
      assert.equal(ok.sha, sha256(conf(11)));
    });
  });

  test('token auth: after the token expires, many concurrent readers cost exactly one token refresh', async (t) => {
    const ttl = 3;
    const tokened = await startRegistry({ auth: 'token', tokenTtlS: ttl, users: { bob: 'token-user-pw' } });
    t.after(() => tokened.stop());
    await pushLazy(tokened, 'tok/app', '1', join(work, 'img', 'bootstrap'), join(work, 'img', 'blobs'));
    const d = await daemon(t, 'token', ['--amplify', '0']);
    const mnt = join(work, 'mnt-token');
    mkdirSync(mnt);
    const m = await run(process.execPath, [cliPath, 'mount', `${tokened.host}/tok/app:1`, mnt, '--mode', 'fanotify', '--socket', d.socket, '--username', 'bob', '--password-stdin'], { input: 'token-user-pw' });
    assert.equal(m.code, 0, m.stderr);
    // Past the token's lifetime: the next reads need a new one.
    await sleep((ttl + 1) * 1000);
    dropCaches();
    const before = tokened.tokenIssuer!.issued();
    // Ten readers at once, each of a file of its own (no read-ahead: a request each).
    const files = [14, 16, 18, 20, 22, 24, 25, 26, 27, 28];
    const got = await Promise.all(files.map((i) => readConf(mnt, i)));
    assert.deepEqual(got.map((o) => o.sha), files.map((i) => sha256(conf(i))));
    assert.equal(tokened.tokenIssuer!.issued() - before, 1, 'one token refresh served every reader');
    await d.umount(mnt);
  });

  test('basic auth: credentials work, survive a worker restart, and appear in no log line or API answer', async (t) => {
    const user = 'alice';
    const password = 'Pw-9f3e1c-never-shown';
    const authed = await startRegistry({ auth: 'basic', users: { [user]: password } });
    t.after(() => authed.stop());
    await pushLazy(authed, 'secret/app', '1', join(work, 'img', 'bootstrap'), join(work, 'img', 'blobs'));
    const d = await daemon(t, 'auth', []);
    const mnt = join(work, 'mnt-auth');
    mkdirSync(mnt);
    const ref = `${authed.host}/secret/app:1`;
    const m = await run(process.execPath, [cliPath, 'mount', ref, mnt, '--mode', 'fanotify', '--socket', d.socket, '--username', user, '--password-stdin'], { input: `${password}\n` });
    assert.equal(m.code, 0, m.stderr);
    dropCaches();
    assert.equal((await readConf(mnt, 12)).sha, sha256(conf(12)));

    const stateFile = join(dirname(d.socket), 'fanotify-state.json');
    assert.equal(statSync(stateFile).mode & 0o777, 0o600, 'the state file (it holds the credentials) is 0600');
    assert.equal(statSync(d.socket).mode & 0o777, 0o600, 'the socket is 0600');

    // A new worker serves the mount with the credentials from the state file.
    const old = (await d.status()).workerPid;
    process.kill(old, 'SIGKILL');
    await d.waitForWorker(old);
    assert.equal((await readConf(mnt, 13)).sha, sha256(conf(13)));

    // Credentials from a Docker config work too; a wrong password is a clear error, quickly.
    const dockerDir = join(work, 'docker-config');
    mkdirSync(dockerDir);
    writeFileSync(join(dockerDir, 'config.json'), JSON.stringify({ auths: { [authed.host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
    const mnt2 = join(work, 'mnt-auth-docker');
    mkdirSync(mnt2);
    const viaConfig = await run(process.execPath, [cliPath, 'mount', ref, mnt2, '--mode', 'fanotify', '--socket', d.socket], { env: { ...process.env, DOCKER_CONFIG: dockerDir } });
    assert.equal(viaConfig.code, 0, viaConfig.stderr);
    const wrongPassword = 'Wrong-7d2a-never-shown';
    const mnt3 = join(work, 'mnt-auth-wrong');
    mkdirSync(mnt3);
    const before401 = (await authed.requests()).filter((e) => e.status === 401).length;
    const wrong = await run(process.execPath, [cliPath, 'mount', ref, mnt3, '--mode', 'fanotify', '--socket', d.socket, '--username', user, '--password-stdin'], { input: wrongPassword });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /ONDINE_ERR_AUTH/);
    const new401 = (await authed.requests()).filter((e) => e.status === 401).length - before401;
    assert.ok(new401 <= 3, `refused without a retry loop (${new401} answers 401)`);

    const answers = JSON.stringify([await d.client.mounts(), await d.client.images(), await d.client.stats(), await d.client.health()]);
    const log = readFileSync(d.logPath, 'utf8');
    for (const secret of [password, wrongPassword, Buffer.from(`${user}:${password}`).toString('base64')]) {
      assert.ok(!answers.includes(secret), 'no API answer holds a credential');
      assert.ok(!log.includes(secret), 'no daemon log line holds a credential');
      assert.ok(!wrong.stderr.includes(secret) && !m.stderr.includes(secret), 'no CLI error holds a credential');
    }
    assert.ok(readFileSync(stateFile, 'utf8').includes(password), 'the credentials are kept (0600) for worker restarts');
    await d.umount(mnt);
    await d.umount(mnt2);
  });
});
