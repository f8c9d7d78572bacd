// Replies that go out exactly once on every path, thrown errors included: an OPEN that is
// never answered hangs the mount, a READ never completed hangs its reader forever.
import type { KernelIo } from './kernel-io.js';

export class OpenReply {
  private sent = false;
  constructor(private readonly io: KernelIo, readonly msgId: number) {}

  get done(): boolean {
    return this.sent;
  }

  accept(size: number): void {
    this.send(`copen ${this.msgId},${size}`);
  }

  /** Fails the open; the mount sees -errno (ENOENT for an unknown blob). */
  reject(errno: number): void {
    this.send(`copen ${this.msgId},-${Math.abs(errno)}`);
  }

  private send(cmd: string): void {
    if (this.sent) return;
    this.sent = true;
    this.io.command(cmd);
  }
}

export class ReadReply {
  private sent = false;
  constructor(private readonly io: KernelIo, readonly anonFd: number, readonly msgId: number) {}

  get done(): boolean {
    return this.sent;
  }

  /** Always called; if the range was not filled the kernel finds the hole and returns EIO. */
  complete(): void {
    if (this.sent) return;
    this.sent = true;
    this.io.readComplete(this.anonFd, this.msgId);
  }
}
