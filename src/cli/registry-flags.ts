// Registry flags shared by the commands that talk to a registry (convert, push, build --push):
// TLS and plain-http choices, and credentials from --username/--password-stdin or, failing
// that, from the Docker config (~/.docker/config.json, credential helpers). The registry
// client (undici) loads only when a command makes one, not when its flags are declared.
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import type { RegistryClient, RegistryOptions } from '../registry/client.js';
import type { Credentials } from '../registry/credentials.js';

export function addRegistryFlags(cmd: Command): Command {
  return cmd
    .option('--insecure', 'allow plain http to a registry that is not on loopback')
    .option('--ca-file <path>', 'CA certificate(s) (PEM) to trust for the registry')
    .option('--username <name>', 'registry user (password from --password-stdin)')
    .option('--password-stdin', 'read the registry password (or token) from standard input');
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}

export async function registryClient(o: Record<string, unknown>): Promise<RegistryClient> {
  const [{ RegistryClient }, { dockerCredentials }] = await Promise.all([import('../registry/client.js'), import('../registry/credentials.js')]);
  const opts: RegistryOptions = { userAgent: 'ondine' };
  if (o.insecure) opts.insecure = true;
  if (typeof o.caFile === 'string') opts.caFile = o.caFile;
  if (o.username !== undefined || o.passwordStdin) {
    if (!o.username || !o.passwordStdin) throw new InvalidArgumentError('--username and --password-stdin go together');
    const creds: Credentials = { username: String(o.username), password: await readStdin() };
    opts.credentials = creds;
  } else {
    opts.credentialsFor = (registry: string) => dockerCredentials(registry);
  }
  return new RegistryClient(opts);
}
