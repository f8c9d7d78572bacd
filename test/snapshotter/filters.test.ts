import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matches, parseFilter } from '../../src/snapshotter/filters.js';

const snap = { name: 'default/3/sha256:abc', parent: 'default/2/sha256:def', kind: 'committed', labels: { 'containerd.io/snapshot.ref': 'sha256:abc', 'containerd.io/snapshot/remote': 'remote', empty: '' } };

test("containerd's remote-snapshot lookup filter (unquoted ref, Go-quoted parent) matches exactly the target", () => {
  const f = parseFilter('labels."containerd.io/snapshot.ref"==sha256:abc,parent=="default/2/sha256:def"');
  assert.equal(matches(snap, [f]), true);
  assert.equal(matches({ ...snap, parent: 'other' }, [f]), false);
  assert.equal(matches({ ...snap, labels: { 'containerd.io/snapshot.ref': 'sha256:abd' } }, [f]), false);
});

test('several filters match when any does; selectors within one must all hold', () => {
  assert.equal(matches(snap, [parseFilter('kind==active'), parseFilter('name==default/3/sha256:abc')]), true);
  assert.equal(matches(snap, [parseFilter('kind==active,name==default/3/sha256:abc')]), false);
  assert.equal(matches(snap, []), true);
});

test('!=, ~= and presence; an empty label is not present', () => {
  assert.equal(matches(snap, [parseFilter('kind!=view')]), true);
  assert.equal(matches(snap, [parseFilter('name~="sha256:a.c$"')]), true);
  assert.equal(matches(snap, [parseFilter('name~=^x')]), false);
  assert.equal(matches(snap, [parseFilter('labels."containerd.io/snapshot/remote"')]), true);
  assert.equal(matches(snap, [parseFilter('labels.empty')]), false);
  assert.equal(matches(snap, [parseFilter('labels.`containerd.io/snapshot.ref`==`sha256:abc`')]), true);
});

test('malformed filters are refused as invalid arguments', () => {
  for (const bad of ['labels."unterminated', '==x', 'name==a,', 'name~=(', 'name=a']) {
    assert.throws(() => parseFilter(bad), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_INVALID_ARG' || e.code === 'ONDINE_ERR_INVALID', bad);
  }
});
