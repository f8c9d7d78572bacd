// The answer to one pre-content event, sent exactly once on every path, thrown errors
// included: an event never answered leaves its reader blocked (until the supervisor's
// deadline), and an answer sent twice could land on an unrelated event that reused the fd.
import { constants } from 'node:os';

/** Where an answer goes: the supervisor link (by id) or the group itself (by fd number). */
export type AnswerSink = (err: number) => void;

export class AccessReply {
  private sent = false;
  constructor(private readonly sink: AnswerSink, readonly label: string) {}

  get done(): boolean {
    return this.sent;
  }

  allow(): void {
    this.send(0);
  }

  /** The reader gets EIO whatever `errno` is (the kernel takes only a few); logs keep it. */
  deny(errno: number = constants.errno.EIO): void {
    this.send(errno || constants.errno.EIO);
  }

  private send(err: number): void {
    if (this.sent) return;
    this.sent = true;
    this.sink(err);
  }
}
