// Device table slots (128 bytes each): the tag names the blob (its id) to the kernel.
import { need, view, readFixedString, writeFixedString } from './bytes.js';

export const DEVICE_SLOT_SIZE = 128;
export const DEVICE_TAG_SIZE = 64;

export interface DeviceSlot {
  tag: string;
  blocks: number;
  mappedBlkaddr: number;
}

export function encodeDeviceSlot(buf: Uint8Array, at: number, d: DeviceSlot): void {
  const b = buf.subarray(at, at + DEVICE_SLOT_SIZE);
  b.fill(0);
  writeFixedString(b, 0, DEVICE_TAG_SIZE, d.tag, 'device tag');
  const dv = view(b);
  dv.setUint32(64, d.blocks, true);
  dv.setUint32(68, d.mappedBlkaddr, true);
}

export function decodeDeviceSlot(buf: Uint8Array, at: number): DeviceSlot {
  need(buf, at, DEVICE_SLOT_SIZE, 'EROFS device slot');
  const dv = view(buf.subarray(at, at + DEVICE_SLOT_SIZE));
  return { tag: readFixedString(buf, at, DEVICE_TAG_SIZE), blocks: dv.getUint32(64, true), mappedBlkaddr: dv.getUint32(68, true) };
}
