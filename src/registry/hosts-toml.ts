// containerd's `certs.d/<host>/hosts.toml`: just enough TOML for that file's shape (key =
// string/bool/number/array of those, [dotted."quoted"] tables, comments) and its meaning:
// an optional `server` and ordered `[host."url"]` mirror entries with capabilities, CA files,
// skip_verify, override_path and extra headers. Pure parsing; errors name file and line.
import { InvalidArgumentError } from '../errors.js';

type Value = string | number | boolean | Value[] | Table;
interface Table {
  [key: string]: Value;
}

/** Parses the TOML subset hosts.toml files use. Tables keep the file's key order. */
export function parseToml(text: string, file = 'hosts.toml'): Table {
  const root: Table = {};
  let current = root;
  let i = 0;
  const n = text.length;
  const lineAt = (pos: number) => text.slice(0, pos).split('\n').length;
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`${file}:${lineAt(i)}: ${why}`);
  };
  const skipSpace = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const skipComment = () => {
    if (text[i] === '#') while (i < n && text[i] !== '\n') i++;
  };
  const skipBlank = () => {
    for (;;) {
      skipSpace();
      skipComment();
      if (text[i] === '\n' || text[i] === '\r') i++;
      else break;
    }
  };
  const basicString = (): string => {
    i++; // opening quote
    if (text.startsWith('""', i)) fail('multi-line strings are not supported in hosts.toml');
    let out = '';
    while (i < n && text[i] !== '"') {
      if (text[i] === '\n') fail('unterminated string');
      if (text[i] === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r', b: '\b', f: '\f' };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' || e === 'U') {
          const len = e === 'u' ? 4 : 8;
          const hex = text.slice(i + 2, i + 2 + len);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) fail('bad unicode escape');
          out += String.fromCodePoint(parseInt(hex, 16));
          i += 2 + len;
        } else fail(`bad escape \\${e ?? ''}`);
      } else {
        out += text[i];
        i++;
      }
    }
    if (i >= n) fail('unterminated string');
    i++;
    return out;
  };
  const literalString = (): string => {
    i++;
    const end = text.indexOf("'", i);
    const nl = text.indexOf('\n', i);
    if (end < 0 || (nl >= 0 && nl < end)) fail('unterminated string');
    const out = text.slice(i, end);
    i = end + 1;
    return out;
  };
  const keyPart = (): string => {
    skipSpace();
    if (text[i] === '"') return basicString();
    if (text[i] === "'") return literalString();
    const start = i;
    while (i < n && /[A-Za-z0-9_-]/.test(text[i]!)) i++;
    if (i === start) fail(`expected a key, found ${JSON.stringify(text[i] ?? 'end of file')}`);
    return text.slice(start, i);
  };
  const keyPath = (): string[] => {
    const parts = [keyPart()];
    skipSpace();
    while (text[i] === '.') {
      i++;
      parts.push(keyPart());
      skipSpace();
    }
    return parts;
  };
  const value = (): Value => {
    skipSpace();
    const c = text[i];
    if (c === '"') return basicString();
    if (c === "'") return literalString();
    if (c === '[') {
      i++;
      const arr: Value[] = [];
      for (;;) {
        skipBlank();
        if (text[i] === ']') {
          i++;
          return arr;
        }
        arr.push(value());
        skipBlank();
        if (text[i] === ',') i++;
        else if (text[i] !== ']') fail('expected , or ] in an array');
      }
    }
    if (c === '{') fail('inline tables are not supported in hosts.toml');
    const m = /^(true|false|[+-]?[0-9][0-9_]*)/.exec(text.slice(i, i + 40));
    if (m === null) fail(`unsupported value starting ${JSON.stringify(text.slice(i, i + 10))}`);
    i += m![0].length;
    if (m![0] === 'true') return true;
    if (m![0] === 'false') return false;
    return Number(m![0].replace(/_/g, ''));
  };
  const tableAt = (path: string[], create: boolean): Table => {
    let t = root;
    for (const k of path) {
      const next = t[k];
      if (next === undefined) {
        if (!create) fail(`no table ${path.join('.')}`);
        const fresh: Table = {};
        t[k] = fresh;
        t = fresh;
      } else if (typeof next === 'object' && !Array.isArray(next)) t = next;
      else fail(`key ${k} is both a value and a table`);
    }
    return t;
  };
  for (;;) {
    skipBlank();
    if (i >= n) break;
    if (text[i] === '[') {
      if (text[i + 1] === '[') fail('arrays of tables are not supported in hosts.toml');
      i++;
      const path = keyPath();
      if (text[i] !== ']') fail('expected ] after a table name');
      i++;
      current = tableAt(path, true);
    } else {
      const path = keyPath();
      if (text[i] !== '=') fail(`expected = after key ${path.join('.')}`);
      i++;
      const v = value();
      const parent = path.length > 1 ? tableAtFrom(current, path.slice(0, -1), fail) : current;
      const last = path[path.length - 1]!;
      if (last in parent) fail(`duplicate key ${path.join('.')}`);
      parent[last] = v;
    }
    skipSpace();
    skipComment();
    if (i < n && text[i] !== '\n' && text[i] !== '\r') fail(`unexpected ${JSON.stringify(text[i])} after a value`);
  }
  return root;
}

function tableAtFrom(t: Table, path: string[], fail: (why: string) => never): Table {
  for (const k of path) {
    const next = t[k];
    if (next === undefined) t = t[k] = {};
    else if (typeof next === 'object' && !Array.isArray(next)) t = next;
    else fail(`key ${k} is both a value and a table`);
  }
  return t;
}

export type Capability = 'pull' | 'resolve' | 'push';

export interface HostsEntry {
  /** The host URL as written (scheme://host[:port][/path]). */
  url: string;
  capabilities: Capability[];
  ca?: string[];
  skipVerify?: boolean;
  overridePath?: boolean;
  headers?: Record<string, string>;
}

export interface HostsConfig {
  server?: HostsEntry;
  hosts: HostsEntry[];
}

const ALL: Capability[] = ['pull', 'resolve', 'push'];

function entry(url: string, t: Table, file: string): HostsEntry {
  const bad = (why: string) => new InvalidArgumentError(`${file}: ${url}: ${why}`);
  const e: HostsEntry = { url, capabilities: ALL };
  if (t.capabilities !== undefined) {
    if (!Array.isArray(t.capabilities) || !t.capabilities.every((c) => typeof c === 'string')) throw bad('capabilities must be an array of strings');
    for (const c of t.capabilities as string[]) if (!ALL.includes(c as Capability)) throw bad(`unknown capability ${JSON.stringify(c)}`);
    e.capabilities = t.capabilities as Capability[];
  }
  if (t.ca !== undefined) {
    if (typeof t.ca === 'string') e.ca = [t.ca];
    else if (Array.isArray(t.ca) && t.ca.every((c) => typeof c === 'string')) e.ca = t.ca as string[];
    else throw bad('ca must be a path or an array of paths');
  }
  if (t.skip_verify !== undefined) {
    if (typeof t.skip_verify !== 'boolean') throw bad('skip_verify must be true or false');
    e.skipVerify = t.skip_verify;
  }
  if (t.override_path !== undefined) {
    if (typeof t.override_path !== 'boolean') throw bad('override_path must be true or false');
    e.overridePath = t.override_path;
  }
  if (t.header !== undefined) {
    if (typeof t.header !== 'object' || Array.isArray(t.header)) throw bad('header must be a table');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(t.header)) {
      if (typeof v === 'string') headers[k] = v;
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) headers[k] = (v as string[]).join(', ');
      else throw bad(`header ${k} must be a string or an array of strings`);
    }
    e.headers = headers;
  }
  return e;
}

/** The meaning of one hosts.toml: mirrors in file order, then the optional `server`. */
export function parseHostsToml(text: string, file = 'hosts.toml'): HostsConfig {
  const t = parseToml(text, file);
  const out: HostsConfig = { hosts: [] };
  if (t.server !== undefined) {
    if (typeof t.server !== 'string') throw new InvalidArgumentError(`${file}: server must be a URL string`);
    out.server = entry(t.server, t, file);
    out.server.capabilities = ALL;
  }
  const hosts = t.host;
  if (hosts !== undefined) {
    if (typeof hosts !== 'object' || Array.isArray(hosts)) throw new InvalidArgumentError(`${file}: host must be a table of [host."url"] tables`);
    for (const [url, h] of Object.entries(hosts)) {
      if (typeof h !== 'object' || Array.isArray(h)) throw new InvalidArgumentError(`${file}: host.${JSON.stringify(url)} must be a table`);
      out.hosts.push(entry(url, h as Table, file));
    }
  }
  return out;
}
