import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { classifyError, OBJECT_GONE, refusedByServer, SQLSTATE, TransientError } from '../errors.js';
import type { Batch, BatchPlan, ConvergeScope } from '../capture/batch.js';
import type { EnvironmentConfig, Settings } from '../config/schema.js';
import type { ExecutionRecord, SourceStore, Switches } from '../source/store.js';
import { BATCH_PAGE, type BatchFeed, type BatchRead } from './feed.js';
import { compileRules, type CompiledRule, type RoleScope } from '../config/rules.js';
import { admit } from '../plan/admit.js';
import { handoverStatements, heirCreatedLater, heirOnTarget, releaseStatements, standingFor } from '../plan/release.js';
import { actorsOf, argumentTypeLookups, ownerlessSequences, planConverge, watchedAddresses } from '../plan/converge.js';
import { buildReport } from '../plan/report.js';
import { cycleObjects, settleCycles, type SettledCycles } from '../plan/cycles.js';
import { judgeStatements, mayChange, namesToLookUp, settleGrantors, type OwnershipVerdict, type RoleOwners } from '../plan/role-ownership.js';
import {
  canRunTogether,
  dependentLines,
  ROLE_OIDS,
  type BeforeCommit,
  type ExecutionResult,
  type GroupResult,
  type LeftRole,
  type SessionIdentity,
  type Target,
} from '../target/target.js';
import type { DaemonMetrics } from '../metrics.js';
import { quoteIdent, searchPathAsUser } from '../sql/quote.js';
import type { BatchStatement, Statement } from '../sql/statement.js';
import { aboutDatabase, SharedServer, type SharedServers } from './shared-servers.js';

const REAPPLIED = 're-applied after an interrupted run: it may have applied before, and replaying it is harmless';
/** How many times a refused batch asks for the owner look while another holds it (ownersFirst). */
const OWNER_LOOK_ATTEMPTS = 3;
/** Outcomes after which a batch is done with in an environment, and never run there again. */
const FINISHED = new Set(['success', 'skipped', 'dry_run']);

export interface ApplierDeps {
  /** The operators' switches, kept current by the daemon. */
  switches: () => Switches;
  environment: EnvironmentConfig;
  settings: Settings;
  store: SourceStore;
  /** New batches, read once for every environment. */
  feed: BatchFeed;
  target: Target;
  plan: (batch: Batch) => Promise<BatchPlan>;
  roles: RoleScope;
  /** The name of the source's bootstrap superuser (plan/role-ownership.ts). */
  sourceSuperuser: string;
  /** The servers the daemon's environments are on: environments of one server share its roles. */
  servers: SharedServers;
  metrics: Pick<DaemonMetrics, 'batchSeen' | 'execution'>;
  logger: Logger;
}

type Outcome = 'next' | 'wait';
type Fields = Partial<ExecutionRecord> & Pick<ExecutionRecord, 'status'>;

/** A batch as worked out for this environment, before anything runs on the target. */
type Prepared =
  | {
      batch: Batch;
      /** Nothing runs (not replayable, nothing admitted, dry run): the outcome to record, and its log line. */
      settled: { fields: Fields; say: (log: Logger) => void };
      failed?: undefined;
    }
  | {
      batch: Batch;
      settled?: undefined;
      /** The environment could not be read to work it out: a failure to record, as a run's would be. */
      failed: NonNullable<ExecutionResult['error']>;
      /** Where another environment's database refused a revoke of the batch: why it was not made with CASCADE there, as Run's. */
      unsettled?: string[];
    }
  | {
      batch: Batch;
      settled?: undefined;
      failed?: undefined;
      identity: SessionIdentity;
      statements: Statement[];
      notes: string[];
      reapplying: boolean;
      /** What the batch does to the roles permsync manages here, to be recorded once it applied. */
      ownership: OwnershipVerdict;
      /** Why circles of grant options its revokes take apart are left for the target to refuse (plan/cycles.ts). */
      unsettled: string[];
    };
type Run = Extract<Prepared, { identity: SessionIdentity }>;
/** A role the role watcher's DROP ROLE names, with its oid on the source (when it was written). */
type DroppedRole = { role: string; sourceOid: number | undefined };

/**
 * Carries batches to one environment, strictly in source commit order. It waits (and
 * retries) on a failure rather than skip ahead, so order is never broken; other
 * environments have their own applier and never wait for this one.
 */
export class EnvironmentApplier {
  /** Last commit_seq carried; undefined until start() has read where to resume. */
  private cursor: bigint | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  /** When the last drain started (performance.now()); -Infinity once one found nothing. */
  private drainedAt = -Infinity;
  /** A wake that came within the group window, put off to its end. */
  private windowTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** When set, the environment waits for a retry at this time (ms since epoch). */
  private retryAt: number | undefined;
  private attempts = 0;
  /** Batches up to here may have applied in a run that was cut off before logging them. */
  private interruptedThrough = 0n;
  /** Through this commit_seq, batches the target committed whose success the source failed to log. */
  private appliedUnloggedThrough = 0n;
  /** How far this run has said it is about to apply. */
  private markedThrough = 0n;
  /** Set while the environment holds on a permanent failure. */
  private heldOn: string | undefined;
  /** An operator's retry that came while a drain ran: carried out when it ends. */
  private retryAsked = false;
  /** The last attempt could not connect: the retry tick probes the environment (see retryIfDue). */
  private unreachable = false;
  /** The environment's server, with the roles permsync manages there (plan/role-ownership.ts); its own until it joins the others of its server. */
  private server = new SharedServer();
  private joined = false;
  /** The outcome last logged here: a role watcher's batch counts as applied to the server only on a success. */
  private lastRecorded: string | undefined;
  /** The environment's roles named by the batches being carried, read once per step: oid, or null when absent. */
  private readonly targetRoles = new Map<string, number | null>();
  /** The roles the batch being applied drops under a name of permsync's (handingOver), by that name as its SQL quotes it. */
  private readonly asides = new Map<string, string>();
  private probing = false;
  private readonly rules: CompiledRule[];
  /** The rules as text: environments of one server with the same rules apply a role change once for all. */
  private readonly rulesKey: string;
  private readonly log: Logger;

  constructor(private readonly deps: ApplierDeps) {
    this.rules = compileRules(deps.environment.rules);
    this.rulesKey = JSON.stringify(deps.environment.rules);
    this.log = deps.logger.child({ environment: deps.environment.name });
  }

  get name(): string {
    return this.deps.environment.name;
  }

  async start(): Promise<void> {
    const { after, inFlightThrough } = await this.deps.store.resumePoint(this.name);
    this.server.managed = await this.deps.store.managedRoles(this.name);
    this.cursor = after;
    this.interruptedThrough = inFlightThrough;
    this.markedThrough = inFlightThrough;
    this.log.info({ resumeAfterCommitSeq: after.toString() }, 'applier started');
    this.wake();
  }

  /**
   * Look for new batches (a notification, a poll, a reconnect). A drain starts no sooner
   * than group_window_ms after the previous one started: during a burst the batches that
   * commit meanwhile go in one target transaction (carryTogether) instead of one or two
   * each, while the first batch after a quiet spell still goes at once.
   */
  wake(): void {
    if (this.cursor === undefined || this.stopped || this.retryAt !== undefined || this.heldOn) return;
    if (!this.allowed()) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    const wait = this.drainedAt + this.deps.settings.groupWindowMs - performance.now();
    if (wait > 0) {
      this.windowTimer ??= setTimeout(() => {
        this.windowTimer = undefined;
        this.wake();
      }, wait);
      return;
    }
    clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
    this.drainedAt = performance.now();
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.retryAsked) {
        this.retryAsked = false;
        this.rerun = false;
        this.retryNow();
        return;
      }
      if (this.rerun) {
        this.rerun = false;
        this.wake();
      }
    });
  }

  /**
   * Called every second: an environment waiting for a retry tries again when it is due,
   * or, when it could not be reached, as soon as it accepts a connection again: the backoff
   * spares a target that fails statements, and waiting it out after an outage only delays
   * the catch-up.
   */
  retryIfDue(now = Date.now()): void {
    if (this.retryAt === undefined) return;
    if (now >= this.retryAt) {
      this.retryAt = undefined;
      this.wakeAtOnce();
      return;
    }
    if (!this.unreachable || this.probing) return;
    this.probing = true;
    void this.deps.target.probe().then((answers) => {
      this.probing = false;
      if (answers && this.retryAt !== undefined) this.retryIfDue(this.retryAt);
    });
  }

  /** Disabled or paused: batches wait in the table, in order, until sync resumes. */
  private allowed(): boolean {
    const switches = this.deps.switches();
    return switches.syncEnabled && !switches.paused.has(this.name);
  }

  /**
   * An operator's retry or skip (retry_failed(), skip_batch(), read from the source): try
   * the held or waiting batch again now, or pass it if it was skipped. One that comes while
   * a drain runs waits for its end, so that the drain's outcome cannot undo it.
   */
  retryNow(): void {
    if (this.running) {
      this.retryAsked = true;
      return;
    }
    if (this.heldOn) this.log.info({ batchId: this.heldOn }, 'an operator asked to retry or skip the batch this environment held on');
    this.heldOn = undefined;
    this.retryAt = undefined;
    this.attempts = 0;
    this.wakeAtOnce();
  }

  /** The environment has been waiting (a retry, an operator): its backlog has formed already. */
  private wakeAtOnce(): void {
    this.drainedAt = -Infinity;
    this.wake();
  }

  /** Stops after the batch in flight; resolves when it is recorded. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.windowTimer);
    this.windowTimer = undefined;
    await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped) {
        const cursor = this.cursor ?? 0n;
        // Past what it has marked in flight and what has an outcome logged here (an
        // operator may skip ahead), no batch has been tried or skipped: the shared feed
        // serves it. Before that, a batch's logged outcome (a failure, a skip) matters.
        const logged = this.deps.switches().loggedThrough.get(this.name) ?? 0n;
        const { batches, more } =
          cursor < this.markedThrough || cursor < logged ? await this.readOwn(cursor) : await this.deps.feed.after(cursor, this.name);
        if (batches.length === 0) {
          // All quiet (a poll, say, found nothing): the next batch goes at once.
          this.drainedAt = -Infinity;
          return;
        }
        for (const b of batches) this.deps.metrics.batchSeen(b.id, b.origin);
        for (let i = 0; i < batches.length;) {
          if (this.stopped || !this.allowed()) return;
          const { carried, outcome } = await this.carryNext(batches.slice(i));
          if (carried > 0) {
            i += carried;
            this.cursor = BigInt((batches[i - 1] as Batch).commitSeq);
          }
          if (outcome === 'wait') return;
          this.attempts = 0;
        }
        // A short page was all there was: what commits from now on wakes the applier, and
        // waits for the group window rather than go off one batch at a time.
        if (!more) return;
      }
    } catch (error) {
      // The source itself failed (reading batches or writing the log): try again later
      // from the same place. What the target committed but the log missed is re-applied,
      // and said so (appliedUnloggedThrough).
      this.log.error({ err: error }, 'source unavailable while applying; will retry');
      this.retryLater();
    }
  }

  private async readOwn(cursor: bigint): Promise<BatchRead> {
    const batches = await this.deps.store.batchesAfter(cursor, this.name, BATCH_PAGE);
    return { batches, more: batches.length === BATCH_PAGE };
  }

  /**
   * Carries the next batches: several together when there is a backlog (carryTogether),
   * else the first alone, which is also how the batch an environment retries goes.
   */
  private async carryNext(pending: Batch[]): Promise<{ carried: number; outcome: Outcome }> {
    const first = pending[0] as Batch;
    if (FINISHED.has(first.previousStatus ?? '')) {
      // Finished here already (an operator skipped it, say): never run again, nor logged over.
      this.log.info({ batchId: first.id, commitSeq: first.commitSeq, status: first.previousStatus }, 'batch finished here already: not run');
      await this.deps.store.clearRetry(first, this.name);
      return { carried: 1, outcome: 'next' };
    }
    if (!this.joined) await this.joinServer();
    if (first.origin !== 'role_watcher') return this.carryStep(pending);
    // One environment of the server at a time (one may join while another applies): the
    // first to come applies the change to the server, and the others find it applied.
    return this.server.exclusive(async () => {
      this.lastRecorded = undefined;
      const step = await this.carryStep([first]);
      // Not a failure passed over (on_permanent_failure: continue), a dry run, nor a skip.
      if (step.carried > 0 && this.lastRecorded === 'success') this.server.markApplied(this.rulesKey, BigInt(first.commitSeq), this.name);
      return step;
    });
  }

  /**
   * Joins the environments of its server (SharedServers), once the server says which it is;
   * until then (it cannot be reached) it goes on alone, and asks again at the next batch.
   */
  private async joinServer(): Promise<void> {
    const read = await this.deps.target.serverIdentity();
    if ('error' in read) return;
    const member = { name: this.name, target: this.deps.target, rules: this.rulesKey };
    this.server = await this.deps.servers.join(read.identity, member, this.cursor ?? 0n);
    this.joined = true;
    const others = this.server.others(this.name).map((m) => m.name);
    if (others.length > 0) this.log.info({ sharesServerWith: others }, "environments on the same server: they share the server's roles");
  }

  /** Carries the next batches once it is this environment's turn to (carryNext). */
  private async carryStep(pending: Batch[]): Promise<{ carried: number; outcome: Outcome }> {
    // The environment's roles these batches name, read in one round trip, and afresh at
    // each step: a role its own administrators create or drop is seen at the next batch.
    this.targetRoles.clear();
    const names = new Set<string>();
    for (const batch of pending) for (const name of namesToLookUp((await this.deps.plan(batch)).replay, authorOf(batch))) names.add(name);
    const unread = await this.readTargetRoles([...names]);
    if (unread) {
      const batch = pending[0] as Batch;
      const now = new Date();
      const outcome = await this.settle(
        batch,
        this.log.child({ batchId: batch.id, commitSeq: batch.commitSeq }),
        {
          appliedSql: '',
          notes: [],
          startedAt: now,
          finishedAt: now,
          durationMs: 0,
          connectionTimeMs: undefined,
          serverVersion: undefined,
          error: unread,
        },
        [],
        false,
      );
      return { carried: 0, outcome };
    }
    if (this.attempts === 0 && pending.length > 1) {
      const together = await this.carryTogether(pending);
      if (together) return together;
    }
    const outcome = await this.carry(pending[0] as Batch);
    return { carried: outcome === 'next' ? 1 : 0, outcome };
  }

  /**
   * A backlog's next batches that can share a transaction on the target, run in one round
   * trip and logged in one statement, each with its own execution_log row. Undefined when
   * fewer than two can go together. If the transaction fails, nothing of it applied: the
   * batches are carried one by one instead, which applies those before the one at fault and
   * gives that one its own failure, with the usual retry or hold.
   */
  private async carryTogether(pending: Batch[]): Promise<{ carried: number; outcome: Outcome } | undefined> {
    const group: Exclude<Prepared, { failed: object }>[] = [];
    for (const batch of pending) {
      // A role watcher's batch goes alone (carryNext).
      if (FINISHED.has(batch.previousStatus ?? '') || batch.origin === 'role_watcher') break;
      // A batch that converges or bootstraps reads the environment's state: it goes alone, once those before it applied.
      const plan = await this.deps.plan(batch);
      if (plan.converge || plan.bootstrap) break;
      const prepared = await this.prepare(batch);
      if (prepared.failed) break;
      if (!prepared.settled && !canRunTogether(prepared.statements)) break;
      group.push(prepared);
    }
    if (group.length < 2) return undefined;
    const now = new Date();
    const runs = group.flatMap((p): Run[] => (p.settled ? [] : [p]));
    const markedBefore = this.markedThrough;
    if (runs.length) await this.markInFlight(group[group.length - 1]?.batch as Batch);
    const result = runs.length ? await this.deps.target.executeTogether(runs) : undefined;
    if (result?.error) {
      // The target refused a statement, so the group's transaction rolled back: none of it
      // applied, and the mark goes back for the batches below to be marked one by one as
      // each is tried. (After a lost connection it may have committed: the mark stays.)
      if (refusedByServer(result.error) && this.markedThrough > markedBefore) {
        await this.deps.store.unmarkInFlight(this.name, markedBefore.toString());
        this.markedThrough = markedBefore;
      }
      this.log.warn(
        { batches: runs.length, sqlstate: result.error.code, err: result.error.message },
        'batches run together failed: carrying them one by one',
      );
      let carried = 0;
      for (const { batch } of group) {
        if (this.stopped || !this.allowed() || (await this.carry(batch)) === 'wait') return { carried, outcome: 'wait' };
        carried++;
      }
      return { carried, outcome: 'next' };
    }
    const range = `${group[0]?.batch.commitSeq}..${group[group.length - 1]?.batch.commitSeq}`;
    let next = 0;
    const ranFields = (p: Run): Fields => {
      const ran = result as GroupResult; // set whenever a batch of the group ran
      const { appliedSql, notes } = ran.batches[next++] as GroupResult['batches'][number];
      const together = `applied in one transaction with the other batches of commit_seq ${range} (${runs.length} batches, ${Math.round(ran.durationMs)} ms in all)`;
      return {
        status: 'success',
        appliedSql,
        resultMessage: [...p.notes, ...notes, together].join('; '),
        startedAt: ran.startedAt,
        finishedAt: ran.finishedAt,
        // Each row's share, so that durations still add up to the time the environment spent.
        durationMs: ran.durationMs / runs.length,
        ...(ran.serverVersion !== undefined && { serverVersion: ran.serverVersion }),
        ...(ran.connectionTimeMs !== undefined && { connectionTimeMs: ran.connectionTimeMs }),
      };
    };
    // A batch settled here (skipped, say) after one that ran is logged as of the run's
    // start, so that started_at follows commit order through the group.
    let at = now;
    await this.record(
      group.map((p) => {
        if (p.settled) return this.recordFor(p.batch, p.settled.fields, at);
        const fields = ranFields(p);
        at = fields.startedAt ?? at;
        return this.recordFor(p.batch, fields, at);
      }),
    );
    for (const p of runs) await this.afterApplied(p.ownership);
    for (const p of group) p.settled?.say(this.log.child({ batchId: p.batch.id, commitSeq: p.batch.commitSeq }));
    if (result) this.log.info({ batches: runs.length, commitSeqs: range, durationMs: Math.round(result.durationMs) }, 'applied together');
    this.unreachable = false;
    return { carried: group.length, outcome: 'next' };
  }

  /**
   * Says on the source, before the target sees it, how far this environment is about to
   * apply: after a crash, batches up to there may have applied without a logged outcome.
   */
  private async markInFlight(last: Batch): Promise<void> {
    const through = BigInt(last.commitSeq);
    if (through <= this.markedThrough) return;
    await this.deps.store.markInFlight(this.name, through.toString());
    this.markedThrough = through;
  }

  private recordFor(batch: Batch, fields: Fields, now: Date): ExecutionRecord {
    return {
      batch,
      environment: this.name,
      appliedSql: null,
      startedAt: now,
      finishedAt: new Date(),
      durationMs: 0,
      resultMessage: null,
      ...fields,
    };
  }

  /**
   * Logs outcomes; returns whether every one was written. One is not when an operator
   * skipped the batch meanwhile (while it ran here): the skip stands, and is said so.
   */
  private async record(records: ExecutionRecord[]): Promise<boolean> {
    let superseded: Set<string>;
    try {
      superseded = await this.deps.store.recordExecutions(records);
      this.lastRecorded = records[records.length - 1]?.status;
    } catch (error) {
      const applied = records.filter((r) => r.status === 'success').map((r) => BigInt(r.batch.commitSeq));
      for (const seq of applied) if (seq > this.appliedUnloggedThrough) this.appliedUnloggedThrough = seq;
      throw error;
    }
    for (const r of records) {
      // Counted once the source holds them, so the counters agree with execution_log.
      if (!superseded.has(r.batch.id)) this.deps.metrics.execution(this.name, r.status, r.durationMs);
      else {
        this.log.warn(
          { batchId: r.batch.id, commitSeq: r.batch.commitSeq, status: r.status },
          'an operator skipped this batch while it ran here: the skip stays its outcome',
        );
      }
    }
    return superseded.size === 0;
  }

  /** What the batch comes to here: rules, dry run, as whom it runs. */
  private async prepare(batch: Batch): Promise<Prepared> {
    const plan = await this.deps.plan(batch);
    if (plan.unreplayable !== undefined && !plan.converge) {
      return {
        batch,
        settled: {
          fields: { status: 'skipped', resultMessage: `not replayable: ${plan.unreplayable}` },
          say: (log) => log.warn({ reason: plan.unreplayable }, 'batch cannot be replayed as statements'),
        },
      };
    }
    const admitted: Statement[] = [];
    const notes = plan.skipped.map((s) => `statement ${s.ordinal} (${s.tag}) skipped: ${s.reason}`);
    // Reached the target in a run cut off before its outcome was logged: it may have applied.
    // A batch with a logged outcome (a failure, say) did not, and is no re-application.
    const seq = BigInt(batch.commitSeq);
    const reapplying = seq <= this.appliedUnloggedThrough || (seq <= this.interruptedThrough && !batch.previousStatus);
    if (reapplying) notes.unshift(REAPPLIED);
    let statements: Statement[];
    if (plan.bootstrap) {
      const planned = await this.bootstrapping(notes);
      if ('error' in planned) return { batch, failed: planned.error };
      if (planned.statements.length === 0) {
        return {
          batch,
          settled: {
            fields: { status: 'success', resultMessage: notes.join('; ') },
            say: (log) => log.info({ notes }, 'bootstrap: nothing to change'),
          },
        };
      }
      statements = planned.statements;
    } else if (plan.converge) {
      const converged = await this.converging(plan.unreplayable as string, plan.converge, notes);
      if ('error' in converged) return { batch, failed: converged.error };
      if (converged.statements.length === 0) {
        // Nothing differs; or what differs is only what this environment lacks, and nothing ran.
        const status = converged.missing > 0 ? 'skipped' : 'success';
        return {
          batch,
          settled: { fields: { status, resultMessage: notes.join('; ') }, say: (log) => log.info({ notes }, 'converged: nothing to change') },
        };
      }
      statements = converged.statements;
    } else if (
      batch.origin === 'role_watcher' &&
      this.server.shared &&
      !this.deps.settings.dryRun &&
      !this.deps.switches().dryRun &&
      this.server.appliedBy(this.rulesKey, seq) !== undefined
    ) {
      // Another environment of the server applied its role changes there: what is left is
      // about this environment's own database.
      const by = this.server.appliedBy(this.rulesKey, seq) as string;
      notes.push(`its role changes were applied to this server by environment ${by}, a database of the same server`);
      statements = plan.replay.filter(aboutDatabase);
      if (statements.length === 0) {
        return {
          batch,
          settled: {
            fields: { status: 'success', resultMessage: notes.join('; ') },
            say: (log) => log.info({ by }, 'role changes applied to this server already'),
          },
        };
      }
    } else {
      const released = await this.releasingDroppedRoles(batch, plan.replay, notes);
      if ('error' in released) return { batch, failed: released.error, unsettled: released.unsettled };
      statements = released.statements;
    }
    for (const statement of statements) {
      const admission = admit(statement, this.rules, this.deps.roles);
      if (!admission.admitted) notes.push(`statement ${statement.ordinal} (${statement.kind}) not carried: ${admission.reason}`);
      else {
        admitted.push(admission.statement);
        if (admission.leftOut) notes.push(`statement ${statement.ordinal} (${statement.kind}) carried ${admission.leftOut}`);
      }
    }
    // A non-superuser's statement runs as that role, so grantor and permission checks
    // are the ones it had on the source; a superuser's runs as the sync user, with
    // "$user" in its search_path still meaning the superuser's schema. A converging batch
    // runs as the sync user, as reconcile does: plan/converge.ts has kept to what its author
    // could change, and its statements name every object in full.
    const generated = plan.converge !== undefined || plan.bootstrap === true;
    const runAs = generated ? undefined : authorOf(batch);
    const ownership = admitted.length > 0 ? await this.judge(batch, admitted, runAs) : undefined;
    notes.push(...(ownership?.notes ?? []));
    if (!ownership || ownership.kept.length === 0) {
      return {
        batch,
        settled: {
          fields: { status: 'skipped', resultMessage: notes.join('; ') || 'no permission statement' },
          say: (log) => log.info({ notes }, 'nothing to carry for this environment'),
        },
      };
    }
    const cycles = await this.settlingCycles(ownership.kept, notes);
    if ('error' in cycles) return { batch, failed: cycles.error };
    cycles.statements = await this.handingOver(cycles.statements, notes);
    const identity: SessionIdentity = generated
      ? { searchPath: 'pg_catalog' }
      : runAs !== undefined
        ? { searchPath: batch.searchPath, runAs }
        : { searchPath: searchPathAsUser(batch.searchPath, batch.currentUser) };
    if (this.deps.settings.dryRun || this.deps.switches().dryRun) {
      const { appliedSql } = this.deps.target.plan(identity, cycles.statements);
      return {
        batch,
        settled: {
          fields: { status: 'dry_run', appliedSql, resultMessage: ['dry run: nothing executed', ...notes].join('; ') },
          say: (log) => log.info({ sql: appliedSql }, 'dry run: would apply'),
        },
      };
    }
    return { batch, identity, statements: cycles.statements, notes, reapplying, ownership, unsettled: cycles.unsettled };
  }

  /**
   * The role watcher's revokes that take apart a circle of grant options, settled on this
   * environment's ACLs (plan/cycles.ts).
   */
  private async settlingCycles(
    statements: Statement[],
    notes: string[],
  ): Promise<{ statements: Statement[]; unsettled: string[] } | { error: NonNullable<ExecutionResult['error']> }> {
    const settled = await settledOn(this.deps.target, statements);
    if ('error' in settled) return settled;
    notes.push(...settled.notes);
    return settled;
  }

  /**
   * What brings this environment, just added to the configuration, to the source's state:
   * drift's plan, as `permsync reconcile` makes it (roles of its own and extra roles left
   * alone), with notes saying what it changed and what it left. Read before the source, as
   * reconcile does, with verifiers where settings.sync_passwords carries them.
   */
  private async bootstrapping(notes: string[]): Promise<{ statements: Statement[] } | { error: NonNullable<ExecutionResult['error']> }> {
    const verifiers = this.deps.settings.syncPasswords;
    const target = await this.deps.target.catalog(verifiers);
    if ('error' in target) return target;
    const source = await this.deps.store.catalog(verifiers);
    const { environment, settings, roles } = this.deps;
    const report = buildReport(environment, settings, roles, source, target.catalog, { dropExtraRoles: false, managed: this.server.managed });
    const held = report.differences.filter((d) => d.held !== undefined).length;
    notes.push(
      report.plan.length > 0
        ? `added to the configuration: brought to the source's state, ${report.differences.length} difference(s), ${report.plan.length} statement(s)`
        : "added to the configuration: it matches the source's state already",
      ...(held > 0 ? [`${held} difference(s) left alone (roles of its own, extra roles): \`permsync drift --env ${this.name}\` lists them`] : []),
      ...report.notes,
    );
    return { statements: report.plan.map((s, i) => ({ ...s, ordinal: i + 1 })) };
  }

  /**
   * What converges here the objects a batch touched that statement replay cannot carry
   * (plan/converge.ts), with notes saying what it did and did not converge. The environment is
   * read before the source, as reconcile does: what the daemon carried there is then on
   * the source too, and never taken back.
   */
  private async converging(
    reason: string,
    scope: ConvergeScope,
    notes: string[],
  ): Promise<{ statements: Statement[]; missing: number } | { error: NonNullable<ExecutionResult['error']> }> {
    const target = await this.deps.target.catalog();
    if ('error' in target) return target;
    // The identities of what the role watcher found, in the snapshot the objects' names are read in.
    const source = await this.deps.store.catalog(false, watchedAddresses(scope));
    const authority = await this.deps.store.authority(actorsOf(scope), ownerlessSequences(source));
    const { environment, settings, roles } = this.deps;
    const argumentTypes = await this.deps.store.argumentTypes(argumentTypeLookups(scope));
    const converged = planConverge(scope, {
      environment,
      settings,
      roles,
      managed: this.server.managed,
      source,
      target: target.catalog,
      authority,
      argumentTypes,
      identities: source.identities ?? new Map<string, string | null>(),
    });
    const why = `statement replay cannot carry the batch: ${reason.replace(/; the next drift check shows what differs$/, '')}`;
    const missing = converged.missing.slice(0, 5).join(', ') + (converged.missing.length > 5 ? `, and ${converged.missing.length - 5} more` : '');
    notes.push(
      converged.objects > 0
        ? `converged ${converged.objects} object(s) it touched to the source's state, as ${why}`
        : converged.missing.length > 0
          ? `nothing converged, as ${why}`
          : `the objects it touched match the source's state here (${why})`,
      ...converged.notes,
      ...(missing
        ? [
            `not converged: ${missing}, which this environment does not have (once its migration creates them, \`permsync reconcile --env ${this.name}\` brings their privileges)`,
          ]
        : []),
      ...scope.unknown.map((what) => `not converged: ${what}; the next drift check shows what differs`),
    );
    // Numbered as a batch's statements are, for the notes.
    return { statements: converged.statements.map((s, i) => ({ ...s, ordinal: i + 1 })), missing: converged.missing.length };
  }

  /**
   * Carries out here, ahead of their owner_watcher batches, the REASSIGN OWNED moves a DBA's
   * batch needs that this environment refused (42501), run as `author` (`SET ROLE`).
   * REASSIGN OWNED fires no event trigger: the role watcher's batch that carries it comes
   * after a command run at once as the new owner (`REASSIGN OWNED BY app_v1 TO app_v2; SET
   * ROLE app_v2; GRANT ...`). So the owner look runs now, and the moves to `author`, or to a
   * role whose privileges it has on the source, of the owner_watcher batches among the next
   * page converge here first, by their own guards (plan/converge.ts, Touch.found: only where
   * this environment's owner is the former one, and the source's is the new one still);
   * they run again in their turn and find nothing to change. Only for a DBA's batch (the
   * caller checks): a login's refused batch would let her move what the batches in between
   * need as they are (a DBA's `SET ROLE app_v1; GRANT` before the REASSIGN OWNED to her),
   * and ask for looks and catalog reads at will. Nor a move from a role whose privileges a
   * batch in between runs with, for the same reason (movesAhead). Not only the moves of the
   * objects the batch names: what a command needs reaches further (the USAGE on a schema
   * its owner has, a sequence that follows its table). True when something changed.
   */
  private async ownersFirst(batch: Batch, author: string, notes: string[]): Promise<boolean> {
    try {
      // The roles whose privileges the author has on the source (itself included), as
      // PostgreSQL counts them for a grant: it grants as the owner when it inherits it. An
      // author the source no longer knows by that name and oid is given nothing.
      const oid = batch.currentUserOid;
      const holds = oid === undefined ? undefined : (await this.deps.store.authority([{ name: author, oid }], [])).roles.get(author)?.memberOf;
      if (holds === undefined) return false;
      // Another look held it (the role watcher's): the next, a second later, finds it done.
      let looked = await this.deps.store.lookForOwnerChanges();
      for (let attempt = 1; !looked && attempt < OWNER_LOOK_ATTEMPTS; attempt++) looked = await this.deps.store.lookForOwnerChanges();
      const { watchers, scope } = await this.movesAhead(batch, holds);
      const first = watchers[0];
      if (first === undefined) return false;
      const converged = await this.converging('REASSIGN OWNED fires no event trigger', scope, []);
      if ('error' in converged || converged.statements.length === 0) return false;
      const admitted = converged.statements.flatMap((statement) => {
        const admission = admit(statement, this.rules, this.deps.roles);
        return admission.admitted ? [admission.statement] : [];
      });
      const ownership = admitted.length > 0 ? await this.judge(first, admitted, undefined) : undefined;
      if (!ownership || ownership.kept.length === 0) return false;
      const ran = await this.deps.target.execute({ searchPath: 'pg_catalog' }, ownership.kept);
      const ids = watchers.map((w) => w.id).join(', ');
      if (ran.error) {
        this.log.warn({ batchIds: ids, sqlstate: ran.error.code, err: ran.error.message }, 'owner changes found after a refused batch did not apply');
        return false;
      }
      notes.push(
        `refused at first (${SQLSTATE.insufficientPrivilege}): the owner changes REASSIGN OWNED made before it on the source, which reach the targets in the role watcher's batch(es) ${ids} after it, ` +
          `applied here first for the objects handed to "${author}" or a role whose privileges it has (${ownership.kept.length} statement(s)), and the batch run again`,
      );
      this.log.info(
        { batchId: batch.id, ownerWatcherBatchIds: ids, sql: ran.appliedSql },
        'owner changes a refused batch needed applied ahead of their batch',
      );
      return true;
    } catch (error) {
      // The source did not answer: the batch's own failure stands.
      this.log.warn({ err: error }, 'could not look for owner changes a refused batch may need');
    }
    return false;
  }

  /**
   * The moves ownersFirst takes ahead, read as one scope (one read of each catalog, whatever
   * the number of batches): those to a role in `holds` of the unfinished owner_watcher
   * batches among the next page, but for a move from a role whose privileges a batch in
   * between runs with, as a role that is no superuser (the author's own batches too): that
   * batch may need it as it is (plan/converge.ts, by ConvergeScope.ahead). Memberships are
   * read as the source has them now, and as the target has them before the refused batch.
   */
  private async movesAhead(batch: Batch, holds: Set<string>): Promise<{ watchers: Batch[]; scope: ConvergeScope }> {
    const later = await this.deps.store.batchesAfter(BigInt(batch.commitSeq), this.name, BATCH_PAGE);
    const authors = new Map<string, number>();
    for (const b of later) {
      const runAs = authorOf(b);
      if (runAs !== undefined && b.currentUserOid !== undefined) authors.set(runAs, b.currentUserOid);
    }
    const authority =
      authors.size > 0
        ? await this.deps.store.authority(
            [...authors].map(([name, oid]) => ({ name, oid })),
            [],
          )
        : undefined;
    const watchers: Batch[] = [];
    const touches: ConvergeScope['touches'] = [];
    const actorOids = new Map<string, number>();
    const between: NonNullable<ConvergeScope['ahead']>['between'] = [];
    for (const b of later) {
      if (b.origin !== 'owner_watcher') {
        const runAs = authorOf(b);
        // The author's own batches too: a role granted to it since may hand it a move of
        // what it ran with then. One the source no longer knows by that name and oid (a
        // role dropped since, whose grants went with it) keeps at least its own objects.
        if (runAs !== undefined) between.push({ author: runAs, holds: authority?.roles.get(runAs)?.memberOf ?? new Set([runAs]) });
        continue;
      }
      if (FINISHED.has(b.previousStatus ?? '')) continue;
      const scope = (await this.deps.plan(b)).converge;
      const moves = scope?.touches.flatMap((t) =>
        t.found !== undefined && holds.has(t.actors[0] ?? '') ? [{ ...t, found: { ...t.found, behind: between.length } }] : [],
      );
      if (!scope || !moves || moves.length === 0) continue;
      watchers.push(b);
      touches.push(...moves);
      for (const [name, actorOid] of scope.actorOids) actorOids.set(name, actorOid);
    }
    // Those after the last batch of moves taken need nothing as it is before them.
    between.length = Math.min(between.length, touches.at(-1)?.found?.behind ?? 0);
    return { watchers, scope: { touches, unknown: [], actorOids, ahead: { between } } };
  }

  /**
   * The statements that touch only roles permsync may change here (plan/role-ownership.ts).
   * Before calling a role the target's own, the managed roles are read again: an operator
   * may have handed it over since. Conflicts are recorded on the source.
   */
  private async judge(batch: Batch, named: Statement[], author: string | undefined): Promise<OwnershipVerdict> {
    const unread = await this.readTargetRoles(namesToLookUp(named, author));
    if (unread) throw new Error(`the environment's roles could not be read: ${unread.message}`);
    const settle = () => settleGrantors(named, this.presentRoles(), this.owners(), (role) => this.deps.roles.excluded(role));
    let { statements, notes } = settle();
    const authorOid = author === undefined ? undefined : batch.currentUserOid;
    let verdict = judgeStatements(statements, author, this.presentRoles(), this.owners(), authorOid);
    if (verdict.conflicts.length > 0) {
      this.server.managed = await this.deps.store.managedRoles(this.name);
      ({ statements, notes } = settle());
      verdict = judgeStatements(statements, author, this.presentRoles(), this.owners(), authorOid);
      if (verdict.conflicts.length > 0) {
        await this.deps.store.recordRoleConflicts(this.name, batch.id, verdict.conflicts);
        this.log.warn({ batchId: batch.id, conflicts: verdict.conflicts }, "roles of this environment's own are named by the source: left alone");
      }
    }
    if (verdict.disowned.length > 0) {
      // Whether or not the batch runs here: the source's role of that name is another now.
      await this.forgetManaged(verdict.disowned);
      this.log.warn(
        { batchId: batch.id, disowned: verdict.disowned },
        "the source gave these names to other roles: the roles here are no longer permsync's",
      );
    }
    verdict.notes.unshift(...notes);
    return verdict;
  }

  /** Looks up the roles not read yet in this step; the failure, if the environment could not be asked. */
  private async readTargetRoles(names: string[]): Promise<ExecutionResult['error'] | undefined> {
    const missing = names.filter((name) => !this.targetRoles.has(name));
    if (missing.length === 0) return undefined;
    const read = await this.deps.target.roleOids(missing);
    if ('error' in read) return read.error;
    for (const name of missing) this.targetRoles.set(name, read.roles.get(name) ?? null);
    return undefined;
  }

  private owners(): RoleOwners {
    return { managed: this.server.managed, sourceSuperuser: this.deps.sourceSuperuser };
  }

  private presentRoles(): Map<string, number> {
    return new Map([...this.targetRoles].flatMap(([name, oid]) => (oid === null ? [] : [[name, oid] as [string, number]])));
  }

  /**
   * Records, before the target commits, the roles the batch created there as permsync's.
   * A CREATE ROLE that met a role of that name (created there since the lookup) would
   * have the rest of the batch change that role: the transaction is rolled back instead,
   * and the retry judges the batch again, finding the role the target's own.
   */
  private recordingCreatedRoles(verdict: OwnershipVerdict): BeforeCommit | undefined {
    if (verdict.creates.length === 0) return undefined;
    return async (session, took, left) => {
      // A creation not run since its name is a role left here (Target.execute) raced nothing.
      const raced = verdict.creates.filter((c) => !took.includes(c.statement) && !left.has(c.role)).map((c) => c.role);
      if (raced.length > 0)
        throw new TransientError(
          `role ${raced.map((r) => `"${r}"`).join(', ')} appeared on the environment while this batch was being applied: it is judged again`,
        );
      const created = verdict.creates.filter((c) => took.includes(c.statement));
      if (created.length === 0) return;
      const sourceOids = new Map(created.map((c) => [c.role, c.statement.sourceOids?.[c.role]]));
      const { rows } = await session.query<{ name: string; oid: number }>(ROLE_OIDS, [[...sourceOids.keys()]]);
      const records = rows.map((r) => ({ ...r, sourceOid: sourceOids.get(r.name) }));
      await this.deps.store.recordManagedRoles(this.name, records, 'created');
      for (const r of records) {
        this.server.managed.set(r.oid, { name: r.name, ...(r.sourceOid !== undefined && { sourceOid: r.sourceOid }) });
        this.targetRoles.set(r.name, r.oid);
      }
    };
  }

  /** These roles here are no longer permsync's: on the source, and in the server's set. */
  private async forgetManaged(roles: { oid: number }[]): Promise<void> {
    await this.deps.store.forgetManagedRoles(
      this.name,
      roles.map((r) => r.oid),
    );
    for (const r of roles) this.server.managed.delete(r.oid);
  }

  /**
   * Once a batch applied: forgets the roles it dropped here, and renames the ones it
   * renamed. `left`: roles whose drop this environment refused, left here locked
   * (Target.execute), which are the environment's own from now on (leftHere).
   */
  private async afterApplied(verdict: OwnershipVerdict, left: LeftRole[] = []): Promise<void> {
    if (verdict.drops.length > 0) {
      await this.forgetManaged(verdict.drops);
      for (const d of verdict.drops) if (!left.some((l) => l.oid === d.oid)) this.targetRoles.set(d.role, null);
    }
    for (const r of verdict.renames) {
      // Not run: a name of a role left here (Target.execute).
      if (left.some((l) => l.role === r.to || l.role === r.from)) continue;
      await this.deps.store.renameManagedRole(this.name, r.oid, r.to);
      const role = this.server.managed.get(r.oid);
      if (role !== undefined) this.server.managed.set(r.oid, { ...role, name: r.to });
      this.targetRoles.set(r.from, null);
      this.targetRoles.set(r.to, r.oid);
    }
  }

  /**
   * The role watcher's DROP ROLE, preceded by what releases the role here as it was
   * released on the source (plan/release.ts). If the environment cannot be read, the
   * DROP ROLE goes alone: it fails there for the same reason, and is retried.
   */
  private async releasingDroppedRoles(
    batch: Batch,
    statements: BatchStatement[],
    notes: string[],
  ): Promise<{ statements: Statement[] } | { error: NonNullable<ExecutionResult['error']>; unsettled: string[] }> {
    if (batch.origin !== 'role_watcher' || !statements.some((s) => s.kind === 'DROP ROLE')) return { statements };
    const out: Statement[] = [];
    // Owner changes to a role the batch creates after a DROP ROLE, by the creation's position: they follow it.
    const later = new Map<number, Statement[]>();
    for (const [index, statement] of statements.entries()) {
      const role = statement.kind === 'DROP ROLE' ? statement.grantees[0] : undefined;
      if (role === undefined) {
        out.push(statement, ...(later.get(index) ?? []));
        continue;
      }
      // What this environment's rules keep from the DROP ROLE they keep from its release elsewhere too.
      const admitted = admit(statement, this.rules, this.deps.roles).admitted;
      const dropped = { role, sourceOid: statement.sourceOids?.[role] };
      const before = statements.slice(0, index);
      let release;
      try {
        const elsewhere = admitted ? await this.releaseOnOthers(dropped, statement.ordinal, { before, batch: statements }, notes) : undefined;
        if (elsewhere) return elsewhere;
        release = await this.release(dropped, { ordinal: statement.ordinal, at: index }, statements, notes);
      } catch (error) {
        // The source's owners kept changing while they were read (catalog/role-holdings.ts): tried again later.
        if (error instanceof TransientError) return { error: classifyError(error), unsettled: [] };
        throw error;
      }
      const { handover } = release;
      out.push(...release.statements, handover ? { ...statement, handovers: handover.statements.length } : statement);
      if (handover) later.set(handover.after, [...(later.get(handover.after) ?? []), ...handover.statements]);
    }
    return { statements: out };
  }

  /**
   * A DROP ROLE whose role's objects go to roles the batch creates after it, under names
   * the same moment frees (release's handover): the role steps aside here under a name of
   * permsync's until the last of them has its objects, and is dropped then, all in the
   * batch's transaction. Only where the environment keeps the DROP ROLE, every one of those
   * owner changes and the CREATE ROLE of each new owner before them; else the owner changes
   * go (the role of that name here may be another), and a drop kept stays in its place: it
   * fails there as before, and says what to do.
   */
  private async handingOver(statements: Statement[], notes: string[]): Promise<Statement[]> {
    this.asides.clear();
    const fors = new Set(statements.flatMap((s) => (s.handsOverFor === undefined ? [] : [s.handsOverFor])));
    if (fors.size === 0) return statements;
    // A name nobody can take ahead of it from the source, where a role of the name would keep the drop in its place.
    const spares = new Map([...fors].map((ordinal) => [ordinal, `permsync_dropping_${randomBytes(8).toString('hex')}`]));
    const unread = await this.readTargetRoles([...spares.values()]);
    if (unread) throw new Error(`the environment's roles could not be read: ${unread.message}`);
    let out = statements;
    for (const [ordinal, spare] of spares) {
      const drop = out.find((s) => s.handovers !== undefined && s.ordinal === ordinal);
      const role = drop?.grantees[0];
      const handovers = out.filter((s) => s.handsOverFor === ordinal);
      const last = handovers.at(-1);
      const at = new Map(out.map((s, i) => [s, i]));
      const createdBefore = (h: Statement) =>
        out.some(
          (s, i) => i < (at.get(h) ?? -1) && i > (at.get(drop as Statement) ?? Infinity) && s.kind === 'CREATE ROLE' && s.grantees[0] === h.roles[0],
        );
      if (
        drop === undefined ||
        role === undefined ||
        last === undefined ||
        !this.presentRoles().has(role) ||
        this.presentRoles().has(spare) ||
        handovers.length !== drop.handovers ||
        !handovers.every(createdBefore)
      ) {
        out = out.filter((s) => s.handsOverFor !== ordinal);
        if (drop !== undefined)
          notes.push(`statement ${ordinal} (DROP ROLE): what "${role}" owns cannot go here to the role the batch creates after it`);
        continue;
      }
      const aside = `ALTER ROLE ${quoteIdent(role)} RENAME TO ${quoteIdent(spare)}`;
      const gone = `DROP ROLE ${quoteIdent(spare)}`;
      this.asides.set(quoteIdent(spare), role);
      out = out.flatMap((s) =>
        s === drop ? [{ ...drop, sql: aside, display: aside }] : s === last ? [s, { ...drop, sql: gone, display: gone, grantees: [spare] }] : [s],
      );
      notes.push(
        `statement ${ordinal} (DROP ROLE): "${role}" goes by "${spare}" in this batch until what it owns went to the role ` +
          `the batch creates after it (${handovers.length} owner change(s)), then is dropped`,
      );
    }
    return out;
  }

  /**
   * Before a DROP ROLE on a server other environments share: releases what the role holds
   * in each of their databases, as in this one (the server refuses to drop a role that any
   * database of it depends on), with the batch's earlier statements about their database
   * that name the role, each in a transaction of its own there; a circle of grant options
   * they take apart is settled on that database's ACLs, as in this one's. The failure, if
   * one refused, with why a revoke there is not made with CASCADE (as Run's `unsettled`).
   */
  private async releaseOnOthers(
    dropped: DroppedRole,
    ordinal: number,
    { before, batch }: { before: Statement[]; batch: Statement[] },
    notes: string[],
  ): Promise<{ error: NonNullable<ExecutionResult['error']>; unsettled: string[] } | undefined> {
    const switches = this.deps.switches();
    // Nothing runs in a dry run, nor in an environment an operator paused or whose rules
    // differ (they may keep what this one releases): there the DROP ROLE fails, and says why.
    if (this.deps.settings.dryRun || switches.dryRun) return undefined;
    const { role } = dropped;
    for (const other of this.server.others(this.name).filter((m) => m.rules === this.rulesKey && !switches.paused.has(m.name))) {
      const releasing = `releasing what "${role}" holds in environment ${other.name}'s database, on the same server`;
      const revokes = await settledOn(
        other.target,
        before.filter((s) => aboutDatabase(s) && s.roles.includes(role)),
      );
      if ('error' in revokes) return { error: { ...revokes.error, message: `${releasing}: ${revokes.error.message}` }, unsettled: [] };
      const { statements: release } = await this.release(dropped, { ordinal }, batch, notes, other);
      const run = [...revokes.statements, ...release];
      if (run.length === 0) continue;
      const result = await other.target.execute({ searchPath: 'pg_catalog' }, run);
      if (result.error) {
        return {
          error: { ...result.error, message: `${releasing}: ${result.error.message}` },
          unsettled: revokes.unsettled.map((why) => `in environment ${other.name}: ${why}`),
        };
      }
      notes.push(
        `statement ${ordinal} (DROP ROLE): first released what "${role}" held in environment ${other.name}'s database, on the same server ` +
          `(${run.length} statement(s): ${result.appliedSql.replace(/\n/g, ' ')})`,
        ...revokes.notes.map((note) => `in environment ${other.name}: ${note}`),
      );
    }
    return undefined;
  }

  /**
   * What releases the dropped role in the environment's database (or in `other`'s, an
   * environment of the same server, before the batch) before its DROP ROLE, the batch's
   * statement `at`: each object to the role heirOnTarget names. In the environment's own
   * database, the objects whose owner the batch creates after the drop (heirCreatedLater)
   * go to it right after its CREATE ROLE, the batch's statement `handover.after`.
   */
  private async release(
    { role, sourceOid }: DroppedRole,
    { ordinal, at }: { ordinal: number | undefined; at?: number },
    batch: Statement[],
    notes: string[],
    other?: { name: string; target: Target },
  ): Promise<{ statements: Statement[]; handover?: { after: number; statements: Statement[] } }> {
    const where = other ? `in environment ${other.name}'s database` : 'here';
    const none = { statements: [] };
    const unread = (error: unknown) => {
      notes.push(`statement ${ordinal} (DROP ROLE): what "${role}" holds ${where} could not be read (${classifyError(error).message})`);
      return undefined;
    };
    // A role of the target's own is not released (nor dropped: see judge()).
    const failed = await this.readTargetRoles([role]);
    if (failed) {
      unread(failed);
      return none;
    }
    if (!mayChange(role, this.presentRoles(), this.owners())) return none;
    const target = await (other?.target ?? this.deps.target).roleHoldings(role).catch(unread);
    if (!target) return none;
    // Only objects the source's role owned go to their owner there: not one of another's that looks like it.
    const owners = await this.deps.store.ownersOf(
      target.held.objects.filter((o) => o.owned),
      sourceOid,
    );
    const policies = await this.deps.store.policiesOf(target.held.policies);
    // The owners' names, the managed roles' for them, and those the batch's renames name (heirOnTarget).
    const standing = standingFor(this.server.managed, new Set([...owners.values()].map((o) => o.oid)));
    const failure = await this.readTargetRoles([
      ...new Set([
        ...[...owners.values()].map((o) => o.name),
        ...[...standing.values()].map((m) => m.name),
        ...batch.flatMap((s) => (s.renamedFrom === undefined ? [] : [s.renamedFrom, ...s.grantees])),
      ]),
    ]);
    if (failure) {
      unread(failure);
      return none;
    }
    // An owner the environment does not have (created on the source since, in a later
    // batch) cannot take the object over, nor can a role of the environment's own: the
    // object stays, and the DROP ROLE says so. One answer per owner, whatever it owns.
    const present = this.presentRoles();
    const heirs = new Map<number, string | undefined>();
    const names = new Map<string, string>();
    const created = new Map<string, string>();
    let after = -1;
    for (const [key, owner] of owners) {
      if (!heirs.has(owner.oid)) heirs.set(owner.oid, heirOnTarget(owner, standing, present, this.owners(), batch));
      const heir = heirs.get(owner.oid);
      const creation = heir === undefined && other === undefined && at !== undefined ? heirCreatedLater(owner, batch, at) : undefined;
      if (heir !== undefined) names.set(key, heir);
      else if (creation !== undefined) {
        created.set(key, creation.name);
        after = Math.max(after, creation.index);
      }
    }
    const context = { targetVersionNum: target.serverVersionNum };
    const release = releaseStatements(role, target.held, names, context, policies);
    if (release.length > 0 && other === undefined) {
      notes.push(
        `statement ${ordinal} (DROP ROLE): ${release.length} statement(s) first release what "${role}" holds here, as the source released it`,
      );
    }
    const handover = handoverStatements(role, target.held, created, context, ordinal ?? 0).map((r) => ({ ...r, ordinal }));
    return { statements: release.map((r) => ({ ...r, ordinal })), ...(handover.length > 0 && { handover: { after, statements: handover } }) };
  }

  private async carry(batch: Batch): Promise<Outcome> {
    const log = this.log.child({ batchId: batch.id, commitSeq: batch.commitSeq });
    const now = new Date();
    const prepared = await this.prepare(batch);
    if (prepared.settled) {
      prepared.settled.say(log);
      return this.finish(batch, prepared.settled.fields, now);
    }
    if (prepared.failed) {
      return this.settle(
        batch,
        log,
        {
          appliedSql: '',
          notes: [],
          startedAt: now,
          finishedAt: new Date(),
          durationMs: 0,
          connectionTimeMs: undefined,
          serverVersion: undefined,
          error: prepared.failed,
        },
        [],
        false,
        prepared.unsettled,
      );
    }
    const { identity, statements: admitted, notes, reapplying, ownership, unsettled } = prepared;
    await this.markInFlight(batch);
    const execute = () => this.deps.target.execute(identity, admitted, this.recordingCreatedRoles(ownership));
    let result = await execute();
    if (
      result.error?.code === SQLSTATE.insufficientPrivilege &&
      identity.runAs !== undefined &&
      batch.origin === 'event_trigger' &&
      batch.sessionUserIsSuperuser &&
      (await this.ownersFirst(batch, identity.runAs, notes))
    ) {
      result = await execute();
    }
    if (!result.error) {
      if (result.left) await this.leftHere(batch, result.left, log);
      await this.afterApplied(ownership, result.left);
    }
    return this.settle(batch, log, result, notes, reapplying, unsettled);
  }

  /**
   * Roles the source dropped that this environment kept (their drop refused, the role
   * left locked): recorded as a conflict for each environment of the server, so that
   * `permsync adopt --all` holds them back, and announced as a failure is, since the
   * source's drop is not carried.
   */
  private async leftHere(batch: Batch, left: LeftRole[], log: Logger): Promise<void> {
    await this.forgetManaged(left);
    const conflicts = left.map((l) => {
      // A role that went by a name of permsync's for the batch (handingOver) keeps it: the source's new role has its own.
      const was = this.asides.get(quoteIdent(l.role));
      const role = was === undefined ? '' : ` (the source's "${was}", renamed for the batch, whose name a new role has)`;
      return { role: l.role, oid: l.oid, reason: `the source dropped this role${role}, and ${this.name} could not: ${l.dependents}` };
    });
    for (const environment of [this.name, ...this.server.others(this.name).map((m) => m.name)]) {
      await this.deps.store.recordRoleConflicts(environment, batch.id, conflicts);
    }
    log.warn({ left: left.map((l) => l.role) }, "roles the source dropped are still needed here: left as the environment's own, locked");
    if (this.deps.settings.notifyOnFailure) await this.deps.store.notifyFailure();
  }

  /** Done with the batch here (its outcome recorded, when given): a retry it had waited for is over. */
  private async finish(batch: Batch, fields: Fields | undefined, at: Date): Promise<Outcome> {
    // Logging an outcome clears the batch's retry in the same statement (RECORD_EXECUTIONS).
    if (fields) await this.record([this.recordFor(batch, fields, at)]);
    else if (this.attempts > 0 || batch.previousStatus === 'failed') await this.deps.store.clearRetry(batch, this.name);
    return 'next';
  }

  /** Records how a batch's run here ended, and what the environment does next; `unsettled`, as Run's. */
  private async settle(
    batch: Batch,
    log: Logger,
    result: ExecutionResult,
    notes: string[],
    reapplying: boolean,
    unsettled: string[] = [],
  ): Promise<Outcome> {
    const record = (fields: Fields) => this.record([this.recordFor(batch, fields, result.startedAt)]);
    const done = (fields?: Fields) => this.finish(batch, fields, result.startedAt);
    this.unreachable = result.error?.unreachable === true;
    const base = {
      appliedSql: result.appliedSql,
      startedAt: result.startedAt,
      finishedAt: result.finishedAt,
      durationMs: result.durationMs,
      ...(result.serverVersion !== undefined && { serverVersion: result.serverVersion }),
      ...(result.connectionTimeMs !== undefined && { connectionTimeMs: result.connectionTimeMs }),
    };
    notes.push(...result.notes);
    if (!result.error) {
      log.info({ durationMs: Math.round(result.durationMs) }, 'applied');
      return done({ ...base, status: 'success', resultMessage: notes.length ? notes.join('; ') : null });
    }

    const error = result.error;
    if (reapplying && OBJECT_GONE.has(error.code ?? '')) {
      // Its first run applied it, and a later batch (also applied then) removed what it names.
      log.warn({ sqlstate: error.code, err: error.message }, 're-applied batch names an object that is gone: already applied');
      return done({ ...base, status: 'skipped', resultMessage: [...notes, `already applied: ${error.message}`].join('; ') });
    }
    const where = error.failedSql !== undefined ? `failed at "${error.failedSql}": ` : '';
    const author = authorOf(batch);
    if (error.kind === 'permanent' && author !== undefined) {
      // Any login may commit what a target refuses (a grant on a large object only the source
      // has): holding on it would let every login stop the environment at will. Its author
      // could do no more there than it did; the drift check shows what differs.
      log.warn({ sqlstate: error.code, err: error.message, author }, "a non-superuser's batch failed here: not held on");
      return done({
        ...base,
        status: 'skipped',
        resultMessage: [...notes, `not applied here, and not held on: its author "${author}" is no superuser; ${where}${error.message}`].join('; '),
        ...(error.code !== undefined && { errorCode: error.code }),
        ...(error.detail !== undefined && { errorDetail: error.detail }),
        ...(error.hint !== undefined && { errorHint: error.hint }),
      });
    }
    const wayOut = dropRoleWayOut(this.name, batch, error, this.asides) ?? chainWayOut(this.name, batch, error, unsettled);
    const recorded = await record({
      ...base,
      status: 'failed',
      resultMessage: where + error.message + (wayOut ? `: ${wayOut.summary}` : ''),
      failureKind: error.kind,
      ...(error.code !== undefined && { errorCode: error.code }),
      ...(error.detail !== undefined && { errorDetail: error.detail }),
      ...((wayOut?.hint ?? error.hint) !== undefined && { errorHint: wayOut?.hint ?? error.hint }),
    });
    log.error({ sqlstate: error.code, kind: error.kind, detail: error.detail, hint: error.hint, err: error.message }, 'apply failed');
    if (!recorded) return done();
    const announce = () => (this.deps.settings.notifyOnFailure ? this.deps.store.notifyFailure() : Promise.resolve());
    if (error.kind === 'permanent') {
      const action = this.deps.environment.onPermanentFailure;
      await announce();
      if (action === 'continue') return done();
      this.heldOn = batch.id;
      log.error('environment held on a permanent failure: later batches wait; fix the cause, then `permsync retry --env`, or `permsync skip`');
      return 'wait';
    }
    const at = this.retryLater();
    await this.deps.store.scheduleRetry(batch, this.name, at, error.code, error.message);
    if (this.attempts === this.deps.settings.maxRetries) {
      log.error({ attempts: this.attempts }, 'still failing after max_retries attempts; will keep trying in order');
      await announce();
    }
    return 'wait';
  }

  /**
   * Exponential backoff from retry_delay_seconds for max_retries attempts; after that
   * the environment keeps trying at the last interval (capped at a minute), since
   * skipping a batch would break order. Reaching max_retries is announced once.
   */
  private retryLater(): Date {
    const { retryDelaySeconds, maxRetries } = this.deps.settings;
    const delay = Math.min(retryDelaySeconds * 1000 * 2 ** Math.min(this.attempts, maxRetries), 60_000);
    this.attempts++;
    this.retryAt = Date.now() + delay;
    return new Date(this.retryAt);
  }
}

/**
 * The role watcher's statements with the revokes that take apart a circle of grant options
 * settled on `target`'s ACLs (plan/cycles.ts): read only where grant-order.ts cut one.
 */
async function settledOn<T extends Statement>(
  target: Target,
  statements: T[],
): Promise<SettledCycles<T> | { error: NonNullable<ExecutionResult['error']> }> {
  const databaseFor = (source: string) => target.databaseFor(source);
  const objects = cycleObjects(statements, databaseFor);
  if (objects.length === 0) return { statements, notes: [], unsettled: [] };
  const read = await target.acls(objects);
  if ('error' in read) return read;
  return settleCycles(statements, databaseFor, read.acls);
}

/**
 * What an operator can do about a DROP ROLE the environment refused because something
 * there still depends on the role (2BP01), after permsync released what it could
 * (plan/release.ts): what depends on it, in short (the detail lists it all), and the way
 * out, for the execution log's message (which `permsync status` shows) and its hint.
 */
function dropRoleWayOut(
  environment: string,
  batch: Batch,
  error: NonNullable<ExecutionResult['error']>,
  asides: ReadonlyMap<string, string>,
): { summary: string; hint: string } | undefined {
  const named = /^DROP ROLE (?:IF EXISTS )?(.+)$/.exec(error.failedSql ?? '')?.[1];
  if (error.code !== SQLSTATE.dependentObjectsStillExist || named === undefined) return undefined;
  // A role that went by a name of permsync's in the batch has its own again: the batch rolled back.
  const aside = asides.get(named);
  const role = aside === undefined ? named : quoteIdent(aside);
  const dependents = dependentLines(error.detail);
  const shown = dependents.slice(0, 3).join('; ') + (dependents.length > 3 ? `; and ${dependents.length - 3} more` : '');
  const retry = `\`permsync retry --env ${environment}\``;
  const skip = `\`permsync skip --env ${environment} --batch ${batch.id} --reason '...'\``;
  return {
    summary: `${aside === undefined ? '' : `(${named} is ${role}, renamed for the batch, which rolled back) `}${shown ? `${shown}. ` : ''}permsync released what the source released; release the rest on ${environment}, then ${retry}, or leave ${role} there with ${skip}`,
    hint:
      `On ${environment}, in each database the detail names, give what ${role} owns there to another role or drop it ` +
      `(REASSIGN OWNED BY ${role} TO <role>; DROP OWNED BY ${role}), then ${retry}. Or leave ${role} on ${environment}: ${skip}; ` +
      `the batch's other changes are then not carried there either, and \`permsync drift --env ${environment}\` shows them.`,
  };
}

/**
 * A revoke the target refuses since a grant made through the option it takes stands there
 * (one the batch does not revoke, or a circle of grant options the daemon does not take
 * apart there: `unsettled` says why, plan/cycles.ts): reconcile takes the chain apart on
 * that environment alone, granting again what the source has and touching no role of its
 * own; where the grant in the way is one of its own roles', revoking it there lets the
 * batch through.
 */
function chainWayOut(
  environment: string,
  batch: Batch,
  error: NonNullable<ExecutionResult['error']>,
  unsettled: string[],
): { summary: string; hint: string } | undefined {
  if (error.code !== SQLSTATE.dependentObjectsStillExist || !/(^|;\s*)REVOKE\b/i.test(error.failedSql ?? '')) return undefined;
  const skip = `\`permsync skip --env ${environment} --batch ${batch.id} --reason '...'\``;
  const reconcile = `\`permsync reconcile --env ${environment} --apply\``;
  const why = unsettled.length > 0 ? ` (it is not revoked with CASCADE there: ${unsettled.join('; ')})` : '';
  return {
    summary: `a grant made through the option this revoke takes stands on ${environment}${why}, and the batch does not take it; skip the batch with ${skip}, then ${reconcile}`,
    hint:
      `Skip this batch (${skip}), then run ${reconcile}: it revokes the chain with CASCADE where a plain revoke is refused, ` +
      `grants again in the same transaction what the source has, and leaves it as it is where the cascade would take a grant ` +
      `to or by a role of ${environment}'s own. Where the grant in the way is one of ${environment}'s own roles', revoking it there ` +
      `and \`permsync retry --env ${environment}\` lets the batch through instead. \`permsync drift --env ${environment}\` shows what differs meanwhile.`,
  };
}

/**
 * The role a batch's statements run as on a target: a non-superuser author's own, so that
 * grantor and permission checks are the ones it had on the source; undefined for a
 * superuser's (run as the sync user) and for generated batches.
 */
function authorOf(batch: Batch): string | undefined {
  return !batch.currentUserIsSuperuser && (batch.origin === 'event_trigger' || batch.origin === 'manual') ? batch.currentUser : undefined;
}
