import type pg from 'pg';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Batch } from './capture/batch.js';
import { withTimeout } from './deadline.js';
import type { LeaderHolder } from './source/leader-lock.js';
import type { ListenerStatus } from './source/listener.js';
import type { ExecutionRecord } from './source/store.js';
import { ENVIRONMENT_BACKLOG } from './source/metrics-queries.js';

/** A GRANT or a role check takes milliseconds; a slow target or a large batch, seconds. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Batch ids remembered so that a batch counts once however many environments read it. */
const SEEN_BATCH_IDS = 10_000;
const ORIGINS: Batch['origin'][] = ['event_trigger', 'role_watcher', 'owner_watcher', 'manual', 'reconcile', 'bootstrap'];
/** An environment's states, as permsync.get_sync_status() names them. */
const STATES = ['ok', 'pending', 'paused', 'sync_disabled', 'failing', 'held', 'disabled'] as const;

export interface DaemonMetricsOptions {
  /** The daemon's source pool: each scrape reads the environments' backlog from it. */
  source: pg.Pool;
  /** The enabled environments of the running configuration; called at each scrape, so a reload shows. */
  environments: () => string[];
  logger: Logger;
  /** The leader lease's holder as this daemon's last claim found it; called at each scrape. */
  leader?: () => LeaderHolder | undefined;
  /** The source listener's state while this daemon applies (a standby does not listen); called at each scrape. */
  listener?: () => ListenerStatus | undefined;
  /** The daemon group, the label of permsync_leader. */
  group: string;
  /** How long a scrape waits for the source before it serves the last values. */
  collectTimeoutMs?: number;
}

interface BacklogRow {
  environment: string;
  pending_batches: number;
  lag_seconds: number;
  retries: number;
  role_conflicts: number;
  state: (typeof STATES)[number];
}

/**
 * The daemon's Prometheus metrics, in a registry of its own (not prom-client's global
 * one), so that several daemons in one process, as in tests, do not collide. Node and
 * process metrics keep their standard names (process_*, nodejs_*), which existing
 * dashboards and alerts expect; the scrape job tells permsync apart.
 *
 * Counters count what this process did since it started. The backlog gauges are read
 * from the source at each scrape, so a standby reports them too: the source's truth,
 * whoever applies.
 */
export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly seen = new Set<string>();
  private reading: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  private failing = false;
  private leading = false;
  private readonly collectTimeoutMs: number;

  private readonly batches = new Counter({
    name: 'permsync_batches_captured_total',
    help: 'Batches read from the source for the first time by this process, by capture origin.',
    labelNames: ['origin'] as const,
    registers: [this.registry],
  });
  private readonly executions = new Counter({
    name: 'permsync_executions_total',
    help: 'Outcomes recorded per environment: success, failed (each attempt), skipped, dry_run.',
    labelNames: ['environment', 'status'] as const,
    registers: [this.registry],
  });
  private readonly applyDuration = new Histogram({
    name: 'permsync_apply_duration_seconds',
    help: 'Time to run a batch on an environment, for executions that ran statements (success, failed).',
    labelNames: ['environment'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly lag = new Gauge({
    name: 'permsync_environment_lag_seconds',
    help: 'Age of the oldest batch the environment has not finished (0 when none waits), read from the source.',
    labelNames: ['environment'] as const,
    registers: [this.registry],
    collect: () => this.refresh(),
  });
  private readonly pending = new Gauge({
    name: 'permsync_environment_pending_batches',
    help: 'Batches the environment has not finished, read from the source.',
    labelNames: ['environment'] as const,
    registers: [this.registry],
    collect: () => this.refresh(),
  });
  private readonly retryQueue = new Gauge({
    name: 'permsync_retry_queue_depth',
    help: "Rows in the source's permsync.retry_queue for the configured environments.",
    registers: [this.registry],
    collect: () => this.refresh(),
  });
  private readonly roleConflicts = new Gauge({
    name: 'permsync_role_conflicts',
    help: "Source roles whose name a role of the environment's own holds there (permsync.v_role_conflicts): nothing of them is carried there.",
    labelNames: ['environment'] as const,
    registers: [this.registry],
    collect: () => this.refresh(),
  });
  private readonly state = new Gauge({
    name: 'permsync_environment_state',
    help: "1 for the environment's state, 0 for the others, as permsync.v_environment_status names it (held: a permanent failure stops it), read from the source.",
    labelNames: ['environment', 'state'] as const,
    registers: [this.registry],
    collect: () => this.refresh(),
  });
  private readonly roleChecks = new Counter({
    name: 'permsync_role_watcher_checks_total',
    help: 'Role catalog checks by the role watcher, by result: changed (a batch was written), unchanged, or failed.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly roleWatcherFailing = new Gauge({
    name: 'permsync_role_watcher_failing',
    help: "1 while this daemon's role watcher fails its checks (role changes are not captured meanwhile), 0 otherwise; a standby runs none.",
    registers: [this.registry],
  });
  private readonly roleCheckDuration = new Histogram({
    name: 'permsync_role_watcher_check_duration_seconds',
    help: 'Time a role catalog check took, including writing the batch when roles changed.',
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly drift = new Gauge({
    name: 'permsync_drift_differences',
    help: 'Differences from the source found by the last scheduled drift check (-1: it could not compare).',
    labelNames: ['environment'] as const,
    registers: [this.registry],
  });
  private readonly leader = new Gauge({
    name: 'permsync_leader',
    help: "1 while this daemon holds its group's leader lease and applies, 0 while it stands by; `group` is the daemon group (each group has a leader).",
    labelNames: ['group'] as const,
    registers: [this.registry],
  });
  private readonly leaderSince = new Gauge({
    name: 'permsync_leader_since_timestamp_seconds',
    help: "When the daemon leading now took the leader lease (Unix time), as this daemon's last claim found it; the labels name that daemon's lease session (this daemon's own while it leads). No sample while nobody holds the lease or the claim fails.",
    labelNames: ['pid', 'user', 'application_name', 'client_addr'] as const,
    registers: [this.registry],
    collect: () => {
      this.leaderSince.reset();
      const holder = this.options.leader?.();
      if (!holder) return;
      this.leaderSince.set(
        { pid: String(holder.pid), user: holder.user, application_name: holder.applicationName ?? '', client_addr: holder.clientAddr ?? '' },
        holder.since.getTime() / 1000,
      );
    },
  });
  private readonly listening = new Gauge({
    name: 'permsync_listener_connected',
    help: '1 while the leader listens on the source (LISTEN in place, heartbeats answered), 0 while it reconnects. No sample on a standby.',
    registers: [this.registry],
    collect: () => {
      this.listenerGauge(this.listening, (s) => (s.state === 'connected' ? 1 : 0));
    },
  });
  private readonly listenerSince = new Gauge({
    name: 'permsync_listener_state_since_timestamp_seconds',
    help: 'When the source listener last connected or lost its session (Unix time). No sample on a standby.',
    registers: [this.registry],
    collect: () => {
      this.listenerGauge(this.listenerSince, (s) => s.since.getTime() / 1000);
    },
  });
  private readonly listenerHeartbeat = new Gauge({
    name: 'permsync_listener_last_heartbeat_timestamp_seconds',
    help: "When the source last answered on the listener's session (Unix time). No sample on a standby, nor before the first answer.",
    registers: [this.registry],
    collect: () => {
      this.listenerGauge(this.listenerHeartbeat, (s) => s.lastHeartbeat && s.lastHeartbeat.getTime() / 1000);
    },
  });
  private readonly collectErrors = new Counter({
    name: 'permsync_metrics_collect_errors_total',
    help: 'Scrapes that could not read the backlog from the source in time (the gauges kept their last values).',
    registers: [this.registry],
    // Waits for the scrape's refresh too, so that the scrape that failed shows its failure.
    collect: () => this.refresh(),
  });

  constructor(private readonly options: DaemonMetricsOptions) {
    this.collectTimeoutMs = options.collectTimeoutMs ?? 2000;
    collectDefaultMetrics({ register: this.registry });
    // Known label values start at 0, so that rate() and increase() see the first event.
    for (const origin of ORIGINS) this.batches.inc({ origin }, 0);
    for (const result of ['changed', 'unchanged', 'failed']) this.roleChecks.inc({ result }, 0);
    this.leader.set({ group: this.options.group }, 0);
  }

  /** A batch read from the source; counted the first time any environment reads it. */
  batchSeen(batchId: string, origin: Batch['origin']): void {
    if (this.seen.has(batchId)) return;
    this.seen.add(batchId);
    // A Set iterates in insertion order: the first id is the oldest.
    if (this.seen.size > SEEN_BATCH_IDS) this.seen.delete(this.seen.values().next().value as string);
    this.batches.inc({ origin });
  }

  /** An outcome recorded for a batch in an environment (each attempt of a retried batch counts). */
  execution(environment: string, status: ExecutionRecord['status'], durationMs: number): void {
    this.executions.inc({ environment, status });
    // Skipped batches and dry runs run nothing on the target: their zero would only hide real times.
    if (status === 'success' || status === 'failed') this.applyDuration.observe({ environment }, durationMs / 1000);
  }

  /** The results of a scheduled drift check. */
  driftChecked(results: { environment: string; differences: number | null }[]): void {
    for (const r of results) this.drift.set({ environment: r.environment }, r.differences ?? -1);
  }

  /** A role watcher check that completed (RoleWatcher's onCheck). */
  roleCheck(durationMs: number, changed: boolean): void {
    this.roleChecks.inc({ result: changed ? 'changed' : 'unchanged' });
    this.roleCheckDuration.observe(durationMs / 1000);
    this.roleWatcherFailing.set(0);
  }

  /** A role watcher check that failed (RoleWatcher's onFailure). */
  roleCheckFailed(): void {
    this.roleChecks.inc({ result: 'failed' });
    // A check still under way when the lease was lost does not make a standby report a failing watcher.
    if (this.leading) this.roleWatcherFailing.set(1);
  }

  setLeader(leading: boolean): void {
    this.leading = leading;
    this.leader.set({ group: this.options.group }, leading ? 1 : 0);
    // A standby runs no role watcher: what the last one met is no longer this daemon's to report.
    if (!leading) this.roleWatcherFailing.set(0);
  }

  /** Sets a listener gauge from the listener's state, or leaves it without a sample when there is none. */
  private listenerGauge(gauge: Gauge, value: (status: ListenerStatus) => number | undefined): void {
    gauge.reset();
    const status = this.options.listener?.();
    const v = status && value(status);
    if (v !== undefined) gauge.set(v);
  }

  /**
   * The backlog gauges and the error counter share one refresh per scrape (prom-client
   * collects metrics in parallel). It never throws: a failure or a timeout keeps the last values and counts.
   */
  private refresh(): Promise<void> {
    this.refreshing ??= this.refreshInTime().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshInTime(): Promise<void> {
    // A query still running after a timed-out scrape is waited for again, not started twice,
    // so a hung source holds at most one of the pool's connections for metrics.
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    try {
      await withTimeout(this.reading, this.collectTimeoutMs, `the source did not answer within ${this.collectTimeoutMs} ms`);
      if (this.failing) this.options.logger.info('metrics read the source again');
      this.failing = false;
    } catch (error) {
      this.collectErrors.inc();
      // Once per outage: Prometheus scrapes every few seconds.
      if (!this.failing) this.options.logger.warn({ err: error }, 'metrics could not read the backlog from the source; serving the last values');
      this.failing = true;
    }
  }

  private async read(): Promise<void> {
    const { rows } = await this.options.source.query<BacklogRow>(ENVIRONMENT_BACKLOG, [this.options.environments()]);
    // Replaced, not updated: an environment removed by a reload must not linger.
    this.lag.reset();
    this.pending.reset();
    this.roleConflicts.reset();
    this.state.reset();
    for (const row of rows) {
      for (const state of STATES) this.state.set({ environment: row.environment, state }, state === row.state ? 1 : 0);
      this.lag.set({ environment: row.environment }, row.lag_seconds);
      this.pending.set({ environment: row.environment }, row.pending_batches);
      this.roleConflicts.set({ environment: row.environment }, row.role_conflicts);
    }
    this.retryQueue.set(rows.reduce((sum, row) => sum + row.retries, 0));
  }
}
