// Unit tests of the /dev/cachefiles loop with scripted syscalls: which read errors end the
// loop, that a dead loop says so (failure, onFailure), and what reaches the front end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachefilesDevice, CachefilesLoopError, type DeviceSyscalls } from '../../../src/kernel/cachefiles/device.js';
import { encodeMessage, isMalformed, Opcode, type MalformedMessage, type Message } from '../../../src/kernel/cachefiles/messages.js';
import { NativeError } from '../../../src/native/index.js';

type Step = Buffer | NativeError;

class ScriptedDevice implements DeviceSyscalls {
  writes: string[] = [];
  closed: number[] = [];
  pollers = 0;
  pollersClosed = 0;
  reads = 0;
  onReadable: ((error?: Error) => void) | undefined;
  constructor(private readonly script: Step[]) {}
  read(_fd: number, buf: Uint8Array): number {
    this.reads++;
    const step = this.script.shift();
    if (step === undefined) return 0;
    if (step instanceof NativeError) throw step;
    buf.set(step);
    return step.length;
  }
  write(_fd: number, command: string): void { this.writes.push(command); }
  close(fd: number): void { this.closed.push(fd); }
  poll(_fd: number, onReadable: (error?: Error) => void): { close(): void } {
    this.pollers++;
    this.onReadable = onReadable;
    return { close: () => { this.pollersClosed++; this.onReadable = undefined; } };
  }
}

const nativeError = (code: string, errno: number) => new NativeError(`${code}: test, read`, code, errno, 'read');
const closeMsg = (msgId: number) => encodeMessage({ opcode: Opcode.Close, msgId, objectId: 1 });

function started(script: Step[]) {
  const sys = new ScriptedDevice(script);
  const failures: Error[] = [];
  const seen: Array<Message | MalformedMessage> = [];
  const dev = CachefilesDevice.adopt(3, undefined, { syscalls: sys, onFailure: (e) => failures.push(e) });
  dev.start((m) => seen.push(m));
  return { sys, dev, failures, seen };
}

test('a poll error stops the loop and is reported once: failure and onFailure', () => {
  const { sys, dev, failures } = started([]);
  assert.deepEqual(sys.writes, ['restore']);
  assert.equal(dev.failure, undefined);
  sys.onReadable!(nativeError('EBADF', 9));
  const failure = dev.failure as CachefilesLoopError | undefined;
  assert.ok(failure instanceof CachefilesLoopError);
  assert.equal(failure.code, 'ONDINE_ERR_DEVICE');
  assert.equal(failure.errno, 9);
  assert.match(failure.message, /polling \/dev\/cachefiles failed/);
  assert.deepEqual(failures, [failure]);
  assert.equal(sys.pollersClosed, 1);
  dev.close();
  assert.deepEqual(sys.closed, [3]);
  assert.equal(failures.length, 1);
});

test('a read error that would repeat ends the loop; per-message errors do not', () => {
  const { sys, dev, failures, seen } = started([
    closeMsg(1),
    nativeError('EMFILE', 24), // an OPEN the kernel could not hand over: it failed that request
    closeMsg(2),
    nativeError('EIO', 5),
    closeMsg(3), // never read
  ]);
  assert.deepEqual(seen.map((m) => (isMalformed(m) ? -1 : m.msgId)), [1, 2]);
  assert.equal(dev.failure?.errno, 5);
  assert.match(dev.failure!.message, /reading \/dev\/cachefiles failed/);
  assert.equal(failures.length, 1);
  assert.equal(sys.pollersClosed, 1, 'no more polling: a level-triggered poll would spin on the error');
  assert.equal(sys.reads, 4);
  dev.close();
});

test('a message with a bad body reaches the front end as malformed; one without a header is dropped', () => {
  const badRead = encodeMessage({ opcode: Opcode.Read, msgId: 8, objectId: 2, offset: 0, length: 4096 });
  badRead.writeUInt32LE(64, 8);
  const { dev, failures, seen } = started([Buffer.alloc(10), badRead, closeMsg(9)]);
  assert.equal(seen.length, 2);
  const m = seen[0]!;
  assert.ok(isMalformed(m));
  assert.deepEqual(m.header, { msgId: 8, opcode: Opcode.Read, len: 64, objectId: 2 });
  assert.ok(!isMalformed(seen[1]!));
  assert.equal(dev.failure, undefined);
  assert.equal(failures.length, 0);
  dev.close();
});
