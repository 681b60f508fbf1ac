import { chainLength } from '../catalog/grant-chains.js';

/** What of a generated statement (batch.ts's StatementRecord) its place in a chain depends on. */
interface ChainLink {
  kind: string;
  /** The grantee (absent for PUBLIC). */
  role?: string;
  /** The grantor it runs as. */
  run_as?: string;
  /** The object and privilege, for a privilege granted through a grant option. */
  chain?: string;
}

/**
 * The order to run a generated batch's statements in (indexes into `records`): as stored,
 * but for the privileges granted through grant options, which capture leaves in no order
 * of their chains (`chain`, permsync.shared_privilege_statement): following a chain is
 * work that grows with what any login may build, and capture runs in a DBA's transaction.
 * In each run of consecutive such grants, a grant goes after the one that gives its
 * grantor (`run_as`) the option on the same object and privilege; in each run of such
 * revokes, before the one that takes the option away. Linear in the batch but for the
 * sort of each run; a circle of grantors is ordered as if cut anywhere.
 */
export function grantOrder(records: ChainLink[]): number[] {
  const order: number[] = [];
  let run: number[] = [];
  let revoking = false;
  const flush = () => {
    for (const index of inChainOrder(records, run, revoking)) order.push(index);
    run = [];
  };
  for (const [index, record] of records.entries()) {
    if (record.chain === undefined) {
      flush();
      order.push(index);
      continue;
    }
    const revoke = record.kind.startsWith('REVOKE');
    if (revoke !== revoking) flush();
    revoking = revoke;
    run.push(index);
  }
  flush();
  return order;
}

/** One run's statements, each after (revoking: before) the one that gives its grantor the option. */
function inChainOrder(records: ChainLink[], run: number[], revoking: boolean): number[] {
  const link = (chain: string, role: string) => `${chain}\0${role}`;
  const byGrantee = new Map<string, number>();
  for (const index of run) {
    const { chain, role } = records[index] as ChainLink;
    // PUBLIC (no role) grants nothing onward.
    if (role !== undefined && !byGrantee.has(link(chain as string, role))) byGrantee.set(link(chain as string, role), index);
  }
  const length = chainLength<number>((index) => {
    const { chain, run_as: grantor } = records[index] as ChainLink;
    return grantor === undefined ? undefined : byGrantee.get(link(chain as string, grantor));
  });
  const depth = new Map(run.map((index) => [index, length(index)]));
  const of = (index: number) => depth.get(index) as number;
  // Array.prototype.sort is stable: statements of the same depth keep the batch's order.
  return [...run].sort((a, b) => (revoking ? of(b) - of(a) : of(a) - of(b)));
}
