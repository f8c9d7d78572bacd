// The world the Ondine CRI tests share: a docker-registry with a recording proxy in front
// (hosts.toml points containerd and Ondine at the proxy, so every request is seen with its
// Range), the pause image, a busybox app image as plain OCI and its lazy conversion, and a
// private containerd whose only CRI snapshotter is `ondine snapshotter` (with `ondine daemon`
// in the same mount namespace). Also the checks on what the proxy saw: which blobs were GET
// and whether any byte of a blob was fetched twice.
import { join } from 'node:path';

import { startContainerd, type ContainerdEnv, type ContainerdEnvOptions } from './containerd-env.js';
import { busyboxTree, convertLazy, dataFiles, pauseTree, pushTreeImage, type PushedImage } from './cri-images.js';
import { startFaultProxy, startRegistry, type FaultProxy, type RegistryServer } from './registry-env.js';

export type LazyImage = PushedImage & { dataBlobs: string[]; bootstrap: string };
export interface DataFile { path: string; sha256: string; size: number }

export interface CriWorld {
  registry: RegistryServer;
  proxy: FaultProxy;
  pause: PushedImage;
  /** Plain OCI: busybox layer + data layer. */
  plain: PushedImage;
  lazy: LazyImage;
  files: DataFile[];
  env: ContainerdEnv;
}

/** Chunk size for the lazy images: small, so "only what was read" is measurable on MiB files. */
export const CHUNK = '64K';

/** Builds the images and starts everything; every piece is registered with `cleanup`. */
export async function startCriWorld(cleanup: { after(fn: () => unknown): void }, work: string, opts: { label: string; dataSizes: number[]; seed: number; extraHosts?: ContainerdEnvOptions['registryHosts']; envOptions?: Partial<ContainerdEnvOptions> }): Promise<CriWorld> {
  const registry = await startRegistry();
  cleanup.after(() => registry.stop());
  const proxy = await startFaultProxy(registry.url);
  cleanup.after(() => proxy.stop());
  pauseTree(join(work, 'pause'), work);
  const pause = await pushTreeImage(registry, 'pause', '1', [join(work, 'pause')], { Entrypoint: ['/pause'] }, work);
  busyboxTree(join(work, 'base'));
  const files = dataFiles(join(work, 'app'), opts.seed, opts.dataSizes);
  const plain = await pushTreeImage(registry, 'app', 'plain', [join(work, 'base'), join(work, 'app')], { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo no command given'] }, work);
  const lazy = await convertLazy(registry, plain, 'app', 'lazy', ['--chunk-size', CHUNK]);
  const env = await startContainerd({
    snapshotter: 'ondine', registryHosts: [{ host: registry.host, server: proxy.url }, ...(opts.extraHosts ?? [])], sandboxImage: pause.ref, label: opts.label, ...opts.envOptions,
  });
  return { registry, proxy, pause, plain, lazy, files, env };
}

/** A request's path without its query (containerd adds `?ns=<registry host>` to mirror requests). */
export function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/** Parses `bytes=a-b` (inclusive); undefined for a whole-object GET. */
export function parseRange(range: string | undefined): [number, number] | undefined {
  if (range === undefined) return undefined;
  const m = /^bytes=(\d+)-(\d+)$/.exec(range);
  if (!m) throw new Error(`unexpected Range ${range}`);
  return [Number(m[1]), Number(m[2])];
}

export interface BlobFetches {
  gets: number;
  bytes: number;
  /** Bytes that more than one GET asked for. */
  overlapBytes: number;
  ranges: Array<[number, number]>;
}

/** What the proxy saw of `digest` (GETs from index `since` on): requests, bytes asked for, overlaps. */
export function blobFetches(proxy: FaultProxy, digest: string, blobSize: number, since = 0): BlobFetches {
  const ranges: Array<[number, number]> = [];
  for (const s of proxy.seen().slice(since)) {
    if (s.method !== 'GET' || !pathOnly(s.path).endsWith(`/blobs/${digest}`)) continue;
    ranges.push(parseRange(s.range) ?? [0, blobSize - 1]);
  }
  const sorted = ranges.map((r): [number, number] => [r[0], Math.min(r[1], blobSize - 1)]).sort((a, b) => a[0] - b[0]);
  let bytes = 0;
  let overlapBytes = 0;
  let reach = -1;
  for (const [a, b] of sorted) {
    bytes += b - a + 1;
    if (a <= reach) overlapBytes += Math.min(b, reach) - a + 1;
    reach = Math.max(reach, b);
  }
  return { gets: ranges.length, bytes, overlapBytes, ranges: sorted };
}

/** GETs (from index `since` on) whose path ends with one of `digests`. */
export function getsOf(proxy: FaultProxy, digests: readonly string[], since = 0): Array<{ path: string; range?: string }> {
  return proxy.seen().slice(since).filter((s) => s.method === 'GET' && digests.some((d) => pathOnly(s.path).endsWith(`/blobs/${d}`)));
}
