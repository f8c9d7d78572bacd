// containerd's list filters for snapshots (`labels."containerd.io/snapshot.ref"==sha256:…,
// parent=="…"`): a filter is selectors joined by commas (all must hold), several filters
// match when any does. Fields: name, parent, kind, labels.<key>; operators ==, !=, ~= (regular
// expression), or a bare field path for "present and not empty". Pure parsing; containerd
// checks what a Walk returns itself, but an answer must never omit a match.
import { invalid } from './errors.js';

export interface Selector {
  path: string[];
  op?: '==' | '!=' | '~=';
  value?: string;
  re?: RegExp;
}

export type Filter = Selector[];

export interface Filterable {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

function quoted(s: string, i: number): [string, number] {
  const q = s[i]!;
  let j = i + 1;
  let raw = '';
  while (j < s.length && s[j] !== q) {
    if (s[j] === '\\' && q === '"') { raw += s[j]! + (s[j + 1] ?? ''); j += 2; continue; }
    raw += s[j]!;
    j++;
  }
  if (j >= s.length) throw invalid(`filter ${JSON.stringify(s)}: unterminated quote`);
  if (q === '`') return [raw, j + 1];
  try {
    return [JSON.parse(`"${raw}"`) as string, j + 1];
  } catch {
    throw invalid(`filter ${JSON.stringify(s)}: bad escape in a quoted string`);
  }
}

export function parseFilter(s: string): Filter {
  if (s.length > 8192) throw invalid('filter longer than 8192 characters');
  const out: Filter = [];
  let i = 0;
  const skip = () => { while (s[i] === ' ') i++; };
  for (;;) {
    skip();
    const path: string[] = [];
    for (;;) {
      if (s[i] === '"' || s[i] === '`') {
        const [v, j] = quoted(s, i);
        path.push(v);
        i = j;
      } else {
        const m = /^[A-Za-z0-9_/-]+/.exec(s.slice(i));
        if (!m) throw invalid(`filter ${JSON.stringify(s)}: expected a field at ${i}`);
        path.push(m[0]);
        i += m[0].length;
      }
      if (s[i] !== '.') break;
      i++;
    }
    skip();
    const sel: Selector = { path };
    const op = s.slice(i, i + 2);
    if (op === '==' || op === '!=' || op === '~=') {
      i += 2;
      skip();
      let value: string;
      if (s[i] === '"' || s[i] === '`') [value, i] = quoted(s, i);
      else {
        const end = s.indexOf(',', i);
        value = (end < 0 ? s.slice(i) : s.slice(i, end)).trimEnd();
        i = end < 0 ? s.length : end;
      }
      sel.op = op;
      sel.value = value;
      if (op === '~=') {
        try {
          sel.re = new RegExp(value);
        } catch {
          throw invalid(`filter ${JSON.stringify(s)}: bad regular expression`);
        }
      }
    }
    out.push(sel);
    skip();
    if (i >= s.length) return out;
    if (s[i] !== ',') throw invalid(`filter ${JSON.stringify(s)}: unexpected ${JSON.stringify(s[i])} at ${i}`);
    i++;
  }
}

function field(x: Filterable, path: string[]): string | undefined {
  const [head, ...rest] = path;
  if (head === 'labels') return rest.length ? x.labels[rest.join('.')] : undefined;
  if (rest.length) return undefined;
  if (head === 'name') return x.name;
  if (head === 'parent') return x.parent;
  if (head === 'kind') return x.kind;
  return undefined;
}

function holds(x: Filterable, sel: Selector): boolean {
  const v = field(x, sel.path);
  if (!sel.op) return v !== undefined && v !== '';
  if (sel.op === '==') return v === sel.value;
  if (sel.op === '!=') return v !== sel.value;
  return v !== undefined && sel.re!.test(v);
}

/** No filters: everything; else any filter whose selectors all hold. */
export function matches(x: Filterable, filters: readonly Filter[]): boolean {
  return filters.length === 0 || filters.some((f) => f.every((sel) => holds(x, sel)));
}
