// Daemon config: registry mirrors from `--mirror host=url` flags (repeatable, in order) or the
// JSON config, checked for shape; the failure memo's time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, parseMirrorFlags } from '../../src/daemon/config.js';

test('--mirror flags group by registry host, keeping their order', () => {
  assert.deepEqual(parseMirrorFlags(['docker.io=http://127.0.0.1:8080', '127.0.0.1:5000=https://m.example/v2', 'docker.io=https://b.example']), {
    'docker.io': ['http://127.0.0.1:8080', 'https://b.example'],
    '127.0.0.1:5000': ['https://m.example/v2'],
  });
  for (const bad of ['docker.io', '=http://x', 'docker.io=ftp://x', 'docker.io=']) {
    assert.throws(() => parseMirrorFlags([bad]), { code: 'ONDINE_ERR_INVALID' }, bad);
  }
});

test('mirrors from the config file are checked; flags win; failureMemoMs defaults to 30 s', async () => {
  const dir = mkdtempSync('/tmp/ondine-config-');
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ cacheDir: dir, mirrors: { 'docker.io': ['http://127.0.0.1:1'] } }));
    const c = await loadConfig(file, {});
    assert.deepEqual(c.mirrors, { 'docker.io': ['http://127.0.0.1:1'] });
    assert.equal(c.failureMemoMs, 30_000);
    const f = await loadConfig(file, { mirrors: { 'quay.io': ['https://q.example'] }, failureMemoMs: 0 });
    assert.deepEqual(f.mirrors, { 'quay.io': ['https://q.example'] });
    assert.equal(f.failureMemoMs, 0);
    writeFileSync(file, JSON.stringify({ cacheDir: dir, mirrors: { 'docker.io': 'http://127.0.0.1:1' } }));
    await assert.rejects(loadConfig(file, {}), { code: 'ONDINE_ERR_INVALID' });
    await assert.rejects(loadConfig(undefined, { cacheDir: dir, failureMemoMs: -1 }), { code: 'ONDINE_ERR_INVALID' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
