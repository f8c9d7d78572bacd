// Load on the snapshotter for the memory benchmark: containerd's calls for a container's
// writable layer, Prepare then Remove of a new key, `n` times, then one List (the stream containerd's Walk reads), over its
// gRPC socket, with containerd's own Snapshots service definition.
//   node snapshot-calls.js <socket> [n]
import { credentials, type Client } from '@grpc/grpc-js';
import { loadSnapshotsService } from '../../../src/snapshotter/proto.js';

type Unary = (req: unknown, cb: (err: Error | null, res?: unknown) => void) => void;

async function main(): Promise<void> {
  const [socket, nArg] = process.argv.slice(2);
  if (!socket) { process.stderr.write('usage: snapshot-calls.js <socket> [n]\n'); process.exit(2); }
  const n = Number(nArg ?? 100);
  const Snapshots = loadSnapshotsService();
  const client = new Snapshots(`unix://${socket}`, credentials.createInsecure()) as Client & Record<string, Unary & ((req: unknown) => NodeJS.EventEmitter)>;
  const call = (name: string, req: unknown) => new Promise<unknown>((resolve, reject) => {
    (client[name] as Unary).call(client, req, (err, res) => (err ? reject(err) : resolve(res)));
  });
  const snapshotter = 'ondine';
  for (let i = 0; i < n; i++) {
    const key = `memory-bench-${process.pid}-${i}`;
    await call('Prepare', { snapshotter, key, parent: '', labels: {} });
    await call('Remove', { snapshotter, key });
  }
  await new Promise<void>((resolve, reject) => {
    const s = (client.List as (req: unknown) => NodeJS.EventEmitter).call(client, { snapshotter, filters: [] });
    s.on('data', () => undefined).on('end', resolve).on('error', reject);
  });
  client.close();
  process.stdout.write(`${n} Prepare/Remove pairs and a List\n`);
}

main().catch((err: unknown) => { process.stderr.write(`snapshot-calls: ${(err as Error).message}\n`); process.exit(1); });
