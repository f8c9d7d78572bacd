#!/usr/bin/env node
// The `ondine` command: one file per verb under commands/; this file only wires them and
// turns typed errors into a message and an exit code.
import { Command } from 'commander';
import { OndineError } from '../errors.js';
import { register as registerBuild } from './commands/build.js';
import { register as registerInspect } from './commands/inspect.js';
import { register as registerUnpack } from './commands/unpack.js';
import { register as registerDaemon } from './commands/daemon.js';
import { register as registerMount } from './commands/mount.js';
import { register as registerUmount } from './commands/umount.js';
import { register as registerStatus } from './commands/status.js';
import { register as registerStop } from './commands/stop.js';
import { register as registerProbe } from './commands/probe.js';
import { register as registerConvert } from './commands/convert.js';
import { register as registerPush } from './commands/push.js';
import { register as registerSnapshotter } from './commands/snapshotter.js';
import { NativeError } from '../native/index.js';

const program = new Command();
program.name('ondine').description('on-demand container images for in-kernel EROFS').version('0.1.0');
for (const register of [registerBuild, registerInspect, registerUnpack, registerDaemon, registerMount, registerUmount, registerStatus, registerStop, registerProbe, registerConvert, registerPush, registerSnapshotter]) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
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
