// The fanotify front end as one service: the group (made here, or held by the native
// supervisor and shared with this worker), the mounts, the front end, who reads the group,
// and the take-over when the supervisor dies. The daemon starts, lists and stops it.
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { closeFd } from '../../native/index.js';
import type { CacheFileIo } from '../../storage/cache-file.js';
import { FanotifyFrontend } from './frontend.js';
import { openFanotifyGroup } from './group.js';
import { GroupReader } from './group-reader.js';
import { FanotifyMounts, type BlobProvider } from './mounts.js';
import { AccessReply } from './replies.js';
import type { SupervisorLink } from './supervisor-link.js';

export interface FanotifyServiceOptions {
  cacheDir: string;
  socketPath: string;
  concurrency: number;
  readTimeoutMs: number;
  /** The worker generation under the supervisor (0: the first). */
  generation: number;
  log: Logger;
}

export class FanotifyService {
  readonly group: number;
  readonly mounts: FanotifyMounts;
  readonly frontend: FanotifyFrontend;
  private reader: GroupReader | undefined;
  /** Events the supervisor handed over and this worker has not answered: id → its fd number there. */
  private readonly handedOver = new Map<number, number>();
  private stopping = false;
  /** Set once the supervisor is gone and this process reads the group itself. */
  failure: string | undefined;

  constructor(blobs: BlobProvider, files: CacheFileIo, private readonly opts: FanotifyServiceOptions, private readonly link?: SupervisorLink) {
    this.group = link?.groupFd ?? openFanotifyGroup();
    const statePath = join(dirname(opts.socketPath), 'fanotify-state.json');
    this.mounts = new FanotifyMounts(blobs, opts.cacheDir, this.group, statePath, opts.log);
    this.frontend = new FanotifyFrontend(files, this.mounts, (fd) => closeFd(fd), {
      concurrency: opts.concurrency, fillTimeoutMs: opts.readTimeoutMs, log: opts.log,
    });
  }

  async start(): Promise<void> {
    // A restarted worker serves what its predecessor mounted; a fresh daemon starts empty.
    if (this.link && this.opts.generation > 0) await this.mounts.restore();
    if (this.link) {
      const link = this.link;
      link.start((ev) => {
        this.handedOver.set(ev.id, ev.groupFd);
        const reply = new AccessReply((err) => {
          this.handedOver.delete(ev.id);
          link.answer(ev.id, err);
        }, `event ${ev.id}`);
        this.frontend.handle({ offset: ev.offset, count: ev.count, dev: ev.dev, ino: ev.ino, fd: ev.fd }, reply);
      }, () => this.takeOver(), (err) => this.opts.log.error({ err }, 'malformed message from the supervisor'),
      (h) => this.frontend.hint(h));
    } else {
      this.reader = new GroupReader(this.group, this.frontend, this.opts.log);
      this.reader.start();
    }
  }

  /**
   * The supervisor is gone: this process holds the only other copy of the group, so it reads
   * the group itself from now on rather than let the group close (which would allow every
   * pending event: zeros). Events the supervisor had handed over are answered by the front
   * end through the link, which is closed: they are denied by their supervisor fd number
   * first, so no number of ours can ever collide with one of theirs.
   */
  private takeOver(): void {
    if (this.stopping) return;
    this.opts.log.error('the supervisor is gone: reading the fanotify group directly');
    this.failure = 'supervisor lost; worker serving the group directly';
    this.reader = new GroupReader(this.group, this.frontend, this.opts.log);
    for (const n of this.handedOver.values()) this.reader.respond(n, 5);
    this.handedOver.clear();
    this.reader.start();
  }

  /** Whether the supervisor still holds the group with this worker. */
  get supervised(): boolean {
    return this.link !== undefined && !this.reader;
  }

  /** What keeps this front end from serving, if anything. */
  get problems(): string[] {
    return [
      ...(this.failure ? [this.failure] : []),
      ...(this.reader?.failure ? [`fanotify: ${this.reader.failure.message}`] : []),
    ];
  }

  async stats(): Promise<unknown> {
    const supervisor = this.link ? await this.link.stats().catch(() => undefined) : undefined;
    return { ...this.frontend.stats, allowedAtOnce: this.reader?.allowedAtOnce ?? 0, supervisor };
  }

  /**
   * The mounts are unmounted (detached) first, because once the group closes the kernel
   * would let their unfilled ranges read as zeros; then queued work finishes (for `graceMs`).
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await this.mounts.umountAll();
    // Fills still waiting on a source after the grace are left to the supervisor, which denies
    // what is pending with EIO when this worker exits.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.frontend.idle(), new Promise((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    this.reader?.close();
    this.link?.close();
    this.mounts.close();
    if (!this.link) closeFd(this.group);
  }
}
