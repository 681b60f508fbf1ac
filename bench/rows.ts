import { cpus } from 'node:os';
import type { BurstResult, CatchUpResult } from './burst.js';
import { ms, rate, ratio, seconds, type Row } from './report.js';
import type { Distribution } from './stats.js';

/** The table's lines for each measurement: what was measured, the figure, its goal. */

/** The latencies measured on one side. */
export function get(map: Map<string, Distribution>, name: string): Distribution {
  const d = map.get(name);
  if (!d) throw new Error(`no samples for ${name}`);
  return d;
}

export function costRows(id: string, what: string, side: Distribution, plain: Distribution, goal?: number): Row[] {
  return (['p50', 'p99'] as const).map((p) => {
    const r = side[p] / plain[p];
    return {
      id,
      measurement: `${what}, ${p} (${ms(side[p])} vs ${ms(plain[p])} without capture)`,
      figure: ratio(r),
      goal: goal === undefined ? '' : `<= ${goal}x`,
      met: goal === undefined ? null : r <= goal,
    };
  });
}

export function burstRows(b: BurstResult): Row[] {
  const slowest = Math.min(...b.environments.map((e) => e.perSecond));
  return [
    { id: '4', measurement: `burst ${b.count}: sent by one client in ${seconds(b.sendSeconds)}`, figure: rate(b.sentPerSecond), goal: '', met: null },
    {
      id: '4',
      measurement: `burst: applied per target from the first statement, at most the sender's rate (${b.environments.map((e) => `${e.environment} ${rate(e.perSecond)}`).join(', ')})`,
      figure: `${rate(slowest)} slowest`,
      goal: '>= 2000/s',
      met: slowest >= 2000,
    },
    { id: '4', measurement: 'burst: last commit to applied everywhere', figure: ms(b.drainAfterLastCommitMs), goal: '', met: null },
    {
      id: '4',
      measurement: 'burst: order kept (execution_log, final ACLs)',
      figure: b.order.kept ? 'yes' : b.order.problems.join('; '),
      goal: 'yes',
      met: b.order.kept,
    },
    cpuRow(b.cpuPerStatement),
  ];
}

/** Where the burst's CPU went, and the rate those costs allow on this machine's cores. */
function cpuRow(perStatement: Map<string, number>): Row {
  const total = [...perStatement.values()].reduce((a, b) => a + b, 0);
  const parts = [...perStatement].map(([who, us]) => `${who} ${Math.round(us)}`).join(', ');
  return {
    id: '4',
    measurement: `burst: CPU µs per statement, all on this machine (${parts}; total ${Math.round(total)}): the most its ${cpus().length} cores allow`,
    figure: rate((cpus().length * 1e6) / total),
    goal: '',
    met: null,
  };
}

export function catchUpRows(c: CatchUpResult): Row[] {
  return [
    {
      id: '5',
      measurement: `catch-up: ${c.environment} down ${seconds(c.downSeconds)} for ${c.count}, back up to converged`,
      figure: seconds(c.convergeSeconds),
      goal: '< 10 s',
      met: c.convergeSeconds < 10,
    },
    {
      id: '5',
      measurement: 'catch-up: of which until the first batch applied again',
      figure: seconds(c.untilFirstAppliedSeconds),
      goal: '',
      met: null,
    },
    {
      id: '5',
      measurement: "catch-up: backlog applied (the daemon's own rate: no sender to wait for)",
      figure: rate(c.backlogPerSecond),
      goal: '>= 2000/s',
      met: c.backlogPerSecond >= 2000,
    },
    {
      id: '5',
      measurement: 'catch-up: order kept (execution_log, final ACLs)',
      figure: c.order.kept ? 'yes' : c.order.problems.join('; '),
      goal: 'yes',
      met: c.order.kept,
    },
  ];
}

export function roleRows(roles: number, few: Distribution, check: Distribution, detection: Distribution): Row[] {
  return [
    { id: '6', measurement: `role change to detected, p50 (${detection.n} changes)`, figure: ms(detection.p50), goal: '', met: null },
    { id: '6', measurement: 'role change to detected, max', figure: ms(detection.max), goal: '< 1000 ms', met: detection.max < 1000 },
    { id: '6', measurement: `one check, nothing changed, ${roles} roles, p50`, figure: ms(check.p50), goal: '', met: null },
    {
      id: '6',
      measurement: `one check, nothing changed, ${roles} roles, p99 (few roles: ${ms(few.p99)})`,
      figure: ms(check.p99),
      goal: '< 20 ms',
      met: check.p99 < 20,
    },
  ];
}
