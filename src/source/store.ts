import type pg from 'pg';
import type { Batch, RecordedCommand } from '../capture/batch.js';
import { daemonGroup, type Config } from '../config/schema.js';
import * as sourceSql from './queries.js';
import { withPooledSession } from '../pg-sessions.js';
import { readSourceOwners, readSourcePolicies, type HeldPolicy, type OwnerOnSource, type SourcePolicy } from '../catalog/role-holdings.js';
import type { ArgumentTypeLookup, Authority } from '../plan/converge.js';
import type { ManagedRole } from '../plan/role-ownership.js';
import type { ObjectRef } from '../catalog/compare.js';
import { inCatalogSnapshot, readCatalog, type Catalog } from '../catalog/catalog.js';

interface BatchRow {
  id: string;
  commit_seq: string;
  origin: Batch['origin'];
  session_user_name: string;
  session_user_is_superuser: boolean;
  current_user_name: string;
  current_user_is_superuser: boolean;
  current_user_oid: number | null;
  search_path: string;
  backend_pid: number;
  statement_started_at: Date;
  committed_at: Date | null;
  query_text: string | null;
  text_bytes: number;
  query_masked: boolean;
  target_environment: string | null;
  command_tags: string[];
  command_objects: (string | null)[];
  identities: number;
  nested_commands: boolean;
  statements: Batch['statements'];
  not_replayable: string | null;
  converge_reason: string | null;
  temp_objects: string[] | null;
  previous_status: string | null;
}

function toBatch(row: BatchRow): Batch {
  return {
    id: row.id,
    commitSeq: row.commit_seq,
    origin: row.origin,
    sessionUser: row.session_user_name,
    sessionUserIsSuperuser: row.session_user_is_superuser,
    currentUser: row.current_user_name,
    currentUserIsSuperuser: row.current_user_is_superuser,
    ...(row.current_user_oid !== null && { currentUserOid: row.current_user_oid }),
    searchPath: row.search_path,
    backendPid: row.backend_pid,
    statementStartedAt: row.statement_started_at,
    committedAt: row.committed_at,
    queryText: row.query_text,
    textBytes: row.text_bytes,
    queryMasked: row.query_masked,
    targetEnvironment: row.target_environment,
    commandTags: row.command_tags,
    commandObjects: row.command_objects,
    identities: row.identities,
    nestedCommands: row.nested_commands,
    statements: row.statements,
    notReplayable: row.not_replayable,
    convergeReason: row.converge_reason,
    temporaryObjects: row.temp_objects,
    previousStatus: row.previous_status,
  };
}

export interface ExecutionRecord {
  batch: Batch;
  environment: string;
  appliedSql: string | null;
  status: 'success' | 'failed' | 'skipped' | 'dry_run';
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
  resultMessage: string | null;
  errorCode?: string;
  errorDetail?: string;
  errorHint?: string;
  failureKind?: 'transient' | 'permanent';
  serverVersion?: string;
  connectionTimeMs?: number;
}

/** The operators' runtime switches and requests, as the source holds them. */
export interface Switches {
  syncEnabled: boolean;
  dryRun: boolean;
  paused: Set<string>;
  /** Per environment, how many retries operators have asked for (retry_failed, skip_batch). */
  retryRequests: Map<string, bigint>;
  /** Per environment, the last commit_seq with a logged outcome. */
  loggedThrough: Map<string, bigint>;
}

/** A row of RECORD_EXECUTIONS's JSON parameter (JSON: one string, where arrays of each column cost the daemon more). */
const executionRow = (r: ExecutionRecord) => ({
  batch_id: r.batch.id,
  environment_name: r.environment,
  commit_seq: r.batch.commitSeq,
  applied_sql: r.appliedSql,
  execution_status: r.status,
  started_at: r.startedAt,
  finished_at: r.finishedAt,
  duration_ms: r.durationMs.toFixed(3),
  result_message: r.resultMessage,
  error_code: r.errorCode ?? null,
  error_detail: r.errorDetail ?? null,
  error_hint: r.errorHint ?? null,
  failure_kind: r.failureKind ?? null,
  server_version: r.serverVersion ?? null,
  connection_time_ms: r.connectionTimeMs?.toFixed(3) ?? null,
});

/** The least time between two owner looks the store runs (lookForOwnerChanges). */
const OWNER_LOOK_INTERVAL_MS = 1000;

/** The daemon's reads and writes on the source's permsync schema. */
export class SourceStore {
  /** The in-flight marks the next write takes, and that write (see markInFlight). */
  private marks: { wanted: Map<string, string>; written: Promise<Set<string>> } | undefined;
  private marking: Promise<unknown> = Promise.resolve();
  /** When the last owner look asked of the store started (performance.now()), and the next one, which callers share. */
  private ownerLookAt = -Infinity;
  private nextOwnerLook: Promise<boolean> | undefined;

  constructor(private readonly pool: pg.Pool) {}

  async assertInstalled(): Promise<void> {
    const { rows } = await this.pool.query<{ installed: boolean }>(`SELECT to_regclass('permsync.schema_migrations') IS NOT NULL AS installed`);
    if (!rows[0]?.installed) {
      throw new Error('permsync is not installed on the source database: run `permsync install --config <file>` first');
    }
  }

  /** Mirrors the configuration into permsync.environments, sync_rules and config. */
  async registerConfiguration(config: Config, options: RegisterOptions = {}): Promise<Registration> {
    return withPooledSession(this.pool, (client) => registerConfiguration(client, config, options));
  }

  async readSwitches(): Promise<Switches> {
    const { rows } = await this.pool.query<{
      sync_enabled: boolean;
      dry_run: boolean;
      name: string | null;
      paused: boolean | null;
      retry_requested: string | null;
      logged_through: string | null;
    }>(sourceSql.READ_SWITCHES);
    const switches: Switches = {
      syncEnabled: rows[0]?.sync_enabled ?? true,
      dryRun: rows[0]?.dry_run ?? false,
      paused: new Set(),
      retryRequests: new Map(),
      loggedThrough: new Map(),
    };
    for (const row of rows) {
      if (row.name === null) continue;
      if (row.paused) switches.paused.add(row.name);
      switches.retryRequests.set(row.name, BigInt(row.retry_requested ?? '0'));
      switches.loggedThrough.set(row.name, BigInt(row.logged_through ?? '0'));
    }
    return switches;
  }

  /** The name of the source's bootstrap superuser (oid 10). */
  async bootstrapSuperuser(): Promise<string> {
    const { rows } = await this.pool.query<{ name: string }>(sourceSql.BOOTSTRAP_SUPERUSER);
    return rows[0]?.name ?? '';
  }

  /** captured: an admin turned verifier capture on; tracked: the source's role state holds verifiers. */
  async passwordTracking(): Promise<{ captured: boolean; tracked: boolean }> {
    const { rows } = await this.pool.query<{ captured: boolean; tracked: boolean }>(sourceSql.PASSWORDS_TRACKED);
    return { captured: rows[0]?.captured ?? false, tracked: rows[0]?.tracked ?? false };
  }

  /** Where an environment resumes, and how far its last run may have got unlogged. */
  async resumePoint(environment: string): Promise<{ after: bigint; inFlightThrough: bigint }> {
    const { rows } = await this.pool.query<{ seq: string; in_flight_through: string }>(sourceSql.RESUME_POINT, [environment]);
    return { after: BigInt(rows[0]?.seq ?? '0'), inFlightThrough: BigInt(rows[0]?.in_flight_through ?? '0') };
  }

  /** Each object's owner on the source, where it was `formerOwner`'s (catalog/role-holdings.ts). */
  async ownersOf(objects: ObjectRef[], formerOwner: number | undefined): Promise<Map<string, OwnerOnSource>> {
    return withPooledSession(this.pool, (client) => readSourceOwners(client, objects, formerOwner));
  }

  /** Whether the source has these policies' tables, and policies of their names (catalog/role-holdings.ts). */
  async policiesOf(policies: HeldPolicy[]): Promise<Map<string, SourcePolicy>> {
    return withPooledSession(this.pool, (client) => readSourcePolicies(client, policies));
  }

  /** A batch's recorded commands, in order (capture/batch.ts). */
  async recordedCommands(batchId: string): Promise<RecordedCommand[]> {
    const { rows } = await this.pool.query<{
      tag: string;
      object_type: string | null;
      identity: string | null;
      current_user_name: string;
      current_user_oid: number | null;
      search_path: string | null;
      nested: boolean | null;
      nested_text: string | null;
      address: string | null;
      noted_identity: string | null;
      reassigned_from: string | null;
    }>({ ...sourceSql.RECORDED_COMMANDS, values: [batchId] });
    return rows.map((r) => ({
      tag: r.tag,
      objectType: r.object_type,
      identity: r.identity,
      currentUser: r.current_user_name,
      ...(r.current_user_oid !== null && { currentUserOid: r.current_user_oid }),
      searchPath: r.search_path,
      nested: r.nested,
      nestedText: r.nested_text,
      ...(r.address !== null && { address: r.address }),
      ...(r.noted_identity !== null && { notedIdentity: r.noted_identity }),
      ...(r.reassigned_from !== null && { reassignedFrom: r.reassigned_from }),
    }));
  }

  /** The source's permission state now, as drift reads it; verifiers only when asked (a bootstrap with sync_passwords on). */
  async catalog(verifiers = false, identities: string[] = []): Promise<Catalog> {
    return withPooledSession(this.pool, (client) => readCatalog(client, { verifiers, source: true, identities }));
  }

  /** What the roles that ran a batch (by the name it records, and their oid) may change on the source, and the owners of sequences (plan/converge.ts). */
  async authority(roles: { name: string; oid: number }[], sequences: { schema: string; name: string }[]): Promise<Authority> {
    const { rows } = await this.pool.query<{
      authority: {
        roles: { name: string; superuser: boolean; member_of: string[] }[];
        sequences: { schema: string; name: string; owner: string }[];
      };
    }>(sourceSql.AUTHORITY, [JSON.stringify(roles), JSON.stringify(sequences)]);
    const read = rows[0]?.authority ?? { roles: [], sequences: [] };
    return {
      roles: new Map(read.roles.map((r) => [r.name, { superuser: r.superuser, memberOf: new Set(r.member_of) }])),
      sequenceOwners: new Map(read.sequences.map((s) => [`${s.schema}\0${s.name}`, s.owner])),
    };
  }

  /** How the source's catalog prints each argument type a batch's routines were named with (plan/converge.ts), by key. */
  async argumentTypes(lookups: ArgumentTypeLookup[]): Promise<Map<string, string | null>> {
    if (lookups.length === 0) return new Map();
    const wanted = lookups.map(({ key, path, type }) => ({ key, path, names: type.names, arrays: type.arrays }));
    const { rows } = await withPooledSession(this.pool, (client) =>
      inCatalogSnapshot(client, () => client.query<{ key: string; printed: string | null }>(sourceSql.ARGUMENT_TYPES, [JSON.stringify(wanted)])),
    );
    return new Map(rows.map((r) => [r.key, r.printed]));
  }

  /**
   * Resolves once the mark is written. Each mark is a durable commit on the source, one WAL
   * flush the DBAs' commits queue behind, and every environment marks the same batch at
   * about the same moment: marks asked for while one is being written go together in the
   * next, one statement and one commit however many environments there are. One whose row
   * another session holds is written on its own, so that it waits alone.
   */
  async markInFlight(environment: string, throughSeq: string): Promise<void> {
    if (!this.marks) {
      const wanted = new Map<string, string>();
      const written = this.marking
        .catch(() => undefined)
        .then(async () => {
          this.marks = undefined;
          const { rows } = await this.pool.query<{ name: string }>({
            ...sourceSql.MARK_IN_FLIGHT,
            values: [[...wanted.keys()], [...wanted.values()]],
          });
          return new Set(rows.map((r) => r.name));
        });
      this.marks = { wanted, written };
      this.marking = written;
    }
    this.marks.wanted.set(environment, throughSeq);
    const marked = await this.marks.written;
    if (!marked.has(environment)) await this.pool.query({ ...sourceSql.MARK_ONE_IN_FLIGHT, values: [environment, throughSeq] });
  }

  async unmarkInFlight(environment: string, throughSeq: string): Promise<void> {
    await this.pool.query(sourceSql.UNMARK_IN_FLIGHT, [environment, throughSeq]);
  }

  /**
   * The role watcher's owner look whatever the counters say (CAPTURE_OWNER_CHANGES), begun
   * after the call: false when another look held it, whose batch is then on its way. One a
   * second at most, shared by whoever asks meanwhile: it reads the whole ledger, and each
   * DBA's batch a target refuses asks for one, in every environment (EnvironmentApplier.ownersFirst).
   */
  lookForOwnerChanges(): Promise<boolean> {
    this.nextOwnerLook ??= new Promise<void>((resolve) =>
      setTimeout(resolve, Math.max(0, this.ownerLookAt + OWNER_LOOK_INTERVAL_MS - performance.now())),
    ).then(async () => {
      this.nextOwnerLook = undefined;
      this.ownerLookAt = performance.now();
      const { rows } = await this.pool.query<{ counted: string | null }>(sourceSql.CAPTURE_OWNER_CHANGES, [null]);
      return rows[0]?.counted != null;
    });
    return this.nextOwnerLook;
  }

  async batchesAfter(commitSeq: bigint, environment: string, limit: number): Promise<Batch[]> {
    const { rows } = await this.pool.query<BatchRow>({ ...sourceSql.FETCH_BATCHES_AFTER, values: [commitSeq.toString(), environment, limit] });
    return rows.map(toBatch);
  }

  async newBatchesAfter(commitSeq: bigint, limit: number): Promise<Batch[]> {
    const { rows } = await this.pool.query<BatchRow>({ ...sourceSql.FETCH_NEW_BATCHES_AFTER, values: [commitSeq.toString(), limit] });
    return rows.map(toBatch);
  }

  async siblingBatchIds(batch: Batch): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(sourceSql.FETCH_SIBLING_BATCH_IDS, [batch.id]);
    return rows.map((r) => r.id);
  }

  /**
   * Several outcomes in one statement, in order (see RECORD_EXECUTIONS). Returns the ids of
   * the batches whose outcome was not written: one had been recorded already (an operator's skip).
   */
  async recordExecutions(records: ExecutionRecord[]): Promise<Set<string>> {
    const { rows } = await this.pool.query<{ batch_id: string }>({
      ...sourceSql.RECORD_EXECUTIONS,
      values: [JSON.stringify(records.map(executionRow))],
    });
    const written = new Set(rows.map((r) => r.batch_id));
    return new Set(records.map((r) => r.batch.id).filter((id) => !written.has(id)));
  }

  async scheduleRetry(batch: Batch, environment: string, at: Date, errorCode: string | undefined, message: string): Promise<void> {
    await this.pool.query(sourceSql.UPSERT_RETRY, [batch.id, environment, at, errorCode ?? null, message]);
  }

  /** Announces a failure on the permsync_failure channel: a bare wake-up (see NOTIFY_FAILURE). */
  async notifyFailure(): Promise<void> {
    await this.pool.query(sourceSql.NOTIFY_FAILURE);
  }

  async clearRetry(batch: Batch, environment: string): Promise<void> {
    await this.pool.query(sourceSql.DELETE_RETRY, [batch.id, environment]);
  }

  /** Records the server environment's database is on: from then on the roles permsync manages there are one set for the server's environments. */
  async recordServer(environment: string, identity: string): Promise<void> {
    await this.pool.query(sourceSql.RECORD_SERVER, [environment, identity]);
  }

  /** The roles permsync manages on an environment's server, by their oid there. */
  async managedRoles(environment: string): Promise<Map<number, ManagedRole>> {
    return readManagedRoles(this.pool, environment);
  }

  async recordManagedRoles(environment: string, roles: ManagedRoleRecord[], how: 'created' | 'adopted'): Promise<void> {
    await recordManagedRoles(this.pool, environment, roles, how);
  }

  async forgetManagedRoles(environment: string, oids: number[]): Promise<void> {
    await this.pool.query(sourceSql.FORGET_MANAGED_ROLES, [environment, oids]);
  }

  async renameManagedRole(environment: string, oid: number, name: string): Promise<void> {
    await this.pool.query(sourceSql.RENAME_MANAGED_ROLE, [environment, oid, name]);
  }

  async recordRoleConflicts(environment: string, batchId: string, conflicts: { role: string; oid: number; reason: string }[]): Promise<void> {
    await this.pool.query(sourceSql.RECORD_ROLE_CONFLICTS, [environment, batchId, JSON.stringify(conflicts)]);
  }
}

/** The roles permsync manages on an environment, by their oid there. */
export async function readManagedRoles(source: pg.Pool | pg.ClientBase, environment: string): Promise<Map<number, ManagedRole>> {
  const { rows } = await source.query<{ oid: number; name: string; sourceOid: number | null }>(sourceSql.MANAGED_ROLES, [environment]);
  return new Map(rows.map((r) => [r.oid, { name: r.name, ...(r.sourceOid !== null && { sourceOid: r.sourceOid }) }]));
}

/** A role recorded as permsync's on an environment: its oid and name there, and the source role's oid it stands for, where known. */
export interface ManagedRoleRecord {
  oid: number;
  name: string;
  sourceOid?: number;
}

/**
 * Records roles as permsync's on an environment (created by it, or handed over), and
 * closes their open conflicts there.
 */
export async function recordManagedRoles(
  source: pg.Pool | pg.ClientBase,
  environment: string,
  roles: ManagedRoleRecord[],
  how: 'created' | 'adopted',
): Promise<void> {
  if (roles.length === 0) return;
  await source.query(sourceSql.RECORD_MANAGED_ROLES, [environment, JSON.stringify(roles), how]);
  await source.query(sourceSql.RESOLVE_ROLE_CONFLICTS, [environment, roles.map((r) => r.name), how]);
}

/** Environments of the configuration this daemon group may not apply to, and why. */
export interface Registration {
  refused: { environment: string; reason: string }[];
}

export interface RegisterOptions {
  /** An environment seen for the first time is brought to the source's state by a batch of its own (origin 'bootstrap'). */
  bootstrapNew?: boolean;
}

/**
 * Mirrors the configuration into permsync.environments, sync_rules and config, in one
 * transaction. An environment seen for the first time starts after the newest batch:
 * history before it is reconcile's job, not replay's (with `bootstrapNew`, a batch that
 * reconciles it comes first). An environment another daemon group applies to is refused,
 * and left as it is: two groups never apply to one environment, and the group's other
 * environments go on.
 */
export async function registerConfiguration(client: pg.ClientBase, config: Config, options: RegisterOptions = {}): Promise<Registration> {
  const group = daemonGroup(config);
  const refused: Registration['refused'] = [];
  await client.query('BEGIN');
  try {
    for (const env of config.environments) {
      const {
        rows: [row],
      } = await client.query<{ taken: string | null; inserted: boolean | null; held_by: string | null }>(sourceSql.UPSERT_ENVIRONMENT, [
        env.name,
        env.label ?? null,
        env.priority,
        env.enabled,
        env.onPermanentFailure,
        group,
      ]);
      if (!row?.taken) {
        refused.push({
          environment: env.name,
          reason:
            `the daemons of group "${row?.held_by ?? '?'}" apply to it and lead now; ` +
            `group "${group}" takes it once that group's configuration no longer lists it, or none of its daemons runs`,
        });
        continue;
      }
      if (row.inserted && options.bootstrapNew) await client.query(sourceSql.REQUEST_BOOTSTRAP, [env.name]);
      await client.query(sourceSql.DELETE_RULES, [env.name]);
      for (const [position, rule] of env.rules.entries()) {
        await client.query(sourceSql.INSERT_RULE, [
          env.name,
          position + 1,
          rule.action,
          rule.commandTag ?? null,
          rule.rolePattern ?? null,
          rule.schemaPattern ?? null,
        ]);
      }
    }
    await client.query(sourceSql.RETIRE_ENVIRONMENTS, [config.environments.map((e) => e.name), group]);
    for (const [key, value] of Object.entries(config.settings)) {
      // dry_run and sync_passwords in the table are operators' switches (enable_dry_run(),
      // enable_password_sync()), which only they may write. The file's own dry_run applies
      // on top of the switch; its sync_passwords says whether this daemon wants verifiers.
      if (key === 'dryRun' || key === 'syncPasswords') continue;
      // The configuration file's own key names (max_retries, ...), as operators know them.
      const name = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      const text = value === null ? '' : Array.isArray(value) ? value.join(',') : String(value);
      await client.query(sourceSql.UPSERT_CONFIG, [name, text]);
    }
    await client.query('COMMIT');
    return { refused };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
