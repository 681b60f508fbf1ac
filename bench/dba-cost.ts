import type pg from 'pg';
import { alternating } from './servers.js';
import { distribution, now, type Distribution } from './stats.js';

/** One way of running the DBA's statements: a session on one of the sources. */
export interface Side {
  name: string;
  client: pg.Client;
  /** Runs after each of this side's rounds, untimed (letting the daemon finish its work, so it does not run into another side's round). */
  afterRound?: () => Promise<void>;
}

export interface CostOptions {
  /** Timed statements per side. */
  perSide: number;
  /** Statements in one round; sides take turns round by round. */
  roundSize: number;
  /** Untimed statements per side first (plans, caches, connections). */
  warmup: number;
  /** The i-th statement sent, and what its latency is counted as (none: not timed); default: a GRANT or a REVOKE, each counted as its side's. */
  statement?: (i: number) => { sql: string; label?: string };
}

const grantOrRevoke = (i: number) => ({ sql: alternating(i), label: '' });

/**
 * Latency of single statements (GRANT/REVOKE unless told), each its own transaction as
 * psql sends them, on every side in turn: short alternating rounds, in an order that
 * changes each round, so that drift in the machine's load, and what one side leaves behind
 * for the next (the daemon's work after permsync's round), fall on every side alike.
 * Samples go by side name, followed by ": label" for a statement of a non-empty label.
 */
export async function measureStatementLatency(sides: Side[], options: CostOptions): Promise<Map<string, Distribution>> {
  const samples = new Map<string, number[]>();
  const statement = options.statement ?? grantOrRevoke;
  let counter = 0;
  const run = async (side: Side, count: number, timed: boolean) => {
    for (let i = 0; i < count; i++) {
      const { sql, label } = statement(counter++);
      const started = now();
      await side.client.query(sql);
      if (!timed || label === undefined) continue;
      const key = label === '' ? side.name : `${side.name}: ${label}`;
      const list = samples.get(key) ?? [];
      list.push(now() - started);
      samples.set(key, list);
    }
    await side.afterRound?.();
  };
  for (const side of sides) await run(side, options.warmup, false);
  const rounds = Math.ceil(options.perSide / options.roundSize);
  for (let round = 0; round < rounds; round++) {
    for (const index of balancedOrder(sides.length, round)) await run(sides[index] as Side, options.roundSize, true);
  }
  return new Map([...samples].map(([name, values]) => [name, distribution(values)]));
}

/**
 * The order of the sides in a round: a Williams design, in which over n rounds (2n when n
 * is odd) each side comes first equally often and follows every other side equally often.
 * A plain rotation would always put the same side after permsync's round.
 */
function balancedOrder(n: number, round: number): number[] {
  const base = Array.from({ length: n }, (_, j) => (j % 2 === 0 ? (n - j / 2) % n : (j + 1) / 2));
  const order = base.map((b) => (b + round) % n);
  return n % 2 === 1 && Math.floor(round / n) % 2 === 1 ? order.reverse() : order;
}
