// `ondine status`: what the daemon serves and what it has fetched (--json: everything).
import type { Command } from 'commander';
import { DEFAULT_SOCKET } from '../../daemon/defaults.js';
import { DaemonClient } from '../../daemon/client.js';

interface Stats {
  workerPid: number;
  supervisorPid: number | null;
  modes: string[];
  sources: Record<string, Record<string, { bytes: number; requests: number }>>;
  images: Array<{ fsid: string; domain?: string; bootstrap: string; ref?: string }>;
  mounts: Array<{ mountpoint: string; bootstrap: string; ref?: string; detached?: boolean; blobs: Array<{ id: string; complete: boolean }> }>;
  fanotify?: { events: number; fills: number; denied: number; timeouts: number; supervisor?: { events: number; allowedAtOnce: number; workerRestarts: number; deniedByDeadline: number } };
}

const MiB = 1 << 20;

/** A few lines a person reads: who serves, what is mounted, how much was fetched. */
export function summary(s: Stats): string {
  const lines: string[] = [];
  lines.push(`daemon: worker ${s.workerPid}${s.supervisorPid ? `, supervisor ${s.supervisorPid}` : ''}; serving ${s.modes.join(' and ') || 'nothing'}`);
  const fetched = new Map<string, { bytes: number; requests: number }>();
  // A blob read from two sources (a directory and a registry) is counted once, summed.
  for (const dir of Object.values(s.sources)) {
    for (const [id, c] of Object.entries(dir)) {
      const prev = fetched.get(id);
      fetched.set(id, prev ? { bytes: prev.bytes + c.bytes, requests: prev.requests + c.requests } : c);
    }
  }
  for (const m of s.mounts) {
    lines.push(`mount ${m.mountpoint} (fanotify${m.detached ? '; unmounted there, still in use by the kernel (an overlay, a lazy detach, another namespace)' : ''}) ← ${m.ref ?? m.bootstrap}`);
    for (const b of m.blobs) {
      const c = fetched.get(b.id);
      lines.push(`  blob ${b.id.slice(0, 16)}…  ${b.complete ? 'complete' : 'partial'}; fetched ${((c?.bytes ?? 0) / MiB).toFixed(1)} MiB in ${c?.requests ?? 0} requests`);
    }
  }
  for (const i of s.images) lines.push(`image ${i.fsid}${i.domain ? ` (domain ${i.domain})` : ''} (cachefiles) ← ${i.ref ?? i.bootstrap}`);
  const f = s.fanotify;
  if (f) {
    const sup = f.supervisor;
    lines.push(`events: ${sup ? `${sup.events} seen, ${sup.allowedAtOnce} allowed by the supervisor, ` : ''}${f.fills} filled, ${f.denied} denied (${f.timeouts} timed out)${sup ? `; worker restarts ${sup.workerRestarts}, denied by deadline ${sup.deniedByDeadline}` : ''}`);
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program.command('status')
    .description("show the daemon's mounts, images and per-blob fetch counters")
    .option('--socket <path>', 'daemon socket', DEFAULT_SOCKET)
    .option('--json', 'everything, machine-readable')
    .action(async (o: { socket: string; json?: boolean }) => {
      const stats = await new DaemonClient(o.socket).stats();
      process.stdout.write(o.json ? JSON.stringify(stats, null, 2) + '\n' : summary(stats as unknown as Stats));
    });
}
