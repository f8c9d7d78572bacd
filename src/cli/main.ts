#!/usr/bin/env node
// The `ondine` command: one file per verb under commands/; this file only picks the verb's
// module and turns typed errors into a message and an exit code. A verb's module (and what it
// needs) loads only when that verb runs: `ondine --version` loads commander alone, `ondine
// mount` the daemon client; help with no verb and an unknown verb load every verb (to list
// them, or suggest one).
import { Command } from 'commander';
import { OndineError } from '../errors.js';
import { NativeError } from '../native/errors.js';

type VerbModule = { register(program: Command): void };

/** Each verb's module, in the order help lists them. */
const VERBS: Record<string, () => Promise<VerbModule>> = {
  build: () => import('./commands/build.js'),
  inspect: () => import('./commands/inspect.js'),
  unpack: () => import('./commands/unpack.js'),
  daemon: () => import('./commands/daemon.js'),
  mount: () => import('./commands/mount.js'),
  umount: () => import('./commands/umount.js'),
  status: () => import('./commands/status.js'),
  stop: () => import('./commands/stop.js'),
  probe: () => import('./commands/probe.js'),
  convert: () => import('./commands/convert.js'),
  push: () => import('./commands/push.js'),
  snapshotter: () => import('./commands/snapshotter.js'),
};

/** The verbs whose modules this command line needs: its verb, none for the version, else all. */
function verbsFor(argv: readonly string[]): string[] {
  const first = argv[0];
  if (first !== undefined && Object.hasOwn(VERBS, first)) return [first];
  if (first === '-V' || first === '--version') return [];
  return Object.keys(VERBS);
}

async function main(): Promise<void> {
  const program = new Command();
  program.name('ondine').description('on-demand container images for in-kernel EROFS').version('0.1.0');
  const verbs = verbsFor(process.argv.slice(2));
  for (const mod of await Promise.all(verbs.map((v) => VERBS[v]!()))) mod.register(program);
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  if (err instanceof OndineError) {
    process.stderr.write(`ondine: ${err.message} [${err.code}]\n`);
    process.exitCode = 2;
  } else if (err instanceof NativeError) {
    // A system call the user's machine refused (permissions, a busy device): its message
    // says what to do; a stack trace would not.
    process.stderr.write(`ondine: ${err.message} [${err.code}]\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`ondine: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
});
