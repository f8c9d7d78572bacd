// The names a management API caller (or the daemon's config) hands in that end up in paths,
// cache keys or mount options: fsid, domain id, device tags. Checked against the identifier
// grammar (src/format/identifiers.ts) at the door, before anything is looked up or made.
import { checkName } from '../format/identifiers.js';
import { InvalidArgumentError } from '../errors.js';

/** Device tags (or 1-based device numbers) of a `devices` map; its values are paths. */
export function checkDeviceKeys(devices: unknown, field = 'devices'): void {
  if (devices === undefined) return;
  if (typeof devices !== 'object' || devices === null || Array.isArray(devices)) {
    throw new InvalidArgumentError(`"${field}" must be an object of device tag → image path`);
  }
  for (const [k, v] of Object.entries(devices as Record<string, unknown>)) {
    checkName(k, `"${field}" key (a device tag)`);
    if (typeof v !== 'string' || v === '' || v.includes('\0')) throw new InvalidArgumentError(`"${field}.${k}" must be a path`);
  }
}

/** An image's registration names: fsid, domain id and device tags. */
export function checkImageSpecNames(spec: { fsid: unknown; domain?: unknown; devices?: unknown }): void {
  checkName(spec.fsid, 'fsid');
  if (spec.domain !== undefined) checkName(spec.domain, 'domain');
  checkDeviceKeys(spec.devices);
}

/** A fanotify mount's names: the device tags of its flat device images. */
export function checkMountSpecNames(spec: { devices?: unknown }): void {
  checkDeviceKeys(spec.devices);
}
