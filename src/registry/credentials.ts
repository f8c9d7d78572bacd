// Registry credentials as Docker keeps them: ~/.docker/config.json (or $DOCKER_CONFIG) with
// `auths` entries, per-host `credHelpers` and a default `credsStore`, the helpers being
// `docker-credential-<name> get` programs. Nothing here logs or prints a secret.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, OndineError } from '../errors.js';
import { DOCKER_HUB } from './reference.js';

export type Credentials = { username: string; password: string } | { identityToken: string } | { registryToken: string };

/** The key Docker files Docker Hub's credentials under. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}
interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** `https://host:port/v1/` or `host:port` -> `host:port`; Docker Hub's aliases -> docker.io. */
export function normaliseAuthKey(key: string): string {
  let k = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  k = k.toLowerCase();
  return k === 'index.docker.io' || k === 'registry-1.docker.io' ? DOCKER_HUB : k;
}

/** A helper failed or is missing: say which program, never what it printed for a secret. */
export class CredentialHelperError extends OndineError {
  constructor(message: string) {
    super('ONDINE_ERR_AUTH', undefined, message);
  }
}

/**
 * Credentials for `registry` (a reference's registry name, e.g. `docker.io` or
 * `127.0.0.1:5000`) from Docker's config: `credHelpers[host]`, then `credsStore`, then `auths`.
 * undefined when the config or an entry for the registry is absent.
 */
export async function dockerCredentials(registry: string, opts?: { configDir?: string; env?: NodeJS.ProcessEnv }): Promise<Credentials | undefined> {
  const env = opts?.env ?? process.env;
  const dir = opts?.configDir ?? env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let config: DockerConfig;
  try {
    config = JSON.parse(text) as DockerConfig;
  } catch (err) {
    throw new InvalidArgumentError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (config === null || typeof config !== 'object') throw new InvalidArgumentError(`${file}: not a JSON object`);
  const wanted = normaliseAuthKey(registry);
  const serverUrl = wanted === DOCKER_HUB ? DOCKER_HUB_AUTH_KEY : wanted;

  const helper = Object.entries(config.credHelpers ?? {}).find(([k]) => normaliseAuthKey(k) === wanted)?.[1];
  for (const name of [helper, config.credsStore]) {
    if (typeof name !== 'string' || name === '') continue;
    const found = await runCredentialHelper(name, serverUrl, env);
    if (found !== undefined) return found;
    if (name === helper) return undefined; // a host's own helper is authoritative
  }
  const entry = Object.entries(config.auths ?? {}).find(([k]) => normaliseAuthKey(k) === wanted)?.[1];
  return entry === undefined ? undefined : fromAuthEntry(entry, file);
}

function fromAuthEntry(entry: AuthEntry, file: string): Credentials | undefined {
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') return { identityToken: entry.identitytoken };
  if (typeof entry.registrytoken === 'string' && entry.registrytoken !== '') return { registryToken: entry.registrytoken };
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new InvalidArgumentError(`${file}: an "auth" entry does not decode to user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/**
 * Runs `docker-credential-<name> get` with the server URL on stdin. "Not found" answers give
 * undefined; a missing program or another failure is an error naming the program.
 */
export async function runCredentialHelper(name: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new InvalidArgumentError(`credential helper name ${JSON.stringify(name)} is not a plain name`);
  const program = `docker-credential-${name}`;
  const { code, stdout, spawnError } = await new Promise<{ code: number | null; stdout: string; spawnError?: NodeJS.ErrnoException }>((resolve) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    // A helper waiting on a locked keychain must not hang a pull forever.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    timer.unref();
    child.on('exit', () => clearTimeout(timer));
    child.on('error', () => clearTimeout(timer));
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: null, stdout: '', spawnError: err }));
    child.on('close', (c) => resolve({ code: c, stdout: out }));
    child.stdin.on('error', () => {}); // a helper that exits without reading stdin
    child.stdin.end(serverUrl);
  });
  if (spawnError !== undefined) {
    if (spawnError.code === 'ENOENT') throw new CredentialHelperError(`credential helper ${program} is not installed (not found on PATH)`);
    throw new CredentialHelperError(`credential helper ${program} could not run: ${spawnError.code ?? spawnError.message}`);
  }
  if (code !== 0) {
    // The protocol's "not found" answer is an exit status 1 with a message on stdout.
    if (/credentials not found/i.test(stdout)) return undefined;
    throw new CredentialHelperError(`credential helper ${program} failed for ${serverUrl} (exit status ${code})`);
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new CredentialHelperError(`credential helper ${program} printed something that is not JSON for ${serverUrl}`);
  }
  const user = parsed.Username;
  const secret = parsed.Secret;
  if (typeof secret !== 'string' || secret === '') return undefined;
  if (user === '<token>') return { identityToken: secret };
  if (typeof user !== 'string' || user === '') return undefined;
  return { username: user, password: secret };
}
