// The error table: every stable code maps to an errno the kernel front ends can answer with
// and an HTTP status for the management API; a code's default errno comes from the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES, httpStatus, OndineError, type ErrorCode } from '../src/errors.js';

test('every code has a positive errno and a 4xx/5xx status', () => {
  for (const [code, { errno, status }] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^ONDINE_ERR_[A-Z_]+$/);
    assert.ok(Number.isInteger(errno) && errno > 0 && errno < 4096, `${code}: errno ${errno}`);
    assert.ok(status >= 400 && status < 600, `${code}: status ${status}`);
  }
});

test('httpStatus reads the table; a code it does not know is a 500', () => {
  assert.equal(httpStatus('ONDINE_ERR_BUSY'), 409);
  assert.equal(httpStatus('ONDINE_ERR_NOT_FOUND'), 404);
  assert.equal(httpStatus('ONDINE_ERR_FROM_A_NEWER_DAEMON'), 500);
});

test('OndineError takes its errno from the table unless given one', () => {
  const code: ErrorCode = 'ONDINE_ERR_BUSY';
  assert.equal(new OndineError(code, undefined, 'x').errno, ERROR_CODES.ONDINE_ERR_BUSY.errno);
  assert.equal(new OndineError(code, 5, 'x').errno, 5);
});

test('no call site gives an errno of its own for a code: the table decides', async () => {
  // Errnos from the kernel (err.errno) are its verdict and pass through; a literal number
  // beside a code is how the table got contradicted before (ENOENT for ONDINE_ERR_CACHE_DIR).
  const { readdir, readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('../../src/', import.meta.url));
  const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length > 50, `found the sources (${files.length} files)`);
  const offenders: string[] = [];
  for (const f of files) {
    const text = await readFile(join(root, f), 'utf8');
    for (const m of text.matchAll(/(?:new OndineError|super)\(\s*'(ONDINE_ERR_[A-Z_]+)',\s*(\d+)\s*,/g)) offenders.push(`${f}: ${m[1]} ${m[2]}`);
  }
  assert.deepEqual(offenders, []);
});
