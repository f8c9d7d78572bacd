// RAFS v6 blob table entries (256 bytes): everything a reader needs to fetch a blob's chunk
// table with one range request, without reading the blob's tail first.
import { need, view, u64, setU64, readFixedString, writeFixedString, hex } from './bytes.js';

export const BLOB_TABLE_ENTRY_SIZE = 256;
const S = 'RAFS blob table entry';

export interface BlobTableEntry {
  blobId: string;
  blobIndex: number;
  chunkSize: number;
  chunkCount: number;
  compressor: number;
  digester: number;
  features: number;
  compressedSize: number;
  uncompressedSize: number;
  tocSize: number;
  ciCompressor: number;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  tocDigest: string;
  metaDigest: string;
  metaSize: number;
}

export function encodeBlobTableEntry(buf: Uint8Array, at: number, e: BlobTableEntry): void {
  const b = buf.subarray(at, at + BLOB_TABLE_ENTRY_SIZE);
  b.fill(0);
  const dv = view(b);
  writeFixedString(b, 0, 64, e.blobId, 'blob id');
  dv.setUint32(64, e.blobIndex, true);
  dv.setUint32(68, e.chunkSize, true);
  dv.setUint32(72, e.chunkCount, true);
  dv.setUint32(76, e.compressor, true);
  dv.setUint32(80, e.digester, true);
  dv.setUint32(84, e.features, true);
  setU64(dv, 88, e.compressedSize);
  setU64(dv, 96, e.uncompressedSize);
  dv.setUint32(104, e.tocSize, true);
  dv.setUint32(108, e.ciCompressor, true);
  setU64(dv, 112, e.ciOffset);
  setU64(dv, 120, e.ciCompressedSize);
  setU64(dv, 128, e.ciUncompressedSize);
  if (e.tocDigest) b.set(Buffer.from(e.tocDigest, 'hex').subarray(0, 32), 136);
  if (e.metaDigest) b.set(Buffer.from(e.metaDigest, 'hex').subarray(0, 32), 168);
  setU64(dv, 200, e.metaSize);
}

export function decodeBlobTableEntry(buf: Uint8Array, at: number): BlobTableEntry {
  need(buf, at, BLOB_TABLE_ENTRY_SIZE, S);
  const b = buf.subarray(at, at + BLOB_TABLE_ENTRY_SIZE);
  const dv = view(b);
  return {
    blobId: readFixedString(b, 0, 64),
    blobIndex: dv.getUint32(64, true),
    chunkSize: dv.getUint32(68, true),
    chunkCount: dv.getUint32(72, true),
    compressor: dv.getUint32(76, true),
    digester: dv.getUint32(80, true),
    features: dv.getUint32(84, true),
    compressedSize: u64(dv, 88, S, at),
    uncompressedSize: u64(dv, 96, S, at),
    tocSize: dv.getUint32(104, true),
    ciCompressor: dv.getUint32(108, true),
    ciOffset: u64(dv, 112, S, at),
    ciCompressedSize: u64(dv, 120, S, at),
    ciUncompressedSize: u64(dv, 128, S, at),
    tocDigest: hex(b.subarray(136, 168)),
    metaDigest: hex(b.subarray(168, 200)),
    metaSize: u64(dv, 200, S, at),
  };
}
