// Encode/decode of the link between ondine-supervisor and its worker: one message per
// SEQPACKET datagram, little endian, mirrored by native/supervisor/wire.h. Pure: the fd an
// EVENT carries travels beside the bytes (SCM_RIGHTS) and is not seen here.
import { CorruptError, InvalidArgumentError } from '../../errors.js';

export enum LinkType {
  /** S->W: a range to fill, with the event's fd attached. */
  Event = 1,
  /** W->S: the verdict for an EVENT id (err 0 allows, anything else denies with EIO). */
  Answer = 2,
  /** W->S: the worker has restored its catalog and serves. */
  Ready = 3,
  /** W->S: asks for a STATS message. */
  StatsRequest = 4,
  /** S->W: the supervisor's counters. */
  Stats = 5,
  /**
   * S->W, with the event's fd attached: a read the supervisor allowed on its own that
   * continues a stream whose read-ahead should move (native/supervisor/hints.h). Never answered.
   */
  Hint = 6,
}

export const LINK_EVENT_SIZE = 48;
export const LINK_ANSWER_SIZE = 16;
export const LINK_READY_SIZE = 8;
export const LINK_STATS_REQUEST_SIZE = 8;
export const LINK_STATS_SIZE = 72;
export const LINK_HINT_SIZE = 40;
/** A receive buffer that holds any link message. */
export const LINK_MAX_SIZE = LINK_STATS_SIZE;

const SIZES: Record<LinkType, number> = {
  [LinkType.Event]: LINK_EVENT_SIZE,
  [LinkType.Answer]: LINK_ANSWER_SIZE,
  [LinkType.Ready]: LINK_READY_SIZE,
  [LinkType.StatsRequest]: LINK_STATS_REQUEST_SIZE,
  [LinkType.Stats]: LINK_STATS_SIZE,
  [LinkType.Hint]: LINK_HINT_SIZE,
};

export interface SupervisorStats {
  /** Every event read from the group. */
  events: number;
  /** Allowed by the supervisor alone: range already in the cache file (rechecks included). */
  allowedAtOnce: number;
  /** Events that needed a worker (counted once, however often re-sent). */
  forwarded: number;
  /** ANSWERs that matched a pending event. */
  answered: number;
  deniedByDeadline: number;
  /** ANSWERs for unknown or already answered ids (ignored). */
  lateAnswers: number;
  workerRestarts: number;
  /** Events waiting for an answer now. */
  pending: number;
}

const STATS_FIELDS = [
  'events',
  'allowedAtOnce',
  'forwarded',
  'answered',
  'deniedByDeadline',
  'lateAnswers',
  'workerRestarts',
  'pending',
] as const satisfies readonly (keyof SupervisorStats)[];

export interface LinkEvent {
  type: LinkType.Event;
  id: number;
  /** The range to fill, already clipped to the cache file's size. */
  offset: number;
  count: number;
  /** st_dev and st_ino of the cache file. */
  dev: bigint;
  ino: bigint;
  /** The event fd's number in the supervisor (for logs; the worker uses its own copy). */
  groupFd: number;
  /** The reading process. */
  pid: number;
}
export interface LinkAnswer {
  type: LinkType.Answer;
  id: number;
  err: number;
}
export interface LinkReady {
  type: LinkType.Ready;
}
export interface LinkStatsRequest {
  type: LinkType.StatsRequest;
}
export interface LinkStats {
  type: LinkType.Stats;
  stats: SupervisorStats;
}
export interface LinkHint {
  type: LinkType.Hint;
  /** The read, already allowed. */
  offset: number;
  count: number;
  dev: bigint;
  ino: bigint;
}
export type LinkMessage = LinkEvent | LinkAnswer | LinkReady | LinkStatsRequest | LinkStats | LinkHint;

const S = 'supervisor link message';
const U64_MAX = 0xffffffffffffffffn;

function u32(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new InvalidArgumentError(`${name} must be a u32, got ${value}`);
  }
  return value;
}

function i32(value: number, name: string): number {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
    throw new InvalidArgumentError(`${name} must be an i32, got ${value}`);
  }
  return value;
}

function u64(value: number | bigint, name: string): bigint {
  const ok = typeof value === 'bigint' ? value >= 0n && value <= U64_MAX
    : Number.isSafeInteger(value) && value >= 0;
  if (!ok) throw new InvalidArgumentError(`${name} must be a u64, got ${value}`);
  return BigInt(value);
}

export function encodeLinkMessage(m: LinkMessage): Buffer {
  const buf = Buffer.alloc(SIZES[m.type]);
  buf.writeUInt32LE(m.type, 0);
  switch (m.type) {
    case LinkType.Event:
      buf.writeUInt32LE(u32(m.id, 'id'), 4);
      buf.writeBigUInt64LE(u64(m.offset, 'offset'), 8);
      buf.writeBigUInt64LE(u64(m.count, 'count'), 16);
      buf.writeBigUInt64LE(u64(m.dev, 'dev'), 24);
      buf.writeBigUInt64LE(u64(m.ino, 'ino'), 32);
      buf.writeInt32LE(i32(m.groupFd, 'groupFd'), 40);
      buf.writeUInt32LE(u32(m.pid, 'pid'), 44);
      break;
    case LinkType.Answer:
      buf.writeUInt32LE(u32(m.id, 'id'), 4);
      buf.writeInt32LE(i32(m.err, 'err'), 8);
      break;
    case LinkType.Ready:
    case LinkType.StatsRequest:
      break;
    case LinkType.Stats:
      STATS_FIELDS.forEach((field, i) => {
        buf.writeBigUInt64LE(u64(m.stats[field], field), 8 + 8 * i);
      });
      break;
    case LinkType.Hint:
      buf.writeBigUInt64LE(u64(m.offset, 'offset'), 8);
      buf.writeBigUInt64LE(u64(m.count, 'count'), 16);
      buf.writeBigUInt64LE(u64(m.dev, 'dev'), 24);
      buf.writeBigUInt64LE(u64(m.ino, 'ino'), 32);
      break;
  }
  return buf;
}

function safeNumber(dv: DataView, offset: number, field: string): number {
  const v = dv.getBigUint64(offset, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptError(S, offset, `${field} ${v} is out of range`);
  return Number(v);
}

/** One datagram of `length` bytes (default: all of `buf`). */
export function decodeLinkMessage(buf: Uint8Array, length = buf.length): LinkMessage {
  if (length < 4 || length > buf.length) {
    throw new CorruptError(S, 0, `${length} bytes is too short for a message type`);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  const type = dv.getUint32(0, true) as LinkType;
  const size = SIZES[type];
  if (size === undefined) throw new CorruptError(S, 0, `unknown message type ${type}`);
  if (length !== size) {
    throw new CorruptError(S, Math.min(length, size), `${LinkType[type]} must be ${size} bytes, got ${length}`);
  }
  switch (type) {
    case LinkType.Event:
      return {
        type,
        id: dv.getUint32(4, true),
        offset: safeNumber(dv, 8, 'offset'),
        count: safeNumber(dv, 16, 'count'),
        dev: dv.getBigUint64(24, true),
        ino: dv.getBigUint64(32, true),
        groupFd: dv.getInt32(40, true),
        pid: dv.getUint32(44, true),
      };
    case LinkType.Answer:
      return { type, id: dv.getUint32(4, true), err: dv.getInt32(8, true) };
    case LinkType.Ready:
    case LinkType.StatsRequest:
      return { type };
    case LinkType.Stats: {
      const stats = {} as SupervisorStats;
      STATS_FIELDS.forEach((field, i) => {
        stats[field] = safeNumber(dv, 8 + 8 * i, field);
      });
      return { type, stats };
    }
    case LinkType.Hint:
      return {
        type,
        offset: safeNumber(dv, 8, 'offset'),
        count: safeNumber(dv, 16, 'count'),
        dev: dv.getBigUint64(24, true),
        ino: dv.getBigUint64(32, true),
      };
  }
}
