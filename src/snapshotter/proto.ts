// containerd's Snapshots service definition, loaded at run time from the .proto files Debian
// ships (golang-github-containerd-containerd-dev, with gogoproto from
// golang-github-gogo-protobuf-dev): the API is containerd's own, at the version the node's
// containerd speaks, never a copy kept here.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { OndineError } from '../errors.js';

export const GOCODE = process.env.ONDINE_GOCODE_DIR ?? '/usr/share/gocode/src';
const SNAPSHOTS = 'github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto';

export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

export function loadSnapshotsService(gocode = GOCODE): ServiceClientConstructor {
  const includeDirs = [gocode, join(gocode, 'github.com/gogo/protobuf')];
  for (const [file, pkg] of [[SNAPSHOTS, 'golang-github-containerd-containerd-dev'], ['gogoproto/gogo.proto', 'golang-github-gogo-protobuf-dev']] as const) {
    const found = includeDirs.some((d) => existsSync(join(d, file)));
    if (!found) throw new OndineError('ONDINE_ERR_INSTALL', undefined, `containerd's ${file.split('/').pop()} is not under ${gocode}: apt-get install ${pkg}`);
  }
  const def = loadSync(SNAPSHOTS, { ...LOADER_OPTIONS, includeDirs });
  const root = loadPackageDefinition(def) as unknown as { containerd: { services: { snapshots: { v1: GrpcObject } } } };
  return root.containerd.services.snapshots.v1.Snapshots as ServiceClientConstructor;
}
