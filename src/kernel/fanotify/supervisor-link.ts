// The worker's end of the link to ondine-supervisor: receives EVENTs (a range to fill and the
// fd to fill it through) and HINTs (a read allowed without the worker, with an fd to write
// read-ahead through), sends ANSWER/READY/STATS_REQUEST. I/O only; the bytes are
// link-wire's. The supervisor writes every fanotify response itself, so nothing here
// touches the group beyond handing out its fd number for marks. Never read events from that
// fd: they belong to the supervisor.
import { InvalidArgumentError } from '../../errors.js';
import { FdPoller, NativeError, closeFd, recvMessage, sendMessage, setCloexec } from '../../native/index.js';
import {
  LINK_MAX_SIZE,
  LinkType,
  decodeLinkMessage,
  encodeLinkMessage,
  type LinkMessage,
  type SupervisorStats,
} from './link-wire.js';

export type { SupervisorStats } from './link-wire.js';

/** A range the worker must fill through `fd` (then close it) and answer by `id`. */
export interface SupervisorEvent {
  id: number;
  offset: number;
  count: number;
  dev: bigint;
  ino: bigint;
  /** The worker's own copy of the event fd (close-on-exec); writes through it raise no event. */
  fd: number;
  /** The event fd's number in the supervisor, for logs. */
  groupFd: number;
  pid: number;
}

/** A read the supervisor allowed on its own; `fd` (the worker's copy) is the receiver's to close. */
export interface SupervisorHint {
  offset: number;
  count: number;
  dev: bigint;
  ino: bigint;
  fd: number;
}

// Retry pace for datagrams the socket could not take; the supervisor drains its end on every
// loop turn, so this only matters under a burst.
const RETRY_MS = 2;

function envFd(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const fd = Number(text);
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw new InvalidArgumentError(`${name} must be a file descriptor number, got ${JSON.stringify(text)}`);
  }
  return fd;
}

export class SupervisorLink {
  readonly linkFd: number;
  readonly generation: number;
  readonly #groupFd: number | undefined;
  readonly #buf = Buffer.alloc(LINK_MAX_SIZE + 64); // room to tell a too-long datagram (EMSGSIZE)
  readonly #outbox: Buffer[] = [];
  readonly #statsWaiters: { resolve: (s: SupervisorStats) => void; reject: (e: Error) => void }[] = [];
  #poller: FdPoller | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #onClosed: ((error?: Error) => void) | undefined;

  constructor(linkFd: number, groupFd?: number, generation = 0) {
    this.linkFd = linkFd;
    this.#groupFd = groupFd;
    this.generation = generation;
  }

  /**
   * The link ondine-supervisor set up for this process; undefined when not run by one.
   * With `adopt` (default) both inherited fds become close-on-exec, so a child of the worker
   * can neither keep the group alive nor hold the link open after the worker dies.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, adopt = true): SupervisorLink | undefined {
    const linkFd = envFd(env, 'ONDINE_SUPERVISOR_FD');
    if (linkFd === undefined) return undefined;
    const groupFd = envFd(env, 'ONDINE_FANOTIFY_FD');
    const generation = Number(env.ONDINE_WORKER_GENERATION ?? '0');
    if (!Number.isInteger(generation) || generation < 0) {
      throw new InvalidArgumentError(`ONDINE_WORKER_GENERATION must be a count, got ${env.ONDINE_WORKER_GENERATION}`);
    }
    if (adopt) {
      setCloexec(linkFd);
      if (groupFd !== undefined) setCloexec(groupFd);
    }
    return new SupervisorLink(linkFd, groupFd, generation);
  }

  /** The fanotify group (shared with the supervisor), for fanotify_mark only. */
  get groupFd(): number {
    if (this.#groupFd === undefined) {
      throw new InvalidArgumentError('ONDINE_FANOTIFY_FD is not set: the supervisor passed no fanotify group');
    }
    return this.#groupFd;
  }

  /**
   * Starts receiving. `onEvent` owns the event's fd (close it after the fill) and must lead
   * to exactly one answer(). `onClosed` runs once when the supervisor goes away (or the
   * link fails); `onProtocolError` hears of datagrams that did not decode (skipped: the
   * supervisor's deadline answers any event lost that way). `onHint` owns the hint's fd;
   * without it hints are closed unread.
   */
  start(
    onEvent: (event: SupervisorEvent) => void,
    onClosed: (error?: Error) => void,
    onProtocolError: (error: Error) => void = () => {},
    onHint?: (hint: SupervisorHint) => void,
  ): void {
    if (this.#poller !== undefined || this.#closed) throw new InvalidArgumentError('SupervisorLink already started or closed');
    this.#onClosed = onClosed;
    this.#poller = new FdPoller(this.linkFd, (pollError) => {
      if (pollError !== undefined) {
        this.#shut(pollError);
        return;
      }
      this.#drain(onEvent, onProtocolError, onHint);
    });
  }

  #drain(onEvent: (event: SupervisorEvent) => void, onProtocolError: (error: Error) => void, onHint?: (hint: SupervisorHint) => void): void {
    while (!this.#closed) {
      let got: { length: number; fd: number };
      try {
        got = recvMessage(this.linkFd, this.#buf);
      } catch (err) {
        if (err instanceof NativeError && (err.code === 'EMSGSIZE' || err.code === 'EPROTO')) {
          onProtocolError(err);
          continue;
        }
        this.#shut(err instanceof NativeError && err.code === 'ECONNRESET' ? undefined : (err as Error));
        return;
      }
      if (got.length < 0) return;
      let message: LinkMessage;
      try {
        message = decodeLinkMessage(this.#buf, got.length);
      } catch (err) {
        if (got.fd >= 0) closeFd(got.fd);
        onProtocolError(err as Error);
        continue;
      }
      if (message.type === LinkType.Event) {
        if (got.fd < 0) {
          onProtocolError(new InvalidArgumentError(`EVENT ${message.id} arrived without its fd`));
          continue;
        }
        const { id, offset, count, dev, ino, groupFd, pid } = message;
        onEvent({ id, offset, count, dev, ino, fd: got.fd, groupFd, pid });
        continue;
      }
      if (message.type === LinkType.Hint) {
        if (got.fd < 0) {
          onProtocolError(new InvalidArgumentError('HINT arrived without its fd'));
          continue;
        }
        const { offset, count, dev, ino } = message;
        if (onHint) onHint({ offset, count, dev, ino, fd: got.fd });
        else closeFd(got.fd);
        continue;
      }
      if (got.fd >= 0) closeFd(got.fd);
      if (message.type === LinkType.Stats) {
        this.#statsWaiters.shift()?.resolve(message.stats);
      } else {
        onProtocolError(new InvalidArgumentError(`unexpected ${LinkType[message.type]} from the supervisor`));
      }
    }
  }

  /** The verdict for event `id`: 0 allows the read, any errno denies it (the reader sees EIO). */
  answer(id: number, err = 0): void {
    this.#send(encodeLinkMessage({ type: LinkType.Answer, id, err }));
  }

  /** Tells the supervisor this worker serves (the first generation's start-up succeeded). */
  ready(): void {
    this.#send(encodeLinkMessage({ type: LinkType.Ready }));
  }

  stats(): Promise<SupervisorStats> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new NativeError('ECONNRESET: the supervisor link is closed', 'ECONNRESET', 104, 'recvmsg'));
        return;
      }
      this.#statsWaiters.push({ resolve, reject });
      this.#send(encodeLinkMessage({ type: LinkType.StatsRequest }));
    });
  }

  #send(message: Buffer): void {
    if (this.#closed) return; // the supervisor is gone: it answers (or denies) on its own
    this.#outbox.push(message);
    this.#flush();
  }

  #flush(): void {
    this.#retry = undefined;
    while (this.#outbox.length > 0 && !this.#closed) {
      let sent: boolean;
      try {
        sent = sendMessage(this.linkFd, this.#outbox[0]!);
      } catch (err) {
        this.#shut(err as Error);
        return;
      }
      if (!sent) {
        this.#retry ??= setTimeout(() => this.#flush(), RETRY_MS);
        return;
      }
      this.#outbox.shift();
    }
  }

  #shut(error?: Error): void {
    if (this.#closed) return;
    this.close();
    this.#onClosed?.(error);
  }

  /** Stops receiving and closes the link (not the group fd). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller?.close();
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#outbox.length = 0;
    closeFd(this.linkFd);
    const closed = new NativeError('ECONNRESET: the supervisor link is closed', 'ECONNRESET', 104, 'recvmsg');
    for (const waiter of this.#statsWaiters.splice(0)) waiter.reject(closed);
  }
}
