// Decompress + verify one chunk: the single function behind ChunkReader.verify and the decode
// worker threads, so both paths give the same bytes and the same typed errors. Pure: bytes and
// ids in, verified bytes out; no I/O, no state. It must not hand back unverified bytes.
import { DigestMismatchError, UnsupportedError } from '../errors.js';
import { codecById } from './codecs.js';
import { digestMatchesHex, digesterById } from './digests.js';

/** Everything needed to decode a chunk apart from its bytes; plain data (it crosses to workers). */
export interface ChunkDecodeSpec {
  /** For error messages. */
  blobId: string;
  chunkIndex: number;
  /** Codec of the stored bytes: the blob's compressor, or 0 (none) for a chunk stored raw. */
  codec: number;
  digester: number;
  uncompressedSize: number;
  /** Hex digest the uncompressed bytes must hash to; undefined when the image records none. */
  digest: string | undefined;
  /** Refuse a chunk without a digest (UnsupportedError) rather than pass it unverified. */
  requireDigest: boolean;
}

/**
 * Decompresses and verifies `compressed`. With `into` (exactly the chunk's uncompressed size)
 * the result lives in `into`: decompressed straight there when the codec can (its contents are
 * then undefined if this throws), else copied there once verified. Without, new memory.
 */
export function decodeChunk(spec: ChunkDecodeSpec, compressed: Uint8Array, into?: Uint8Array): Buffer {
  const codec = codecById(spec.codec);
  const slot = into && into.length === spec.uncompressedSize ? into : undefined;
  let data: Buffer;
  if (slot && codec.decompressInto) {
    codec.decompressInto(compressed, slot);
    data = Buffer.from(slot.buffer, slot.byteOffset, slot.byteLength);
  } else {
    data = codec.decompress(compressed, spec.uncompressedSize);
  }
  if (spec.digest === undefined) {
    if (spec.requireDigest) {
      throw new UnsupportedError(`chunk ${spec.chunkIndex} of blob ${spec.blobId} has no digest to verify against`);
    }
  } else {
    const actual = digesterById(spec.digester).digestBytes(data);
    if (!digestMatchesHex(actual, spec.digest)) {
      throw new DigestMismatchError(spec.blobId, spec.chunkIndex, spec.digest, Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).toString('hex'));
    }
  }
  // A caller that gave a slot writes the slot, not `data` (e.g. a run buffer written whole):
  // a codec that could not decompress into it must not leave it stale.
  if (slot && data.buffer !== slot.buffer) {
    slot.set(data);
    data = Buffer.from(slot.buffer, slot.byteOffset, slot.byteLength);
  }
  return data;
}
