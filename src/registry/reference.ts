// Image references as users type them, normalised the way Docker does (`debian:12` is
// docker.io/library/debian:12), and the API host a registry name is reached at. Pure parsing.
import { InvalidArgumentError } from '../errors.js';

export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** Canonical string: docker.io/library/debian:12 */
  toString(): string;
}

export const DOCKER_HUB = 'docker.io';
const DEFAULT_TAG = 'latest';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
// A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
const DOMAIN = /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

/** `registry/repository[:tag][@digest]`; the one formatter, so a spread copy prints the same. */
export function formatReference(ref: { registry: string; repository: string; tag?: string; digest?: string }): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** A reference object; `toString` is an own property so `{ ...ref, digest }` keeps printing right. */
export function makeReference(registry: string, repository: string, tag?: string, digest?: string): ImageReference {
  const ref: ImageReference = {
    registry,
    repository,
    toString(this: ImageReference) {
      return formatReference(this);
    },
  };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/** Throws unless `s` is `sha256:<64 hex>` (or sha384/sha512). */
export function checkDigest(s: string): string {
  if (!DIGEST.test(s)) throw new InvalidArgumentError(`invalid digest ${JSON.stringify(s)}: expected sha256:<64 lowercase hex digits>`);
  return s;
}

/**
 * Parses `name[:tag][@digest]`. A first component is a registry when it has a dot or a port or
 * is `localhost` (as Docker decides); otherwise the image is on Docker Hub, under `library/`
 * when it has a single component. No tag and no digest means `:latest`.
 */
export function parseReference(s: string): ImageReference {
  const bad = (why: string) => new InvalidArgumentError(`invalid image reference ${JSON.stringify(s)}: ${why}`);
  if (typeof s !== 'string' || s.length === 0) throw bad('empty');
  if (/\s/.test(s)) throw bad('contains white space');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`digest ${JSON.stringify(digest)} is not sha256:<64 lowercase hex digits>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/') && !rest.endsWith(']')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }
  if (rest.length === 0) throw bad('no repository name');
  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[') || first !== first.toLowerCase()) {
      if (!DOMAIN.test(first)) throw bad(`registry ${JSON.stringify(first)} is not a host name with an optional port`);
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length === 0) throw bad('no repository name');
  if (repository !== repository.toLowerCase()) throw bad('repository names must be lowercase');
  if (registry.length + 1 + repository.length > 255) throw bad('name longer than 255 characters');
  for (const part of repository.split('/')) {
    if (!COMPONENT.test(part)) throw bad(`repository component ${JSON.stringify(part)} is not lowercase letters, digits and single separators (. _ __ -)`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return makeReference(registry, repository, tag, digest);
}

/** The host that serves a registry name's API: Docker Hub's is registry-1.docker.io. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB || registry === 'index.docker.io' ? 'registry-1.docker.io' : registry;
}

/** The host part of a registry name, without port or IPv6 brackets. */
export function hostName(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/** Loopback registries (127.0.0.0/8, localhost, ::1) speak plain HTTP unless a CA file says otherwise. */
export function isLoopback(registry: string): boolean {
  const h = hostName(registry).toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h);
}
