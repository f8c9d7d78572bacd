// The labels and names the snapshotter reads from containerd, and their checks. Every value
// comes from a caller we do not trust: keys and names never reach a path (snapshot dirs are
// numbered), sizes are bounded as containerd bounds them, and an image reference is parsed
// before it names a registry.
import { parseReference } from '../registry/reference.js';
import { invalid } from './errors.js';

/** The chain id containerd's unpacker asks a remote snapshotter to commit under. */
export const LABEL_REF = 'containerd.io/snapshot.ref';
/** Set on the snapshots committed without content (containerd, stargz and nydus use it). */
export const LABEL_REMOTE = 'containerd.io/snapshot/remote';
/** Nydus layer annotations containerd passes on as labels. */
export const LABEL_NYDUS_BLOB = 'containerd.io/snapshot/nydus-blob';
export const LABEL_NYDUS_BOOTSTRAP = 'containerd.io/snapshot/nydus-bootstrap';
/** The image being pulled (CRI; nerdctl and ctr-remote add it too). */
export const LABEL_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';

/** containerd's labels.Validate bound: key and value together. */
const MAX_LABEL = 4096;
const MAX_LABELS = 256;
const MAX_KEY = 4096;

export function checkKey(what: string, key: unknown, optional = false): string {
  if (typeof key !== 'string') throw invalid(`${what} must be a string`);
  if (!key) {
    if (optional) return '';
    throw invalid(`${what} must not be empty`);
  }
  if (key.length > MAX_KEY) throw invalid(`${what} is longer than ${MAX_KEY} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key)) throw invalid(`${what} contains control characters`);
  return key;
}

export function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw invalid('labels must be a map of strings');
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > MAX_LABELS) throw invalid(`more than ${MAX_LABELS} labels`);
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw invalid(`label ${JSON.stringify(k.slice(0, 64))} is not a string`);
    if (!k) throw invalid('a label key is empty');
    if (k.length + v.length > MAX_LABEL) throw invalid(`label ${JSON.stringify(k.slice(0, 64))}: key and value exceed ${MAX_LABEL} bytes`);
    out[k] = v;
  }
  return out;
}

/** The image reference a lazy mount's blobs come from, checked; undefined when absent. */
export function imageRefOf(labels: Record<string, string>): string | undefined {
  const v = labels[LABEL_IMAGE_REF];
  if (v === undefined || v === '') return undefined;
  if (v.length > 1024) throw invalid(`${LABEL_IMAGE_REF} is longer than 1024 characters`);
  try {
    return parseReference(v).toString();
  } catch (err) {
    throw invalid(`${LABEL_IMAGE_REF} ${JSON.stringify(v.slice(0, 200))} is not an image reference: ${(err as Error).message}`);
  }
}

export function isNydusBlob(labels: Record<string, string>): boolean {
  return LABEL_NYDUS_BLOB in labels;
}

export function isNydusBootstrap(labels: Record<string, string>): boolean {
  return LABEL_NYDUS_BOOTSTRAP in labels;
}
