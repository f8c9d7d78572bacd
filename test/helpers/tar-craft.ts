// Hand-built tar archives for tests: headers with any name, type, link or checksum (including
// the malicious and broken ones no well-behaved tar tool would write), pax records, and whole
// archives. Also small wrappers around the system GNU tar for the well-formed cases.
import { execFileSync } from 'node:child_process';

export interface CraftEntry {
  name: string | Buffer;
  /** Typeflag character, default '0'. */
  type?: string;
  data?: Buffer | string;
  /** Overrides the header's size field (default: data length). */
  size?: number;
  linkname?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** 'ustar' (default), 'gnu' or 'v7' magic. */
  format?: 'ustar' | 'gnu' | 'v7';
  /** Added to the correct checksum: non-zero makes it wrong. */
  checksumDelta?: number;
  /** Per-entry pax records, emitted as an 'x' header before this entry. */
  pax?: Array<[string, string | Buffer]>;
}

export function octalField(value: number, width: number): Buffer {
  const text = value.toString(8).padStart(width - 1, '0');
  if (text.length > width - 1) throw new RangeError(`${value} does not fit in ${width} octal bytes`);
  return Buffer.from(`${text}\0`, 'latin1');
}

/** GNU base-256 encoding (two's complement, top bit of the first byte set). */
export function base256Field(value: bigint, width: number): Buffer {
  const out = Buffer.alloc(width);
  let v = value < 0n ? (1n << BigInt(8 * width)) + value : value;
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[0] = value < 0n ? 0xff : out[0]! | 0x80;
  return out;
}

export function header(e: CraftEntry): Buffer {
  const h = Buffer.alloc(512);
  const name = typeof e.name === 'string' ? Buffer.from(e.name) : e.name;
  if (name.length > 100) throw new RangeError('name longer than 100 bytes: use pax or a long-name entry');
  name.copy(h, 0);
  octalField(e.mode ?? 0o644, 8).copy(h, 100);
  octalField(e.uid ?? 0, 8).copy(h, 108);
  octalField(e.gid ?? 0, 8).copy(h, 116);
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  octalField(e.size ?? data.length, 12).copy(h, 124);
  octalField(e.mtime ?? 1_700_000_000, 12).copy(h, 136);
  h.write(e.type ?? '0', 156, 'latin1');
  if (e.linkname !== undefined) (typeof e.linkname === 'string' ? Buffer.from(e.linkname) : e.linkname).copy(h, 157);
  const format = e.format ?? 'ustar';
  if (format === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  if (format === 'gnu') h.write('ustar  \x00', 257, 'latin1');
  if (format !== 'v7') {
    octalField(e.devmajor ?? 0, 8).copy(h, 329);
    octalField(e.devminor ?? 0, 8).copy(h, 337);
  }
  setChecksum(h, e.checksumDelta ?? 0);
  return h;
}

export function setChecksum(h: Buffer, delta = 0): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  Buffer.from(`${(sum + delta).toString(8).padStart(6, '0')}\0 `, 'latin1').copy(h, 148);
}

export function paxRecords(records: Array<[string, string | Buffer]>): Buffer {
  return Buffer.concat(
    records.map(([k, v]) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len++;
      return Buffer.concat([Buffer.from(String(len)), body]);
    }),
  );
}

function padded(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** Header + padded data of one entry (and its pax header, if any), no end marker. */
export function entryBytes(e: CraftEntry): Buffer {
  const parts: Buffer[] = [];
  if (e.pax) {
    const records = paxRecords(e.pax);
    parts.push(header({ name: 'PaxHeaders/x', type: 'x', data: records }), padded(records));
  }
  const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
  parts.push(header(e), padded(data));
  return Buffer.concat(parts);
}

export function tarball(entries: CraftEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts = entries.map(entryBytes);
  if (opts.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Runs the system GNU tar (1.34) in `cwd`. */
export function gnuTar(cwd: string, args: string[]): void {
  execFileSync('tar', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}
