// Small runnable images for the CRI tests, built in seconds: root filesystems of Debian's
// busybox-static (the binary and a symlink per applet), a pause image whose only file is a
// static C program compiled here (waits for a signal, exits 0 on TERM/INT as kubernetes'
// pause does), and data files of seeded pseudo-random bytes. Layers are gzip tars made by GNU
// tar; images are pushed as plain OCI with plain HTTP seeding (not the client under test);
// lazy ones come from them through `ondine convert`, as a user would make them.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createCipheriv, createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';

import { cliOk } from './e2e-env.js';
import { httpCall, pushTestBlob, putTestManifest, sha256, type RegistryServer } from './registry-env.js';

const BUSYBOX = '/bin/busybox';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
}

export interface PushedImage {
  /** host:port/repository:tag */
  ref: string;
  manifestDigest: string;
  configDigest: string;
  layers: Array<{ digest: string; size: number; mediaType: string; annotations?: Record<string, string> }>;
}

/** A tree with busybox-static and its applets under /bin, the dirs runc needs, and /etc/passwd. */
export function busyboxTree(dir: string): void {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'data']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

const PAUSE_C = `#include <signal.h>
#include <unistd.h>
static void done(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGTERM, done);
  signal(SIGINT, done);
  for (;;) pause();
}
`;

/** A tree holding only /pause, a static binary compiled here. */
export function pauseTree(dir: string, work: string): void {
  mkdirSync(dir, { recursive: true });
  const src = join(work, 'pause.c');
  writeFileSync(src, PAUSE_C);
  execFileSync('gcc', ['-static', '-Os', '-s', '-o', join(dir, 'pause'), src], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `n` incompressible bytes determined by `seed` (AES-128-CTR of zeros). */
function pseudoRandomBytes(seed: number, n: number): Buffer {
  const key = createHash('sha256').update(`ondine-cri-${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** Files of seeded pseudo-random (incompressible) bytes: `data/f<i>.bin`, sizes as given. */
export function dataFiles(dir: string, seed: number, sizes: readonly number[]): Array<{ path: string; sha256: string; size: number }> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  return sizes.map((size, i) => {
    const bytes = pseudoRandomBytes(seed * 1000 + i, size);
    const path = `/data/f${i}.bin`;
    writeFileSync(join(dir, path), bytes);
    return { path, sha256: createHash('sha256').update(bytes).digest('hex'), size };
  });
}

/** A gzip tar of `dir` (numeric owners root, as an image build would make them). */
export function gzipLayer(dir: string, out: string): Buffer {
  execFileSync('tar', ['--format=pax', '--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=@0', '--gzip', '-C', dir, '-cf', out, '.'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return readFileSync(out);
}

/** Pushes layer trees (lowest first) as a plain OCI image `<repository>:<tag>`. */
export async function pushTreeImage(server: Pick<RegistryServer, 'url' | 'host' | 'seedAuth'>, repository: string, tag: string, trees: readonly string[], config: ImageConfig, work: string): Promise<PushedImage> {
  const layers: PushedImage['layers'] = [];
  const diffIds: string[] = [];
  for (const [i, tree] of trees.entries()) {
    const bytes = gzipLayer(tree, join(work, `${repository.replace(/\//g, '_')}-${tag}-${i}.tar.gz`));
    diffIds.push(sha256(gunzipSync(bytes)));
    const digest = await pushTestBlob(server, repository, bytes);
    layers.push({ digest, size: bytes.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
  }
  const configBytes = Buffer.from(JSON.stringify({
    created: '2026-01-01T00:00:00Z', architecture: 'amd64', os: 'linux',
    config: { Env: ['PATH=/bin'], ...config },
    rootfs: { type: 'layers', diff_ids: diffIds },
  }));
  const configDigest = await pushTestBlob(server, repository, configBytes);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configBytes.length },
    layers,
  }));
  const manifestDigest = await putTestManifest(server, repository, tag, 'application/vnd.oci.image.manifest.v1+json', manifest);
  return { ref: `${server.host}/${repository}:${tag}`, manifestDigest, configDigest, layers };
}

/** Reads a manifest back (plain HTTP): the layers of what `ondine convert` pushed. */
export async function fetchManifest(server: Pick<RegistryServer, 'url' | 'seedAuth'>, repository: string, tag: string): Promise<{ digest: string; config: { digest: string }; layers: PushedImage['layers'] }> {
  const auth = server.seedAuth(repository);
  const r = await httpCall(`${server.url}/v2/${repository}/manifests/${tag}`, 'GET', {
    accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    ...(auth !== undefined ? { authorization: auth } : {}),
  });
  if (r.status !== 200) throw new Error(`GET manifest ${repository}:${tag} answered ${r.status}`);
  const m = JSON.parse(r.body.toString('utf8')) as { config: { digest: string }; layers: PushedImage['layers'] };
  return { digest: sha256(r.body), config: m.config, layers: m.layers };
}

/**
 * `ondine convert <plain> <lazy>` (registry to registry); returns the lazy image with its
 * layers split into Nydus data blobs and the bootstrap layer, by their annotations.
 */
export async function convertLazy(server: Pick<RegistryServer, 'url' | 'host' | 'seedAuth'>, plain: PushedImage, repository: string, tag: string, extra: readonly string[] = []): Promise<PushedImage & { dataBlobs: string[]; bootstrap: string }> {
  await cliOk(['convert', plain.ref, `${server.host}/${repository}:${tag}`, ...extra]);
  const m = await fetchManifest(server, repository, tag);
  const isBoot = (l: PushedImage['layers'][number]) => l.annotations?.['containerd.io/snapshot/nydus-bootstrap'] === 'true';
  const bootstrap = m.layers.filter(isBoot);
  if (bootstrap.length !== 1) throw new Error(`converted ${repository}:${tag} has ${bootstrap.length} bootstrap layers: ${JSON.stringify(m.layers)}`);
  return {
    ref: `${server.host}/${repository}:${tag}`, manifestDigest: m.digest, configDigest: m.config.digest, layers: m.layers,
    dataBlobs: m.layers.filter((l) => !isBoot(l)).map((l) => l.digest), bootstrap: bootstrap[0]!.digest,
  };
}

/** Removes a scratch tree (used between builds to keep /var/tmp small). */
export function dropTree(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
