// Pure parsers for /dev/cachefiles on-demand messages (include/uapi/linux/cachefiles.h).
// Every failure names the field and offset: a malformed message is a kernel/daemon mismatch
// worth a precise log line, never a crash.
import { CorruptError } from '../../errors.js';
import { checkName } from '../../format/identifiers.js';

export const HEADER_SIZE = 16;
export const OPEN_FIXED_SIZE = 32;
export const READ_SIZE = 32;
/** The kernel refuses reads with buffers shorter than this (EMSGSIZE). */
export const MIN_READ_BUFFER = 1024;
export const CACHEFILES_IOC_READ_COMPLETE = 0x40049801;

export enum Opcode {
  Open = 0,
  Close = 1,
  Read = 2,
}

interface Base {
  msgId: number;
  objectId: number;
}
export interface OpenMessage extends Base {
  opcode: Opcode.Open;
  /** e.g. "erofs,<fsid>" or "erofs,<domain_id>" (trailing NUL removed). */
  volumeKey: string;
  /** The fsid (bootstrap) or a device tag / device= option (data blob). */
  cookieKey: string;
  fd: number;
  flags: number;
}
export interface CloseMessage extends Base {
  opcode: Opcode.Close;
}
export interface ReadMessage extends Base {
  opcode: Opcode.Read;
  offset: number;
  length: number;
}
export type Message = OpenMessage | CloseMessage | ReadMessage;

const S = 'cachefiles message';

function keyString(buf: Uint8Array): string {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  return Buffer.from(buf.buffer, buf.byteOffset, end).toString('latin1');
}

/** The 16 bytes every message starts with; `opcode` is not checked here. */
export interface MessageHeader {
  msgId: number;
  opcode: number;
  /** What the header says the whole message measures. */
  len: number;
  objectId: number;
}

/**
 * A message whose header could be read but whose body could not. It still needs its answer
 * (an OPEN its copen, a READ its READ_COMPLETE), and an OPEN's anonymous fd, when the field
 * holding it was read, still has to be closed.
 */
export interface MalformedMessage {
  malformed: true;
  header: MessageHeader;
  error: CorruptError;
  /** The OPEN's anonymous fd, when the message reached its field (offset 24). */
  fd?: number;
}

const OPEN_FD_OFFSET = 24;

/** Reads the header; throws CorruptError only when fewer than 16 bytes were read. */
export function parseHeader(buf: Uint8Array, length = buf.length): MessageHeader {
  if (length < HEADER_SIZE || length > buf.length) throw new CorruptError(S, 0, `${length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  return { msgId: dv.getUint32(0, true), opcode: dv.getUint32(4, true), len: dv.getUint32(8, true), objectId: dv.getUint32(12, true) };
}

/** Decodes the rest of a message whose header `h` came from the same bytes. */
export function parseBody(h: MessageHeader, buf: Uint8Array, length = buf.length): Message {
  const dv = new DataView(buf.buffer, buf.byteOffset, length);
  const { msgId, objectId, len } = h;
  if (len !== length) throw new CorruptError(S, 8, `header says ${len} bytes, read returned ${length}`);
  switch (h.opcode) {
    case Opcode.Open: {
      if (len < OPEN_FIXED_SIZE) throw new CorruptError(S, 8, `OPEN of ${len} bytes is shorter than ${OPEN_FIXED_SIZE}`);
      const volSize = dv.getUint32(16, true);
      const cookieSize = dv.getUint32(20, true);
      if (OPEN_FIXED_SIZE + volSize + cookieSize > len) {
        throw new CorruptError(S, 16, `OPEN keys (${volSize}+${cookieSize} bytes) overflow the ${len}-byte message`);
      }
      const volumeKey = keyString(buf.subarray(OPEN_FIXED_SIZE, OPEN_FIXED_SIZE + volSize));
      const cookieKey = keyString(buf.subarray(OPEN_FIXED_SIZE + volSize, OPEN_FIXED_SIZE + volSize + cookieSize));
      return { opcode: Opcode.Open, msgId, objectId, volumeKey, cookieKey, fd: dv.getUint32(OPEN_FD_OFFSET, true), flags: dv.getUint32(28, true) };
    }
    case Opcode.Close:
      return { opcode: Opcode.Close, msgId, objectId };
    case Opcode.Read: {
      if (len < READ_SIZE) throw new CorruptError(S, 8, `READ of ${len} bytes is shorter than ${READ_SIZE}`);
      const off = dv.getBigUint64(16, true);
      const rlen = dv.getBigUint64(24, true);
      if (off > BigInt(Number.MAX_SAFE_INTEGER) || rlen > 1n << 40n) throw new CorruptError(S, 16, `READ range ${off}+${rlen} out of range`);
      return { opcode: Opcode.Read, msgId, objectId, offset: Number(off), length: Number(rlen) };
    }
    default:
      throw new CorruptError(S, 4, `unknown opcode ${h.opcode}`);
  }
}

/** Header and body; any defect throws CorruptError. */
export function parseMessage(buf: Uint8Array, length = buf.length): Message {
  return parseBody(parseHeader(buf, length), buf, length);
}

/**
 * What the device loop hands on: the message, or, when only its body is bad, what is known
 * of it. Throws CorruptError only when not even the header could be read.
 */
export function readMessage(buf: Uint8Array, length = buf.length): Message | MalformedMessage {
  const header = parseHeader(buf, length);
  try {
    return parseBody(header, buf, length);
  } catch (err) {
    if (!(err instanceof CorruptError)) throw err;
    const m: MalformedMessage = { malformed: true, header, error: err };
    if (header.opcode === Opcode.Open && length >= OPEN_FD_OFFSET + 4) {
      const fd = new DataView(buf.buffer, buf.byteOffset, length).getUint32(OPEN_FD_OFFSET, true);
      if (fd <= 0x7fffffff) m.fd = fd;
    }
    return m;
  }
}

export function isMalformed(m: Message | MalformedMessage): m is MalformedMessage {
  return 'malformed' in m;
}

/** Encodes a message the way the kernel would (for unit tests of the handlers). */
export function encodeMessage(m: Message): Buffer {
  if (m.opcode === Opcode.Open) {
    const vol = Buffer.from(m.volumeKey + '\0', 'latin1');
    const cookie = Buffer.from(m.cookieKey, 'latin1');
    const b = Buffer.alloc(OPEN_FIXED_SIZE + vol.length + cookie.length);
    b.writeUInt32LE(m.msgId, 0); b.writeUInt32LE(m.opcode, 4); b.writeUInt32LE(b.length, 8); b.writeUInt32LE(m.objectId, 12);
    b.writeUInt32LE(vol.length, 16); b.writeUInt32LE(cookie.length, 20); b.writeUInt32LE(m.fd, 24); b.writeUInt32LE(m.flags, 28);
    vol.copy(b, OPEN_FIXED_SIZE); cookie.copy(b, OPEN_FIXED_SIZE + vol.length);
    return b;
  }
  const b = Buffer.alloc(m.opcode === Opcode.Read ? READ_SIZE : HEADER_SIZE);
  b.writeUInt32LE(m.msgId, 0); b.writeUInt32LE(m.opcode, 4); b.writeUInt32LE(b.length, 8); b.writeUInt32LE(m.objectId, 12);
  if (m.opcode === Opcode.Read) { b.writeBigUInt64LE(BigInt(m.offset), 16); b.writeBigUInt64LE(BigInt(m.length), 24); }
  return b;
}

/** "erofs,<name>" → name (the fsid, or the domain when domain_id= was given). */
/**
 * Refuses an OPEN whose keys are outside the name grammar (an EROFS volume's name, the
 * cookie key): they name images and blobs, and a hostile image's tag would arrive here.
 */
export function checkOpenKeys(m: Pick<OpenMessage, 'volumeKey' | 'cookieKey'>): void {
  const volume = volumeName(m.volumeKey);
  if (volume !== undefined) checkName(volume, 'cachefiles OPEN volume key (the domain or fsid)');
  checkName(m.cookieKey, 'cachefiles OPEN cookie key (the fsid or device tag)');
}

export function volumeName(volumeKey: string): string | undefined {
  return volumeKey.startsWith('erofs,') ? volumeKey.slice('erofs,'.length) : undefined;
}
