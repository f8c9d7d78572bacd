// Memory of processes as the kernel counts it, from /proc/<pid>/status: VmRSS (resident now),
// VmHWM (the peak resident size since the process started) and the thread count.
//   node procs.js sample <label> <role=pid>...          one JSON line per process
//   node procs.js watch <label> <ms> <role=pid>...       samples every <ms> until SIGTERM/SIGINT,
//                                                         then one line per process with the
//                                                         largest VmRSS and thread count seen
import { readFileSync } from 'node:fs';

export interface ProcMemory { rssKb: number; hwmKb: number; threads: number; name: string }

/** Parses /proc/<pid>/status text (pure). */
export function parseStatus(text: string): ProcMemory {
  const field = (k: string): string => {
    const m = new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text);
    if (!m) throw new Error(`no ${k} in /proc status`);
    return m[1]!.trim();
  };
  const kb = (k: string) => Number.parseInt(field(k), 10);
  return { name: field('Name'), rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), threads: Number.parseInt(field('Threads'), 10) };
}

function read(pid: number): ProcMemory | undefined {
  try {
    return parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return undefined;
  }
}

function roles(args: string[]): Array<{ role: string; pid: number }> {
  return args.map((a) => {
    const i = a.lastIndexOf('=');
    const pid = Number(a.slice(i + 1));
    if (i <= 0 || !Number.isSafeInteger(pid) || pid <= 0) throw new Error(`expected role=pid, not ${a}`);
    return { role: a.slice(0, i), pid };
  });
}

function main(): void {
  const [cmd, label, ...rest] = process.argv.slice(2);
  if (cmd === 'sample' && label) {
    for (const { role, pid } of roles(rest)) {
      const m = read(pid);
      if (!m) throw new Error(`process ${role} (${pid}) is gone`);
      process.stdout.write(`${JSON.stringify({ label, role, pid, ...m })}\n`);
    }
    return;
  }
  if (cmd === 'watch' && label && rest.length > 1) {
    const every = Number(rest[0]);
    const procs = roles(rest.slice(1));
    const peak = new Map<string, ProcMemory & { pid: number }>();
    const tick = () => {
      for (const { role, pid } of procs) {
        const m = read(pid);
        if (!m) continue;
        const p = peak.get(role);
        peak.set(role, { pid, name: m.name, rssKb: Math.max(m.rssKb, p?.rssKb ?? 0), hwmKb: m.hwmKb, threads: Math.max(m.threads, p?.threads ?? 0) });
      }
    };
    tick();
    const timer = setInterval(tick, every);
    const stop = () => {
      clearInterval(timer);
      tick();
      for (const [role, m] of peak) process.stdout.write(`${JSON.stringify({ label, role, ...m })}\n`);
      process.exit(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return;
  }
  process.stderr.write('usage: procs.js sample <label> <role=pid>... | watch <label> <ms> <role=pid>...\n');
  process.exit(2);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
