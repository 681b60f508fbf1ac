import pg from 'pg';
import { classifyError, refusedByServer, serverDown, SQLSTATE, type ClassifiedError } from '../errors.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { loadParser } from '../capture/statements.js';
import type { EnvironmentConfig, Settings } from '../config/schema.js';
import { endPool, trackSessions } from '../pg-close.js';
import { MEMBERSHIP_OPTIONS_SINCE } from '../pg-versions.js';
import { keepSessionErrorsForTheNextQuery, ownSearchPath, withPooledSession } from '../pg-sessions.js';
import { readRoleHoldings, type RoleHoldings } from '../catalog/role-holdings.js';
import { readAcls, readCatalog, readServerIdentity, type AclObject, type Catalog, type ObjectAcl } from '../catalog/catalog.js';
import { forServer } from '../plan/server-version.js';
import { withGrantor, withoutGrantor, withTargetDatabase } from '../plan/target-statements.js';
import { shown, type Statement } from '../sql/statement.js';

export interface SessionIdentity {
  /** The source's search_path when the statements ran. */
  searchPath: string;
  /** Role to run as (SET LOCAL ROLE); undefined runs as the sync user. */
  runAs?: string;
}

export interface ExecutionResult {
  /** What was sent, with secrets masked: the execution log's applied_sql. */
  appliedSql: string;
  /** Statements left out here, with the reason (a non-superuser sync user and SUPERUSER, say). */
  notes: string[];
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
  connectionTimeMs: number | undefined;
  serverVersion: string | undefined;
  /** `unreachable`: the server is down or out of reach, so nothing was tried (see probe()). */
  error?: ClassifiedError & { failedSql?: string; unreachable?: boolean };
  /** Roles whose DROP ROLE this environment refused, left here locked instead (leaveLocked). */
  left?: LeftRole[];
}

/** A role the source dropped that a target keeps: its name and oid there, and what still depends on it. */
export interface LeftRole {
  role: string;
  oid: number;
  dependents: string;
}

/**
 * What takes from a role, in the transaction of its refused DROP ROLE, what the drop would
 * have taken from whoever acts as it: its LOGIN, every membership in it (but the sync
 * user's, which is permsync's) with those granted through them (CASCADE), and every
 * membership of it, each grantor's on 16 and later. A membership it granted in another
 * role, which a drop on 16 and later would refuse, is not taken (no CASCADE there): the
 * revoke fails, and the environment holds. The release before the drop (plan/release.ts)
 * has revoked its privileges in this database. $1: the role's name.
 */
const LOCK_ROLE = `
  WITH r AS (SELECT oid, rolname FROM pg_catalog.pg_roles WHERE rolname = $1),
       me AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user),
       v AS (SELECT pg_catalog.current_setting('server_version_num')::int >= 160000 AS pg16),
       s AS (
         SELECT 0 AS n, r.oid, pg_catalog.format('ALTER ROLE %I NOLOGIN', r.rolname) AS sql FROM r
         UNION ALL
         SELECT 1, r.oid, pg_catalog.format('REVOKE %I FROM %I%s CASCADE', r.rolname, pg_catalog.pg_get_userbyid(m.member),
                          CASE WHEN v.pg16 THEN pg_catalog.format(' GRANTED BY %I', pg_catalog.pg_get_userbyid(m.grantor)) ELSE '' END)
           FROM r JOIN pg_catalog.pg_auth_members m ON m.roleid = r.oid CROSS JOIN v
          WHERE m.member NOT IN (SELECT oid FROM me)
         UNION ALL
         SELECT 2, r.oid, pg_catalog.format('REVOKE %I FROM %I%s', pg_catalog.pg_get_userbyid(m.roleid), r.rolname,
                          CASE WHEN v.pg16 THEN pg_catalog.format(' GRANTED BY %I', pg_catalog.pg_get_userbyid(m.grantor)) ELSE '' END)
           FROM r JOIN pg_catalog.pg_auth_members m ON m.member = r.oid CROSS JOIN v)
  SELECT s.oid::int8::float8 AS oid, s.sql FROM s ORDER BY s.n, s.sql`;

/** Whether the role of oid $1 can still be acted as: it logs in, or a role other than the sync user is its member. */
const ROLE_UNLOCKED = `
  SELECT r.rolcanlogin
         OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                     WHERE (m.roleid = r.oid AND m.member <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user))
                        OR m.member = r.oid) AS unlocked
    FROM pg_catalog.pg_roles r WHERE r.oid = $1::int8::oid`;

/** What runs on the target session before a transaction commits (see Target.execute). */
/** `left`: the names of roles whose refused drop left them here locked (leaveLocked): later statements naming them did not run. */
export type BeforeCommit = (session: pg.ClientBase, took: Statement[], left: ReadonlySet<string>) => Promise<void>;

/** The oids of the roles named in $1 that the server has. */
export const ROLE_OIDS = 'SELECT rolname AS name, oid::int8::float8 AS oid FROM pg_catalog.pg_roles WHERE rolname = ANY($1)';

/** Several batches run in one transaction (executeTogether): one outcome for all of them. */
export interface GroupResult extends Omit<ExecutionResult, 'appliedSql' | 'notes'> {
  /** Per batch, in order: what it sent, and its notes. */
  batches: { appliedSql: string; notes: string[] }[];
}

interface SessionFacts {
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  superuser: boolean;
  user: string;
  /** The bootstrap superuser's name (oid 10). */
  bootstrap: string;
}

/**
 * Whether a batch can share one round trip with others (Target.executeTogether): not when
 * a statement tolerates some SQLSTATEs or names a grantor, since that needs a savepoint
 * and a look at each error, nor when it runs as a grantor that may need USAGE lent.
 */
export function canRunTogether(statements: Statement[]): boolean {
  return statements.every((s) => !s.ignoreCodes?.length && s.grantor === undefined && s.lookups === undefined);
}

/**
 * One environment's database: a small pool with connect and statement timeouts and an
 * application_name that names it in pg_stat_activity.
 */
export class Target {
  private readonly pool: pg.Pool;
  private facts: SessionFacts | undefined;

  constructor(
    readonly environment: EnvironmentConfig,
    settings: Settings,
    onIdleError: (error: Error) => void,
  ) {
    this.pool = trackSessions(
      keepSessionErrorsForTheNextQuery(
        new pg.Pool({
          connectionString: environment.url,
          application_name: `permsync:${environment.name}`,
          connectionTimeoutMillis: settings.connectionTimeoutMs,
          statement_timeout: settings.statementTimeoutMs,
          // A target that stops answering (not just slow) is cut off on the client side too.
          query_timeout: settings.statementTimeoutMs + settings.connectionTimeoutMs,
          keepAlive: true,
          max: 2,
          idleTimeoutMillis: 60_000,
          // pg-pool awaits it before handing the session out (its types say void).
          // eslint-disable-next-line @typescript-eslint/no-misused-promises
          onConnect: ownSearchPath,
        }),
      ),
    );
    this.pool.on('error', onIdleError);
    // A new session may be a new server (an upgrade in place): its facts are read again.
    this.pool.on('connect', () => {
      this.facts = undefined;
    });
  }

  /** The database a statement's TARGET_DATABASE means when there is no session to ask (dry run). */
  private databaseFromUrl(): string {
    const url = new URL(this.environment.url);
    return decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username);
  }

  /** The session set-up, then the statements, as text: what runs, and what the log shows. */
  plan(identity: SessionIdentity, statements: Statement[], database = this.databaseFromUrl()) {
    const setup = [
      `SELECT pg_catalog.set_config('search_path', ${quoteLiteral(identity.searchPath)}, true)`,
      ...(identity.runAs !== undefined ? [`SET LOCAL ROLE ${quoteIdent(identity.runAs)}`] : []),
    ];
    const fill = (sql: string, s: Statement) =>
      s.onTargetDatabase ? withTargetDatabase(sql, database) : s.database !== undefined ? withTargetDatabase(sql, this.databaseFor(s.database)) : sql;
    const steps = statements.map((s) => ({ statement: s, sql: fill(s.sql, s), display: fill(shown(s), s) }));
    const appliedSql = [...setup, ...steps.map((s) => s.display)].map((s) => `${s};`).join('\n');
    return { setup, steps, appliedSql };
  }

  /** The environment's name for a database of the source's cluster (not the source's own). */
  databaseFor(source: string): string {
    return this.environment.databases?.[source] ?? source;
  }

  /** What `role` holds in the environment's database (catalog/role-holdings.ts), and its server's version. */
  async roleHoldings(role: string): Promise<{ held: RoleHoldings; serverVersionNum: number }> {
    return withPooledSession(this.pool, async (client) => {
      const facts = (this.facts ??= await readFacts(client));
      return { held: await readRoleHoldings(client, role), serverVersionNum: facts.serverVersionNum };
    });
  }

  /** The environment's permission state as drift reads it, without verifiers (plan/converge.ts), or why it could not be read. */
  async catalog(verifiers = false): Promise<{ catalog: Catalog } | { error: ClassifiedError & { unreachable: boolean } }> {
    try {
      return { catalog: await withPooledSession(this.pool, (client) => readCatalog(client, { verifiers })) };
    } catch (error) {
      return { error: connectFailed(error) };
    }
  }

  /** The ACLs of these objects on the environment (catalog.ts, readAcls), or why they could not be read. */
  async acls(objects: AclObject[]): Promise<{ acls: (ObjectAcl | undefined)[] } | { error: ClassifiedError & { unreachable: boolean } }> {
    try {
      return { acls: await withPooledSession(this.pool, (client) => readAcls(client, objects)) };
    } catch (error) {
      return { error: connectFailed(error) };
    }
  }

  /**
   * The oids of those of these roles the environment has (a role's identity there), or
   * why it could not be asked: not reaching it is classified as a failed connect is.
   */
  async roleOids(names: string[]): Promise<{ roles: Map<string, number> } | { error: ClassifiedError & { unreachable: boolean } }> {
    if (names.length === 0) return { roles: new Map() };
    try {
      const { rows } = await this.pool.query<{ name: string; oid: number }>(ROLE_OIDS, [names]);
      return { roles: new Map(rows.map((r) => [r.name, r.oid])) };
    } catch (error) {
      return { error: connectFailed(error) };
    }
  }

  /** Which server the environment's database is on (catalog/catalog.ts, readServerIdentity). */
  async serverIdentity(): Promise<{ identity: string } | { error: ClassifiedError & { unreachable: boolean } }> {
    try {
      return { identity: await withPooledSession(this.pool, readServerIdentity) };
    } catch (error) {
      return { error: connectFailed(error) };
    }
  }

  /** Whether the environment accepts a connection again (cheap: the applier asks once a second while it is unreachable). */
  async probe(): Promise<boolean> {
    try {
      const client = await this.pool.connect();
      try {
        await client.query('SELECT 1');
        client.release();
        return true;
      } catch (error) {
        client.release(error as Error);
        return false;
      }
    } catch {
      return false;
    }
  }

  /**
   * Runs a batch's statements in one transaction, as the source ran them. `beforeCommit`
   * sees the session and the statements that took effect (not those tolerated as already
   * so) before the transaction commits; if it fails, nothing commits.
   */
  async execute(identity: SessionIdentity, statements: Statement[], beforeCommit?: BeforeCommit): Promise<ExecutionResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    const notes: string[] = [];
    // What was sent, once the session is known; before that (a failed connect), what would have been.
    let appliedSql: string | undefined;
    const done = (fields: Partial<ExecutionResult>): ExecutionResult => ({
      appliedSql: appliedSql ?? this.plan(identity, statements).appliedSql,
      notes,
      startedAt,
      finishedAt: new Date(),
      durationMs: performance.now() - t0,
      connectionTimeMs: undefined,
      serverVersion: this.facts?.serverVersion,
      ...fields,
    });
    const connected = await this.connect(t0);
    if ('error' in connected) return done({ error: connected.error });
    const { client, connectionTimeMs } = connected;
    let current: string | undefined;
    try {
      const facts = (this.facts ??= await readFacts(client));
      const { setup, steps } = this.plan(identity, this.runnable(statements, facts, notes), facts.database);
      // What each step sent: its statement, between the lending and taking back of USAGE where it had some lent.
      const sent = steps.map((step) => [step.display]);
      const sentSql = () => [...setup, ...sent.flat()].map((s) => `${s};`).join('\n');
      appliedSql = sentSql();
      if (beforeCommit === undefined && canRunTogether(steps.map((step) => step.statement))) {
        // Nothing to tolerate, lend or check before the commit: the transaction goes in one
        // round trip. Refused for good (not a timeout, a lock or a lost session), it rolled
        // back whole; it is run again a statement at a time below, to say which one fails.
        try {
          await client.query(oneString(['BEGIN', ...setup, ...steps.map((step) => step.sql), 'COMMIT']));
          client.release();
          return done({ connectionTimeMs });
        } catch (error) {
          const classified = classifyError(error);
          if (!refusedByServer(classified) || classified.kind !== 'permanent') throw error;
          await client.query('ROLLBACK');
        }
      }
      await client.query('BEGIN');
      for (const sql of setup) await client.query((current = sql));
      const took: Statement[] = [];
      const left: LeftRole[] = [];
      const leftNames = new Set<string>();
      for (const [i, step] of steps.entries()) {
        // After its refused drop the name is the locked role's here: what the source does
        // with the name afterwards (a new role of it, one renamed onto it) is another role's.
        const named = step.statement.roles.find((r) => leftNames.has(r));
        if (named !== undefined) {
          sent[i] = [];
          appliedSql = sentSql();
          notes.push(`"${step.display}": not run: role "${named}" is left here as the environment's own, its drop refused`);
          continue;
        }
        const lent = identity.runAs === undefined ? await usageToLend(client, step.statement) : undefined;
        if (lent) {
          sent[i] = [lent.grant, step.display, lent.revoke];
          appliedSql = sentSql();
          await client.query((current = lent.grant));
          notes.push(`"${step.display}": run with USAGE on ${lent.schemas} lent to its grantor, which lacks it here, and taken back after it`);
        }
        current = step.display;
        const leavable = mayLeave(step.statement);
        let tolerated = await runStep(client, step.sql, [
          ...(step.statement.ignoreCodes ?? []),
          ...(step.statement.grantor !== undefined ? [SQLSTATE.insufficientPrivilege] : []),
          ...(leavable ? [SQLSTATE.dependentObjectsStillExist] : []),
        ]);
        if (leavable && tolerated?.code === SQLSTATE.dependentObjectsStillExist) {
          const role = step.statement.grantees[0] as string;
          const locked = await leaveLocked(client, role, tolerated);
          sent[i] = [step.display, ...locked.sent];
          appliedSql = sentSql();
          left.push(locked.left);
          leftNames.add(role);
          notes.push(
            `"${step.display}": refused here (${locked.left.dependents}); the role is left here as the environment's own, ` +
              'with what it owns, without LOGIN, members or memberships; to drop it here too, release what it owns here, drop it, ' +
              `then \`permsync reconcile --env ${this.environment.name} --apply\``,
          );
          continue;
        }
        if (
          tolerated?.code === SQLSTATE.insufficientPrivilege &&
          step.statement.grantor !== undefined &&
          !step.statement.ignoreCodes?.includes(SQLSTATE.insufficientPrivilege)
        ) {
          // On 16+ the grantor must hold ADMIN OPTION here, which it may lack where its own
          // membership was left out: the membership is granted all the same, as the sync user's.
          const plain = withoutGrantor(step.statement);
          notes.push(`"${step.display}": granted as the sync user's: ${tolerated.message}`);
          current = shown(plain);
          tolerated = await runStep(client, plain.sql, plain.ignoreCodes);
        }
        if (tolerated) notes.push(`"${step.display}": left as it is: ${tolerated.message} (SQLSTATE ${tolerated.code})`);
        else took.push(step.statement);
        if (lent) await client.query((current = lent.revoke));
      }
      current = undefined;
      await beforeCommit?.(client, took, leftNames);
      await client.query('COMMIT');
      client.release();
      return done({ connectionTimeMs, ...(left.length > 0 && { left }) });
    } catch (error) {
      const classified = await endFailed(client, error);
      return done({ connectionTimeMs, error: { ...classified, ...(current !== undefined && { failedSql: current }) } });
    }
  }

  /**
   * Runs several batches, in order, in one transaction sent as one string: one round trip
   * instead of four per batch, for an environment with a backlog. Each batch keeps its own
   * session set-up (search_path, role). All or nothing: on any error the transaction is
   * rolled back and the error returned without saying which batch caused it; the caller
   * then runs the batches one by one (execute) to find out. Statements must pass
   * canRunTogether().
   */
  async executeTogether(batches: { identity: SessionIdentity; statements: Statement[] }[]): Promise<GroupResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    const done = (fields: Partial<GroupResult>): GroupResult => ({
      batches: [],
      startedAt,
      finishedAt: new Date(),
      durationMs: performance.now() - t0,
      connectionTimeMs: undefined,
      serverVersion: this.facts?.serverVersion,
      ...fields,
    });
    const connected = await this.connect(t0);
    if ('error' in connected) return done({ error: connected.error });
    const { client, connectionTimeMs } = connected;
    try {
      const facts = (this.facts ??= await readFacts(client));
      const script = ['BEGIN'];
      let roleSet = false;
      const planned = batches.map(({ identity, statements }) => {
        const notes: string[] = [];
        const { setup, steps, appliedSql } = this.plan(identity, this.runnable(statements, facts, notes), facts.database);
        // SET LOCAL ROLE lasts to the end of the transaction: undo the previous batch's.
        if (roleSet && identity.runAs === undefined) script.push('SET LOCAL ROLE NONE');
        roleSet = identity.runAs !== undefined;
        script.push(...setup, ...steps.map((s) => s.sql));
        return { appliedSql, notes };
      });
      script.push('COMMIT');
      await client.query(oneString(script));
      client.release();
      return done({ batches: planned, connectionTimeMs });
    } catch (error) {
      return done({ connectionTimeMs, error: await endFailed(client, error) });
    }
  }

  /** A session from the pool, and how long getting it took since `t0`. */
  private async connect(t0: number): Promise<{ client: pg.PoolClient; connectionTimeMs: number } | { error: ReturnType<typeof connectFailed> }> {
    try {
      const client = await this.pool.connect();
      return { client, connectionTimeMs: performance.now() - t0 };
    } catch (error) {
      return { error: connectFailed(error) };
    }
  }

  /**
   * The statements this sync user may run, in the form this server's version takes
   * (plan/server-version.ts); what is left out is noted, with the reason.
   */
  private runnable(statements: Statement[], facts: SessionFacts, notes: string[]): Statement[] {
    return statements.flatMap((statement) => {
      let s = statement;
      if (s.privileged && !facts.superuser) {
        notes.push(`skipped "${shown(s)}": only a superuser may do this, and the sync user is not one`);
        return [];
      }
      if (s.database !== undefined && this.environment.databases?.[s.database] === undefined && s.database === facts.database) {
        notes.push(
          `skipped "${shown(s)}": database ${quoteIdent(s.database)} is another of the source's, and this environment's own ` +
            `has its name; environments[].databases maps it to one of this environment's`,
        );
        return [];
      }
      if (s.grantor !== undefined && !facts.superuser) {
        // Only a superuser may name another grantor (before 16; on 16+, one with its privileges).
        s = withoutGrantor(s);
        notes.push(`"${shown(statement)}": granted as the sync user's, which is no superuser and may not name the grantor`);
      }
      // A membership the source's bootstrap superuser granted names no grantor: 16+ records
      // any superuser's grant as the bootstrap superuser's, an older server as whoever ran it.
      if (
        s.kind === 'GRANT ROLE' &&
        s.grantor === undefined &&
        facts.serverVersionNum < MEMBERSHIP_OPTIONS_SINCE &&
        facts.superuser &&
        facts.user !== facts.bootstrap
      ) {
        s = withGrantor(s, facts.bootstrap);
      }
      const adapted = forServer(s, facts.serverVersionNum);
      notes.push(...adapted.notes);
      return adapted.statements;
    });
  }

  /** Ends the sessions; one still in a transaction (on a hung server) is cut, and the server rolls back what it had not committed. */
  close(): Promise<void> {
    return endPool(this.pool);
  }
}

/**
 * Not reaching the environment (refused, TLS, authentication) is never the batch's fault:
 * it is retried in order, so fixing the connection is all it takes. A server that is down
 * is `unreachable`: the applier probes it often (see probe()), which a server that refuses
 * our credentials or certificate would only see as a stream of failed logins.
 */
function connectFailed(error: unknown): ClassifiedError & { unreachable: boolean } {
  const classified = classifyError(error);
  return { ...classified, kind: 'transient', unreachable: serverDown(classified) };
}

/** After a failed transaction: roll it back, or discard the connection when it is broken. */
/** Statements sent as one simple-query string, each on a line of its own: a statement may end in a -- comment. */
function oneString(statements: string[]): string {
  return statements.join('\n;\n');
}

async function endFailed(client: pg.PoolClient, error: unknown): Promise<ClassifiedError> {
  const classified = classifyError(error);
  let broken = classified.kind === 'transient';
  if (!broken) {
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
  }
  // A connection that failed mid-transaction is discarded, not reused.
  client.release(broken ? (error as Error) : undefined);
  return classified;
}

async function readFacts(client: pg.PoolClient): Promise<SessionFacts> {
  // forServer() parses statements for an older server (a no-op once loaded).
  await loadParser();
  const { rows } = await client.query<{
    server_version: string;
    server_version_num: number;
    database: string;
    superuser: boolean;
    user: string;
    bootstrap: string;
  }>(
    `SELECT current_setting('server_version') AS server_version,
            current_setting('server_version_num')::int AS server_version_num, current_database() AS database,
            (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS superuser, current_user AS user,
            (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10) AS bootstrap`,
  );
  const row = rows[0];
  if (!row) throw new Error('the target did not describe its session');
  return {
    serverVersion: row.server_version,
    serverVersionNum: row.server_version_num,
    database: row.database,
    superuser: row.superuser,
    user: row.user,
    bootstrap: row.bootstrap,
  };
}

/** The schemas of $2 on which the role $1 lacks USAGE (has_schema_privilege, as a lookup checks it). */
const LACKING_USAGE = `
  SELECT n.nspname AS schema
    FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.rolname = $1
   WHERE n.nspname = ANY($2::pg_catalog.name[]) AND NOT pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE')
   ORDER BY n.nspname`;

/**
 * A statement run as its grantor looks its object up as that role, which takes USAGE on
 * the schemas it names: a grantor may lack it here as on the source, where it granted
 * before its USAGE was taken away (or lack it only until the plan grants it). Where it
 * does, the sync user lends it USAGE for that statement alone, in its transaction, and
 * takes it back right after, so that the schemas' privileges end as they were. Nothing
 * else runs as the grantor meanwhile, and only what its own grant option (or grant)
 * already lets it do: it reaches no further. A sync user that may not grant USAGE there
 * cannot lend it (PostgreSQL refuses, or warns and grants nothing): the target refuses
 * the statement as it would have.
 */
async function usageToLend(client: pg.PoolClient, statement: Statement): Promise<{ schemas: string; grant: string; revoke: string } | undefined> {
  if (statement.runAs === undefined || !statement.lookups?.length) return undefined;
  const { rows } = await client.query<{ schema: string }>(LACKING_USAGE, [statement.runAs, statement.lookups]);
  if (rows.length === 0) return undefined;
  const schemas = `SCHEMA ${rows.map((r) => quoteIdent(r.schema)).join(', ')}`;
  const role = quoteIdent(statement.runAs);
  return { schemas, grant: `GRANT USAGE ON ${schemas} TO ${role}`, revoke: `REVOKE USAGE ON ${schemas} FROM ${role}` };
}

/**
 * A role watcher's DROP ROLE that a role without SUPERUSER could have run on the source
 * (Statement's byLogin): refused here, its role is left, locked (leaveLocked), rather than
 * holding the environment on it, which such a login could otherwise do at will. One that
 * hands objects over in its batch names its role by the spare name it goes by then.
 */
function mayLeave(statement: Statement): boolean {
  return statement.kind === 'DROP ROLE' && statement.byLogin === true;
}

/**
 * Locks a role whose DROP ROLE was refused (LOCK_ROLE), in that transaction, and checks
 * that no one may act as it any more. Where that cannot be done (a grantor a sync user
 * that is no superuser may not name), the refusal stands: the environment holds on it.
 */
async function leaveLocked(
  client: pg.PoolClient,
  role: string,
  refused: { code: string; message: string; detail?: string },
): Promise<{ sent: string[]; left: LeftRole }> {
  const dependents = dependentLines(refused.detail).join('; ') || 'something depends on it';
  const { rows } = await client.query<{ oid: number; sql: string }>(LOCK_ROLE, [role]);
  const oid = rows[0]?.oid;
  const cannot = (why: string) =>
    Object.assign(new Error(`${refused.message}, and it cannot be left here without LOGIN and members: ${why}`), {
      code: refused.code,
      detail: refused.detail,
    });
  if (oid === undefined) throw cannot('it is gone');
  const sent: string[] = [];
  for (const { sql } of rows) {
    sent.push(sql);
    await client.query(sql).catch((error: Error) => {
      throw classifyError(error).kind === 'transient' ? error : cannot(error.message);
    });
  }
  const { rows: check } = await client.query<{ unlocked: boolean }>(ROLE_UNLOCKED, [oid]);
  if (check[0]?.unlocked !== false) throw cannot('a membership is still there');
  return { sent, left: { role, oid, dependents } };
}

/** The lines of a 2BP01's detail: one for each object that depends on what was to be dropped. */
export function dependentLines(detail: string | undefined): string[] {
  return (detail ?? '').split('\n').filter((line) => line.trim() !== '');
}

/**
 * Runs one statement; where some SQLSTATEs are tolerated (the statement is so already, or
 * cannot apply to this server), inside a savepoint that absorbs them. Returns the
 * tolerated error, else undefined.
 */
async function runStep(
  client: pg.PoolClient,
  sql: string,
  ignoreCodes: string[] | undefined,
): Promise<{ code: string; message: string; detail?: string } | undefined> {
  if (!ignoreCodes?.length) {
    await client.query(sql);
    return undefined;
  }
  await client.query('SAVEPOINT permsync_step');
  try {
    await client.query(sql);
    await client.query('RELEASE SAVEPOINT permsync_step');
    return undefined;
  } catch (error) {
    const { code, message, detail } = error as { code?: string; message?: string; detail?: string };
    if (code === undefined || !ignoreCodes.includes(code)) throw error;
    await client.query('ROLLBACK TO SAVEPOINT permsync_step');
    return { code, message: message ?? '', ...(detail !== undefined && { detail }) };
  }
}
