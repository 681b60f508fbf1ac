import { readdirSync, readFileSync } from 'node:fs';

/** CPU time (user + system, in clock ticks of 10 ms) and parent of every process, from /proc. */
export type CpuSnapshot = Map<number, { parent: number; ticks: number }>;

export function cpuSnapshot(): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name, which may hold spaces: state, ppid, ..., utime (12th), stime (13th).
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      snapshot.set(Number(entry), { parent: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return snapshot;
}

/** Who to charge: a process by its pid, or every child of a PostgreSQL server's postmaster. */
export interface CpuGroup {
  name: string;
  pids?: number[];
  childrenOf?: number[];
  /** Left out of childrenOf (charged to another group). */
  except?: number[];
}

/** CPU microseconds per statement each group spent between two snapshots. */
export function cpuPerStatement(before: CpuSnapshot, after: CpuSnapshot, groups: CpuGroup[], statements: number): Map<string, number> {
  const spent = new Map<string, number>();
  for (const [pid, now] of after) {
    const group = groups.find((g) => g.pids?.includes(pid) || (g.childrenOf?.includes(now.parent) && !g.except?.includes(pid)));
    if (!group) continue;
    const ticks = now.ticks - (before.get(pid)?.ticks ?? 0);
    spent.set(group.name, (spent.get(group.name) ?? 0) + ticks);
  }
  return new Map(groups.map((g) => [g.name, ((spent.get(g.name) ?? 0) * 10_000) / statements]));
}
