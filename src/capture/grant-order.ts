/** What of a generated statement (batch.ts's StatementRecord) its place in a chain depends on. */
interface ChainLink {
  kind: string;
  /** The grantee (absent for PUBLIC). */
  role?: string;
  /** The grantor it runs as. */
  run_as?: string;
  /** The object and privilege, for a privilege granted through a grant option. */
  chain?: string;
  /** It gives (a grant) or takes (a revoke) its grantee's grant option. */
  option?: boolean;
}

/**
 * The order to run a generated batch's statements in (indexes into `records`): as stored,
 * but for the privileges granted through grant options, which capture leaves in no order
 * of their chains (`chain`, permsync.shared_privilege_statement): following a chain is
 * work that grows with what any login may build, and capture runs in a DBA's transaction.
 * A grantee may hold a privilege's option from several grantors. In each run of
 * consecutive such grants, a grant goes after the first one that gives its grantor
 * (`run_as`) the option on the same object and privilege (one is enough); in each run of
 * such revokes, before every one that takes the option away. Linear in the batch but for
 * the sort of each run; a circle of grantors is cut at its first statement in the batch.
 * `cut`: the revokes a circle was cut at, which no order makes plain where the circle's
 * options are held only through one another (the source's REVOKE ... CASCADE took them
 * apart): the applier settles their objects on the target (plan/cycles.ts).
 */
export function grantOrder(records: ChainLink[]): { order: number[]; cut: Set<number> } {
  const order: number[] = [];
  const cut = new Set<number>();
  let run: number[] = [];
  let revoking = false;
  const flush = () => {
    const ordered = inChainOrder(records, run, revoking);
    for (const index of ordered.order) order.push(index);
    if (revoking) for (const index of ordered.cut) cut.add(index);
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
  return { order, cut };
}

/** A role's grant option on one object and privilege. */
type Holder = string;

/** One run's statements by level: each level's after the levels before it, in the batch's order within each; and where a circle was cut. */
function inChainOrder(records: ChainLink[], run: number[], revoking: boolean): { order: number[]; cut: number[] } {
  const holder = (chain: string, role: string): Holder => `${chain}\0${role}`;
  const of = (index: number) => records[index] as ChainLink;
  const grantorOf = (index: number) => {
    const { chain, run_as: grantor } = of(index);
    return grantor === undefined ? undefined : holder(chain as string, grantor);
  };
  // PUBLIC (no role) grants nothing onward.
  const optionOf = (index: number) => {
    const { chain, role, option } = of(index);
    return option === true && role !== undefined ? holder(chain as string, role) : undefined;
  };
  const byGrantor = new Map<Holder, number[]>();
  const byOption = new Map<Holder, number[]>();
  for (const index of run) {
    const grantor = grantorOf(index);
    const option = optionOf(index);
    if (grantor !== undefined) add(byGrantor, grantor, index);
    if (option !== undefined) add(byOption, option, index);
  }
  const { level, cut } = revoking
    ? revokeLevels(run, grantorOf, optionOf, byGrantor, byOption)
    : grantLevels(run, grantorOf, optionOf, byGrantor, byOption);
  const at = (index: number) => level.get(index) as number;
  // Array.prototype.sort is stable: statements of the same level keep the batch's order.
  return { order: [...run].sort((a, b) => at(a) - at(b)), cut };
}

type Lookup = (index: number) => Holder | undefined;

/**
 * Levels breadth first: `starts` at level 1, then each statement `onward` of one at the
 * level after it; what is left (a circle) is cut at its first statement in the run, at the
 * level after every one so far. Each statement is taken from the queue once.
 */
function levels(
  run: number[],
  starts: (index: number) => boolean,
  onward: (index: number) => number[],
): { level: Map<number, number>; cut: number[] } {
  const level = new Map<number, number>();
  const cut: number[] = [];
  const queue: number[] = [];
  let deepest = 0;
  const place = (index: number, at: number) => {
    level.set(index, at);
    deepest = Math.max(deepest, at);
    queue.push(index);
  };
  let head = 0;
  const drain = () => {
    for (; head < queue.length; head++) {
      const index = queue[head] as number;
      const at = level.get(index) as number;
      for (const next of onward(index)) if (!level.has(next)) place(next, at + 1);
    }
  };
  for (const index of run) if (starts(index)) place(index, 1);
  drain();
  for (const index of run) {
    if (level.has(index)) continue;
    cut.push(index);
    place(index, deepest + 1);
    drain();
  }
  return { level, cut };
}

/**
 * Grants: those whose grantor gets no option in the run (it holds it already, or owns the
 * object) first; a grantor's grants after the first grant that gives it the option, each
 * holder's reached once.
 */
function grantLevels(run: number[], grantorOf: Lookup, optionOf: Lookup, byGrantor: Map<Holder, number[]>, byOption: Map<Holder, number[]>) {
  const reached = new Set<Holder>();
  return levels(
    run,
    (index) => {
      const grantor = grantorOf(index);
      return grantor === undefined || !byOption.has(grantor);
    },
    (index) => {
      const option = optionOf(index);
      if (option === undefined || reached.has(option)) return [];
      reached.add(option);
      return byGrantor.get(option) ?? [];
    },
  );
}

/**
 * Revokes: those of grants whose grantee grants nothing in the run first; one that takes a
 * holder's option after every revoke of a grant that holder made.
 */
function revokeLevels(run: number[], grantorOf: Lookup, optionOf: Lookup, byGrantor: Map<Holder, number[]>, byOption: Map<Holder, number[]>) {
  const pending = new Map([...byGrantor].map(([grantor, made]) => [grantor, made.length]));
  return levels(
    run,
    (index) => {
      const option = optionOf(index);
      return option === undefined || !pending.has(option);
    },
    (index) => {
      const grantor = grantorOf(index);
      if (grantor === undefined) return [];
      const left = (pending.get(grantor) as number) - 1;
      pending.set(grantor, left);
      return left === 0 ? (byOption.get(grantor) ?? []) : [];
    },
  );
}

function add(map: Map<Holder, number[]>, key: Holder, index: number): void {
  const list = map.get(key);
  if (list) list.push(index);
  else map.set(key, [index]);
}
