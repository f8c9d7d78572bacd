// The 4096-byte chunk-info header that ends a blob's meta section: where the chunk-info array
// is and how it is stored. Magic at both ends so a torn or misplaced read is detected.
import { CorruptError } from '../errors.js';
import { need, view, u64, setU64 } from './bytes.js';
import { BLOB_META_HEADER_SIZE, BLOB_META_MAGIC } from './constants.js';

const S = 'blob chunk-info header';

export interface BlobMetaHeader {
  features: number;
  ciCompressor: number;
  ciEntries: number;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
}

export function encodeBlobMetaHeader(h: BlobMetaHeader): Buffer {
  const b = Buffer.alloc(BLOB_META_HEADER_SIZE);
  const dv = view(b);
  dv.setUint32(0, BLOB_META_MAGIC, true);
  dv.setUint32(4, h.features, true);
  dv.setUint32(8, h.ciCompressor, true);
  dv.setUint32(12, h.ciEntries, true);
  setU64(dv, 16, h.ciOffset);
  setU64(dv, 24, h.ciCompressedSize);
  setU64(dv, 32, h.ciUncompressedSize);
  dv.setUint32(BLOB_META_HEADER_SIZE - 4, BLOB_META_MAGIC, true);
  return b;
}

export function decodeBlobMetaHeader(buf: Uint8Array, at = 0, base = 0): BlobMetaHeader {
  need(buf, at, BLOB_META_HEADER_SIZE, S, base);
  const dv = view(buf.subarray(at, at + BLOB_META_HEADER_SIZE));
  const m1 = dv.getUint32(0, true);
  const m2 = dv.getUint32(BLOB_META_HEADER_SIZE - 4, true);
  if (m1 !== BLOB_META_MAGIC || m2 !== BLOB_META_MAGIC) {
    throw new CorruptError(S, base + at, `bad magic 0x${m1.toString(16)}/0x${m2.toString(16)} (want 0x${BLOB_META_MAGIC.toString(16)})`);
  }
  return {
    features: dv.getUint32(4, true),
    ciCompressor: dv.getUint32(8, true),
    ciEntries: dv.getUint32(12, true),
    ciOffset: u64(dv, 16, S, base + at),
    ciCompressedSize: u64(dv, 24, S, base + at),
    ciUncompressedSize: u64(dv, 32, S, base + at),
  };
}
