import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MetadataStore, type SnapshotRecord } from '../../src/snapshotter/metadata.js';

const rec = (store: MetadataStore, name: string, parent = ''): SnapshotRecord => ({ id: store.allocateId(), name, parent, kind: 'committed', createdMs: 1, updatedMs: 2, labels: { a: name } });

test('what apply() wrote is what a new store reads; ids are not reused after a reload', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ondine-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = new MetadataStore(dir);
  const r1 = rec(a, 'one');
  const r2 = rec(a, 'two', 'one');
  a.apply({ put: [r1, r2] });
  a.apply({ remove: ['two'] });
  const b = new MetadataStore(dir);
  assert.deepEqual(b.all(), [r1]);
  assert.ok(b.allocateId() > r2.id);
  assert.deepEqual(readdirSync(dir).sort(), ['metadata.json'], 'no temp file left');
});

test('a torn temp file from a crash is ignored; a corrupt metadata file is refused, not emptied', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ondine-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = new MetadataStore(dir);
  const r1 = rec(a, 'one');
  a.apply({ put: [r1] });
  writeFileSync(join(dir, 'metadata.json.tmp'), '{"version":1,"nextId":');
  assert.deepEqual(new MetadataStore(dir).all(), [r1]);
  writeFileSync(join(dir, 'metadata.json'), '{"version":1,"snap');
  assert.throws(() => new MetadataStore(dir), (e: Error & { code?: string }) => e.code === 'ONDINE_ERR_CORRUPT');
});

test('a change that cannot be written is not kept in memory either', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ondine-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = new MetadataStore(dir);
  const r1 = rec(a, 'one');
  a.apply({ put: [r1] });
  rmSync(dir, { recursive: true, force: true });
  assert.throws(() => a.apply({ put: [rec(a, 'two')], remove: ['one'] }));
  assert.deepEqual(a.all(), [r1]);
});
