// Pure parser of what read(2) returns from a fanotify group: struct fanotify_event_metadata
// records (version 3) with their info records, of which only the range record
// (FAN_EVENT_INFO_TYPE_RANGE, pre-content events) matters here. Bad input is a
// CorruptError naming the offset, never a silent skip: an event we cannot parse is an event
// nobody answers.
import { CorruptError } from '../../errors.js';
import {
  FAN_EVENT_INFO_TYPE_RANGE,
  FAN_EVENT_METADATA_LEN,
  FANOTIFY_METADATA_VERSION,
} from '../../native/constants.js';

/** struct fanotify_event_info_header (type u8, pad u8, len u16). */
export const INFO_HEADER_LEN = 4;
/** struct fanotify_event_info_range: header, u32 pad, u64 offset, u64 count. */
export const INFO_RANGE_LEN = 24;

export interface FanotifyEvent {
  mask: bigint;
  /** The event's fd (FAN_NOFD -1 for events without one, e.g. FAN_Q_OVERFLOW). */
  fd: number;
  pid: number;
  /** The byte range a FAN_PRE_ACCESS event is about. */
  range?: { offset: number; count: number };
}

const S = 'fanotify event';

/** Every event in the first `length` bytes of `buf` (default: all of it). */
export function parseFanotifyEvents(buf: Uint8Array, length = buf.length): FanotifyEvent[] {
  if (!Number.isInteger(length) || length < 0 || length > buf.length) {
    throw new CorruptError(S, 0, `length ${length} outside the ${buf.length}-byte buffer`);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  const events: FanotifyEvent[] = [];
  for (let off = 0; off < length;) {
    if (length - off < FAN_EVENT_METADATA_LEN) {
      throw new CorruptError(S, off, `${length - off} bytes left, a metadata record is ${FAN_EVENT_METADATA_LEN}`);
    }
    const eventLen = dv.getUint32(off, true);
    const vers = dv.getUint8(off + 4);
    const metaLen = dv.getUint16(off + 6, true);
    if (vers !== FANOTIFY_METADATA_VERSION) {
      throw new CorruptError(S, off + 4, `metadata version ${vers}, expected ${FANOTIFY_METADATA_VERSION}`);
    }
    if (metaLen < FAN_EVENT_METADATA_LEN || metaLen > eventLen) {
      throw new CorruptError(S, off + 6, `metadata_len ${metaLen} outside [${FAN_EVENT_METADATA_LEN}, event_len ${eventLen}]`);
    }
    if (eventLen > length - off) {
      throw new CorruptError(S, off, `event_len ${eventLen} overruns the ${length - off} bytes left`);
    }
    const event: FanotifyEvent = {
      mask: dv.getBigUint64(off + 8, true),
      fd: dv.getInt32(off + 16, true),
      pid: dv.getInt32(off + 20, true),
    };
    for (let info = off + metaLen; info < off + eventLen;) {
      if (off + eventLen - info < INFO_HEADER_LEN) {
        throw new CorruptError(S, info, 'truncated info record header');
      }
      const type = dv.getUint8(info);
      const infoLen = dv.getUint16(info + 2, true);
      if (infoLen < INFO_HEADER_LEN || infoLen > off + eventLen - info) {
        throw new CorruptError(S, info + 2, `info record length ${infoLen} does not fit the event`);
      }
      if (type === FAN_EVENT_INFO_TYPE_RANGE) {
        if (infoLen < INFO_RANGE_LEN) {
          throw new CorruptError(S, info + 2, `range record of ${infoLen} bytes, expected ${INFO_RANGE_LEN}`);
        }
        event.range = { offset: safe(dv, info + 8, 'offset'), count: safe(dv, info + 16, 'count') };
      }
      info += infoLen;
    }
    events.push(event);
    off += eventLen;
  }
  return events;
}

function safe(dv: DataView, at: number, field: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptError(S, at, `range ${field} ${v} is out of range`);
  return Number(v);
}
