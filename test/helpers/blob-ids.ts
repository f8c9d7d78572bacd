// Crafting consistent bootstraps whose blob ids are hostile: the blob table entry's id and the
// device slot's tag are rewritten in place (both 64-byte fixed strings) and block 0 is
// resealed, so the bootstrap parses and only the identifier check can refuse it.
import { COMPAT_SB_CHKSUM } from '../../src/format/constants.js';
import { parseBootstrap } from '../../src/format/bootstrap.js';
import { sealSuperblock } from '../../src/format/superblock.js';
import { BLOB_TABLE_ENTRY_SIZE } from '../../src/format/blob-table.js';
import { DEVICE_SLOT_SIZE, DEVICE_TAG_SIZE } from '../../src/format/device-slot.js';

/**
 * Sets blob `index`'s id (and its device tag, unless `only` says otherwise) to `id`'s latin1
 * bytes, zero-padded to 64 (an id with a NUL is cut there by the reader, as by the kernel).
 */
export function setBlobId(image: Buffer, index: number, id: string, opts: { only?: 'tag' | 'blob' } = {}): Buffer {
  const b = parseBootstrap(image);
  const bytes = Buffer.from(id, 'latin1');
  if (bytes.length > DEVICE_TAG_SIZE) throw new Error(`an id of ${bytes.length} bytes does not fit the 64-byte fields`);
  const put = (at: number) => {
    image.fill(0, at, at + DEVICE_TAG_SIZE);
    bytes.copy(image, at);
  };
  if (opts.only !== 'tag') put(b.rafs!.blobTableOffset + index * BLOB_TABLE_ENTRY_SIZE);
  if (opts.only !== 'blob' && b.devices.length > index) put(b.sb.devtSlotoff * DEVICE_SLOT_SIZE + index * DEVICE_SLOT_SIZE);
  if (b.sb.featureCompat & COMPAT_SB_CHKSUM) sealSuperblock(image.subarray(0, b.blockSize));
  return image;
}
