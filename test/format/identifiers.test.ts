// The identifier grammars (src/format/identifiers.ts): what each accepts and refuses, that a
// refusal is a typed error naming the field, and that a refused value is never echoed whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OndineError } from '../../src/errors.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import {
  blobIdOfDigest, checkBlobId, checkBootstrapIdentifiers, checkDigest, checkName, IdentifierError, isBlobId, isName, quoteIdentifier,
} from '../../src/format/identifiers.js';
import { BLOB_ID } from './support.js';
import { buildImage, richTree } from './synthetic-image.js';
import { setBlobId } from '../helpers/blob-ids.js';

const HEX64 = 'a'.repeat(64);
/** Values every grammar refuses: traversal, separators, option syntax, NUL, control bytes, empties. */
const HOSTILE = ['', '.', '..', '../../../victim', '/', '/etc/passwd', 'a/b', 'a,b', 'a=b', 'a\0b', 'a b', 'a\nb', 'ä', '-'.repeat(65), 'x'.repeat(1 << 20)];

function refused(fn: () => unknown, field: string): IdentifierError {
  let caught: unknown;
  assert.throws(fn, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof IdentifierError, `an IdentifierError: ${String(caught)}`);
  assert.ok(caught instanceof OndineError);
  assert.equal(caught.code, 'ONDINE_ERR_BAD_IDENTIFIER');
  assert.equal(caught.errno, 22);
  assert.ok(caught.message.startsWith(field), `the message names the field: ${caught.message}`);
  assert.ok(!caught.message.includes('\n') && !caught.message.includes('\0'), 'one line, no raw NUL');
  assert.ok(caught.message.length < 300, `short (${caught.message.length} characters)`);
  return caught;
}

test('blob ids: 64 lowercase hex only', () => {
  assert.equal(checkBlobId(HEX64), HEX64);
  assert.equal(checkBlobId(BLOB_ID), BLOB_ID);
  assert.ok(isBlobId(BLOB_ID));
  for (const bad of [...HOSTILE, HEX64.toUpperCase(), HEX64.slice(1), `${HEX64}0`, `${HEX64.slice(0, 63)}g`, `sha256:${HEX64}`]) {
    refused(() => checkBlobId(bad, 'blob 1: its id'), 'blob 1: its id');
    assert.equal(isBlobId(bad), false, JSON.stringify(bad.slice(0, 80)));
  }
  refused(() => checkBlobId(undefined), 'blob id');
  refused(() => checkBlobId(42), 'blob id');
});

test('digests: sha256 with 64 hex, sha512 with 128 hex', () => {
  assert.equal(checkDigest(`sha256:${HEX64}`), `sha256:${HEX64}`);
  assert.equal(checkDigest(`sha512:${HEX64}${HEX64}`), `sha512:${HEX64}${HEX64}`);
  for (const bad of [...HOSTILE, HEX64, `sha256:${HEX64}${HEX64}`, `sha512:${HEX64}`, `sha256:${HEX64.toUpperCase()}`, `md5:${HEX64}`, `sha256:../${HEX64.slice(3)}`, `sha256:${HEX64}\n`]) {
    refused(() => checkDigest(bad, 'layer digest'), 'layer digest');
  }
  assert.equal(blobIdOfDigest(`sha256:${HEX64}`), HEX64);
  assert.equal(blobIdOfDigest(`sha512:${HEX64}${HEX64}`), undefined);
  assert.equal(blobIdOfDigest('sha256:../x'), undefined);
});

test('names (fsid, domain, device tag): [A-Za-z0-9._-]{1,64}, not . or ..', () => {
  for (const good of ['a', 'ondine-0123456789abcdef', 'A.b_c-D', '...', '.hidden', 'x'.repeat(64), BLOB_ID]) {
    assert.equal(checkName(good, 'fsid'), good);
    assert.ok(isName(good));
  }
  for (const bad of [...HOSTILE, 'x'.repeat(65), 'a:b', 'a%2fb']) {
    refused(() => checkName(bad, 'fsid'), 'fsid');
    assert.equal(isName(bad), false);
  }
});

test('a refused value is quoted escaped and cut short', () => {
  const e = refused(() => checkName(`${'y'.repeat(5000)}\0`, 'domain'), 'domain');
  assert.match(e.message, /\(5001 characters\)/);
  assert.equal(quoteIdentifier('a\0b'), '"a\\u0000b"');
  assert.equal(quoteIdentifier(undefined), 'undefined');
  assert.equal(quoteIdentifier(null), 'null');
});

test('a bootstrap: every blob table id and device tag is checked, the first bad one named', () => {
  const good = buildImage(richTree(), { seal: true }).image;
  checkBootstrapIdentifiers(parseBootstrap(good), 'the image');
  for (const bad of ['../../../victim', '/etc/passwd', 'a,b', 'x'.repeat(64), '.', '']) {
    const img = Buffer.from(good);
    setBlobId(img, 0, bad);
    const b = parseBootstrap(img);
    assert.equal(b.blobs[0]!.blobId, bad, 'the crafted bootstrap parses and carries the id');
    const e = refused(() => checkBootstrapIdentifiers(b, 'the image'), 'blob 1 of the image: its id');
    assert.equal(e.kind, 'blob id');
  }
  // Only the device tag bad (a blob id stays valid): the tag goes into mount options and cookie keys.
  const img = Buffer.from(good);
  setBlobId(img, 0, 'a,b', { only: 'tag' });
  refused(() => checkBootstrapIdentifiers(parseBootstrap(img), 'the image'), 'device 1 of the image: its tag');
});
