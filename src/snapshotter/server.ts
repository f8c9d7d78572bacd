// containerd.services.snapshots.v1.Snapshots over gRPC on a unix socket: translates messages
// to and from the Snapshotter and every failure into the status containerd's errdefs expect.
// Nothing else: the semantics live in snapshotter.ts.
import { mkdirSync, unlinkSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { grpcStatus } from './errors.js';
import { loadSnapshotsService } from './proto.js';
import type { Info, Mount, Snapshotter } from './snapshotter.js';

type Req = Record<string, unknown>;

const KIND = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' } as const;

function timestamp(ms: number): { seconds: string; nanos: number } {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

function infoMessage(i: Info): Req {
  return { name: i.name, parent: i.parent, kind: KIND[i.kind], created_at: timestamp(i.createdMs), updated_at: timestamp(i.updatedMs), labels: i.labels };
}

function mountMessages(ms: Mount[]): Req[] {
  return ms.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options }));
}

export class SnapshotsServer {
  private readonly server = new Server({ 'grpc.max_receive_message_length': 16 << 20 });

  constructor(sn: Snapshotter, private readonly log: Logger) {
    const unary = <T>(method: string, fn: (req: Req) => T | Promise<T>) => (call: ServerUnaryCall<Req, unknown>, cb: sendUnaryData<unknown>) => {
      const started = Date.now();
      Promise.resolve().then(() => fn(call.request)).then(
        (v) => { this.log.debug({ method, key: call.request.key ?? call.request.name, ms: Date.now() - started }, 'snapshots call'); cb(null, v); },
        (err: Error) => {
          const code = grpcStatus(err);
          this.log[code === 2 ? 'error' : 'debug']({ method, key: call.request.key ?? call.request.name, code, err: { code: (err as { code?: string }).code, message: err.message } }, 'snapshots call failed');
          cb({ code, details: err.message });
        },
      );
    };
    const impl: UntypedServiceImplementation = {
      Prepare: unary('Prepare', async (r) => ({ mounts: mountMessages(await sn.create('active', r.key, r.parent, r.labels)) })),
      View: unary('View', async (r) => ({ mounts: mountMessages(await sn.create('view', r.key, r.parent, r.labels)) })),
      Mounts: unary('Mounts', async (r) => ({ mounts: mountMessages(await sn.mounts(r.key)) })),
      Commit: unary('Commit', async (r) => { await sn.commit(r.name, r.key, r.labels); return {}; }),
      Remove: unary('Remove', (r) => { sn.remove(r.key); return {}; }),
      Stat: unary('Stat', (r) => ({ info: infoMessage(sn.stat(r.key)) })),
      Update: unary('Update', (r) => {
        const info = (r.info ?? {}) as Req;
        const paths = ((r.update_mask as { paths?: string[] } | null)?.paths ?? []);
        return { info: infoMessage(sn.update(info.name, info.labels, paths)) };
      }),
      Usage: unary('Usage', async (r) => {
        const u = await sn.usage(r.key);
        return { size: String(u.size), inodes: String(u.inodes) };
      }),
      Cleanup: unary('Cleanup', async () => { await sn.cleanup(); return {}; }),
      List: (call: ServerWritableStream<Req, unknown>) => {
        try {
          const infos = sn.list((call.request.filters as string[] | undefined) ?? []);
          for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100).map(infoMessage) });
          call.end();
        } catch (err) {
          call.emit('error', { code: grpcStatus(err), details: (err as Error).message });
        }
      },
    };
    this.server.addService(loadSnapshotsService().service, impl);
  }

  async listen(socketPath: string): Promise<void> {
    mkdirSync(dirname(socketPath), { recursive: true, mode: 0o711 });
    try { unlinkSync(socketPath); } catch { /* none */ }
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    chmodSync(socketPath, 0o600);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.server.forceShutdown(); resolve(); }, 2000);
      this.server.tryShutdown(() => { clearTimeout(t); resolve(); });
    });
  }
}
