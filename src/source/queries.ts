/**
 * Every statement the daemon runs against the source's permsync schema, in one place.
 * Parameters are always bound ($n), never interpolated; only the daemon's own limits are
 * written into the text.
 */
import { MAX_GENERATED_BYTES, MAX_RECORDED_COMMANDS, MAX_TEXT_BYTES } from '../capture/batch.js';

/**
 * A statement the daemon runs for every batch and environment, prepared once per session
 * under its name: the source then plans it once, not on every run (planning these cost
 * the source as much as running them, more CPU than the DBA's capture itself). PostgreSQL
 * keeps a generic plan only where it costs no more than the plans made for the values
 * given; where a value would make a custom plan look cheaper (commit_seq near the end, a
 * small LIMIT), the statement reads it through a subquery, `(SELECT $1::bigint)`, which
 * no plan sees into, so that the one plan there is, the index scan by commit_seq, is kept.
 */
export interface PreparedSql {
  readonly name: string;
  readonly text: string;
}

function prepared(name: string, text: string): PreparedSql {
  return { name: `permsync_${name}`, text };
}

/**
 * A batch as the daemon reads it: no more of it than it can hold. A client string over
 * MAX_TEXT_BYTES, or a generated batch whose text is over MAX_GENERATED_BYTES, comes
 * without its text or statements (its size says why); a generated batch's text, which its
 * statements carry, never comes.
 */
const BATCH_COLUMNS = `
  b.id::text, b.commit_seq::text, b.origin, b.source_xid::text, b.statement_started_at,
  b.committed_at, b.session_user_name, b.session_user_is_superuser, b.current_user_name, b.current_user_is_superuser,
  b.current_user_oid::int8::float8 AS current_user_oid, b.search_path, b.backend_pid,
  CASE WHEN b.statements IS NULL AND octet_length(b.query_text) <= ${MAX_TEXT_BYTES} THEN b.query_text END AS query_text,
  octet_length(b.query_text) AS text_bytes, b.query_masked, b.target_environment,
  CASE WHEN octet_length(b.query_text) <= ${MAX_GENERATED_BYTES} THEN b.statements END AS statements,
  b.not_replayable, b.converge_reason, b.temp_objects, a.command_tags, a.command_objects, a.identities, a.nested_commands`;

/**
 * Joined after `permsync.batches b` wherever BATCH_COLUMNS is read: its audit rows, read
 * once, and no more of them than capture records (one more says there were more).
 */
const BATCH_AUDIT = `
  CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(a.command_tag ORDER BY a.id), '{}') AS command_tags,
           coalesce(array_agg(a.object_identity ORDER BY a.id), '{}') AS command_objects,
           count(DISTINCT (a.current_user_name, a.search_path))::int AS identities,
           coalesce(bool_or(a.nested), false) AS nested_commands
      FROM (SELECT * FROM permsync.audit_log l WHERE l.batch_id = b.id ORDER BY l.id LIMIT ${MAX_RECORDED_COMMANDS + 1}) a) a`;

/** The batches an environment has yet to carry, in commit order. */
export const FETCH_BATCHES_AFTER = prepared(
  'fetch_batches_after',
  `
  SELECT ${BATCH_COLUMNS},
         (SELECT x.execution_status FROM permsync.execution_log x
           WHERE x.batch_id = b.id AND x.environment_name = $2) AS previous_status
    FROM permsync.batches b ${BATCH_AUDIT}
   WHERE b.commit_seq > (SELECT $1::bigint)
     AND (b.target_environment IS NULL OR b.target_environment = (SELECT $2::text))
     -- A reconcile batch is applied by reconcile itself, and logged with it: only a record here.
     AND b.origin <> 'reconcile'
   ORDER BY b.commit_seq
   LIMIT (SELECT $3::integer)`,
);

/**
 * The batches committed after $1 for every environment, as the shared feed reads them
 * (apply/feed.ts): no environment has tried them yet, so none has an outcome.
 */
export const FETCH_NEW_BATCHES_AFTER = prepared(
  'fetch_new_batches_after',
  `
  SELECT ${BATCH_COLUMNS}, NULL::text AS previous_status
    FROM permsync.batches b ${BATCH_AUDIT}
   WHERE b.commit_seq > (SELECT $1::bigint)
     AND b.origin <> 'reconcile'
   ORDER BY b.commit_seq
   LIMIT (SELECT $2::integer)`,
);

/**
 * A batch's recorded commands, in order (capture/batch.ts RecordedCommand): no more than
 * capture records, and one more to say there were more.
 */
export const RECORDED_COMMANDS = prepared(
  'recorded_commands',
  `
  SELECT a.command_tag AS tag, a.object_type, a.object_identity AS identity, a.current_user_name,
         a.current_user_oid::int8::float8 AS current_user_oid, a.search_path, a.nested, a.nested_text,
         a.classid || '/' || a.objid AS address, a.noted_identity, a.reassigned_from
    FROM permsync.audit_log a
   WHERE a.batch_id = $1
   ORDER BY a.id
   LIMIT ${MAX_RECORDED_COMMANDS + 1}`,
);

/**
 * What the roles in $1 may change (plan/converge.ts Authority): whether each is a
 * superuser, and the roles whose privileges it has (USAGE: as a member that inherits them,
 * which is what acting as an object's owner or as a grantor takes); and the owners of the
 * sequences in $2 (a JSON array of {schema, name}).
 */
export const AUTHORITY = `
  SELECT json_build_object(
           'roles', (SELECT coalesce(json_agg(json_build_object(
                              'name', a.name, 'superuser', r.rolsuper,
                              'member_of', ARRAY(SELECT m.rolname FROM pg_catalog.pg_roles m WHERE pg_catalog.pg_has_role(r.oid, m.oid, 'USAGE')))), '[]')
                       FROM jsonb_to_recordset($1::jsonb) AS a(name text, oid bigint)
                       JOIN pg_catalog.pg_roles r ON r.oid = a.oid::oid),
           'sequences', (SELECT coalesce(json_agg(json_build_object('schema', n.nspname, 'name', c.relname, 'owner', pg_catalog.pg_get_userbyid(c.relowner))), '[]')
                           FROM jsonb_to_recordset($2::jsonb) AS w(schema text, name text)
                           JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema
                           JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.name AND c.relkind = 'S')
         ) AS authority`;

/**
 * How the catalog prints each argument type in $1 (a JSON array of {key, path, names,
 * arrays}; plan/converge.ts ArgumentTypeLookup), run with search_path = pg_catalog as the
 * catalog is read: a name in the schema it names, or else in the first of the path
 * (pg_catalog first unless the path places it) that has it; NULL where none has. Names are
 * compared, never parsed: no name a login chose can make it fail.
 */
export const ARGUMENT_TYPES = `
  SELECT w.key, pg_catalog.format_type(CASE WHEN w.arrays > 0 THEN t.typarray ELSE t.oid END, NULL) AS printed
    FROM jsonb_to_recordset($1::jsonb) AS w(key text, path text[], names text[], arrays int)
    LEFT JOIN LATERAL (
        SELECT t.oid, t.typarray
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace,
               LATERAL (SELECT CASE WHEN 'pg_catalog' = ANY (w.path) THEN w.path ELSE 'pg_catalog'::text || w.path END AS searched) s
         WHERE t.typname = w.names[pg_catalog.cardinality(w.names)]
           AND CASE pg_catalog.cardinality(w.names) WHEN 1 THEN n.nspname = ANY (s.searched) WHEN 2 THEN n.nspname = w.names[1] ELSE false END
         ORDER BY pg_catalog.array_position(s.searched, n.nspname::text)
         LIMIT 1) t ON true`;

/** The batches written by the same client string as batch $1 (it may commit several transactions), in transaction order. */
export const FETCH_SIBLING_BATCH_IDS = `
  SELECT s.id::text
    FROM permsync.batches b
    JOIN permsync.batches s
      ON s.backend_pid = b.backend_pid AND s.statement_started_at = b.statement_started_at
     AND s.query_text = b.query_text AND s.origin = b.origin
   WHERE b.id = $1 AND s.commit_seq IS NOT NULL
     -- A transaction whose commands all ran inside a DO block or function is no transaction
     -- of the text's permission statements: counting it would pair the others wrongly.
     AND NOT (EXISTS (SELECT FROM permsync.audit_log a WHERE a.batch_id = s.id AND a.nested)
              AND NOT EXISTS (SELECT FROM permsync.audit_log a WHERE a.batch_id = s.id AND NOT coalesce(a.nested, false)))
   ORDER BY s.source_xid`;

/**
 * Batch b (permsync.batches) is one environment e (permsync.environments) has yet to
 * finish. Finished: success, skipped, dry_run; a permanent failure only where the
 * environment continues past them. (permsync.v_batch_outcomes says the same.)
 */
export const UNFINISHED_BY_ENVIRONMENT = `
  b.commit_seq > e.start_after_seq
  AND (b.target_environment IS NULL OR b.target_environment = e.name)
  AND NOT EXISTS (
        SELECT 1 FROM permsync.execution_log x
         WHERE x.batch_id = b.id AND x.environment_name = e.name
           AND (x.execution_status IN ('success', 'skipped', 'dry_run')
                OR (x.execution_status = 'failed' AND x.failure_kind = 'permanent'
                    AND e.on_permanent_failure = 'continue')))`;

/** Where an environment resumes: the last commit_seq before its first unfinished batch. */
export const RESUME_POINT = `
  SELECT coalesce((
           SELECT min(b.commit_seq) - 1
             FROM permsync.batches b
            WHERE ${UNFINISHED_BY_ENVIRONMENT}
         ), (SELECT coalesce(max(commit_seq), e.start_after_seq) FROM permsync.batches))::text AS seq,
         e.in_flight_through::text AS in_flight_through
    FROM permsync.environments e
   WHERE e.name = $1`;

/**
 * Mirrors one environment of the configuration for daemon group $6; a new one starts after
 * the newest batch. One that another group applies to (enabled there, and a daemon of that
 * group leads) is left as it is and not returned: its current group is.
 */
export const UPSERT_ENVIRONMENT = `
  WITH upsert AS (
    INSERT INTO permsync.environments AS e (name, label, priority, enabled, on_permanent_failure, group_name, start_after_seq, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, (SELECT coalesce(max(commit_seq), 0) FROM permsync.batches), now())
    ON CONFLICT (name) DO UPDATE
       SET label = EXCLUDED.label, priority = EXCLUDED.priority, enabled = EXCLUDED.enabled,
           on_permanent_failure = EXCLUDED.on_permanent_failure, group_name = EXCLUDED.group_name, updated_at = now()
     WHERE e.group_name = EXCLUDED.group_name OR NOT e.enabled OR NOT permsync.group_leads(e.group_name)
    RETURNING e.name, e.xmax = 0 AS inserted)
  SELECT (SELECT name FROM upsert) AS taken, (SELECT inserted FROM upsert) AS inserted,
         (SELECT group_name FROM permsync.environments WHERE name = $1) AS held_by`;

/** Queues the batch that brings environment $1, just added, to the source's state (permsync.request_bootstrap). */
export const REQUEST_BOOTSTRAP = `SELECT permsync.request_bootstrap($1)`;

export const DELETE_RULES = `DELETE FROM permsync.sync_rules WHERE environment_name = $1`;

export const INSERT_RULE = `
  INSERT INTO permsync.sync_rules (environment_name, position, rule_type, command_tag, role_pattern, schema_pattern)
  VALUES ($1, $2, $3, $4, $5, $6)`;

export const UPSERT_CONFIG = `
  INSERT INTO permsync.config (key, value, updated_at) VALUES ($1, $2, now())
  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`;

/**
 * One row per batch and environment. A later attempt at the same batch updates the
 * row and counts the retry; started_at keeps the first attempt. Many rows in one
 * statement ($1 is a JSON array, one object per row): an applier that carried a run of
 * batches together logs them in one round trip, in commit order (ids follow it).
 * Only a failure is ever updated: a finished outcome (an operator's skip, above all)
 * stands. Returns the batches whose row it wrote.
 * Its commit does not wait for the source's disk (synchronous_commit off for this
 * transaction only): a DBA's durable commit would otherwise queue behind one flush per
 * environment for every batch. What a crash of the source loses is a suffix of outcomes
 * after the last durable commit, and the run's in-flight mark, written durably before the
 * target saw the run, has those batches re-applied and logged as such.
 */
export const RECORD_EXECUTIONS = prepared(
  'record_executions',
  `
  WITH written AS (
  INSERT INTO permsync.execution_log
         (batch_id, environment_name, commit_seq, applied_sql, execution_status, started_at, finished_at,
          duration_ms, result_message, error_code, error_detail, error_hint, failure_kind, server_version,
          connection_time_ms)
  SELECT batch_id, environment_name, commit_seq, applied_sql, execution_status, started_at, finished_at,
         duration_ms, result_message, error_code, error_detail, error_hint, failure_kind, server_version,
         connection_time_ms
    FROM ROWS FROM (jsonb_to_recordset($1::jsonb)
           AS (batch_id bigint, environment_name text, commit_seq bigint, applied_sql text, execution_status text,
               started_at timestamptz, finished_at timestamptz, duration_ms numeric, result_message text,
               error_code text, error_detail text, error_hint text, failure_kind text, server_version text,
               connection_time_ms numeric)) WITH ORDINALITY
         AS r (batch_id, environment_name, commit_seq, applied_sql, execution_status, started_at, finished_at,
               duration_ms, result_message, error_code, error_detail, error_hint, failure_kind, server_version,
               connection_time_ms, position)
   ORDER BY position
  ON CONFLICT (batch_id, environment_name) DO UPDATE
     SET applied_sql = EXCLUDED.applied_sql, execution_status = EXCLUDED.execution_status,
         finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms,
         result_message = EXCLUDED.result_message, error_code = EXCLUDED.error_code,
         error_detail = EXCLUDED.error_detail, error_hint = EXCLUDED.error_hint,
         failure_kind = EXCLUDED.failure_kind,
         server_version = coalesce(EXCLUDED.server_version, permsync.execution_log.server_version),
         connection_time_ms = coalesce(EXCLUDED.connection_time_ms, permsync.execution_log.connection_time_ms),
         retry_count = permsync.execution_log.retry_count + 1,
         last_retry_at = EXCLUDED.started_at
   WHERE permsync.execution_log.execution_status = 'failed'
  RETURNING batch_id, environment_name, execution_status),
  -- A batch done with (anything but failed) waits for no retry: cleared in the same statement.
  cleared AS (
    DELETE FROM permsync.retry_queue q USING written w
     WHERE q.batch_id = w.batch_id AND q.environment_name = w.environment_name AND w.execution_status <> 'failed')
  SELECT w.batch_id::text FROM (SELECT pg_catalog.set_config('synchronous_commit', 'off', true)) AS a (setting), written w`,
);

export const UPSERT_RETRY = `
  INSERT INTO permsync.retry_queue (batch_id, environment_name, attempts, next_attempt_at, last_error_code, last_error)
  VALUES ($1, $2, 1, $3, $4, $5)
  ON CONFLICT (batch_id, environment_name) DO UPDATE
     SET attempts = permsync.retry_queue.attempts + 1, next_attempt_at = EXCLUDED.next_attempt_at,
         last_error_code = EXCLUDED.last_error_code, last_error = EXCLUDED.last_error`;

export const DELETE_RETRY = `DELETE FROM permsync.retry_queue WHERE batch_id = $1 AND environment_name = $2`;

/** Writes a batch for role changes since the last snapshot; the batch id, or NULL. */
export const CAPTURE_ROLE_CHANGES = `SELECT permsync.capture_role_changes()::text AS batch`;

/**
 * Owners changed by a command no event trigger reports (REASSIGN OWNED), written as a batch
 * that converges them; $1, the pg_shdepend write counters the last look returned (NULL
 * reads the ledger anyway).
 */
export const CAPTURE_OWNER_CHANGES = `SELECT o.batch::text AS batch, o.counted FROM permsync.capture_owner_changes($1) o`;

/**
 * Whether the source captures password verifiers (an admin's switch, permsync.enable_password_sync()) and whether
 * the role snapshot holds them (it also needs an installer that may read pg_authid).
 */
export const PASSWORDS_TRACKED = `
  SELECT coalesce((SELECT value FROM permsync.config WHERE key = 'sync_passwords'), 'false') = 'true' AS captured,
         (permsync.role_state() ->> 'passwords')::boolean AS tracked`;

/**
 * Failures are announced on this channel when settings.notify_on_failure is on. Any login
 * may LISTEN (and NOTIFY): the payload is empty, and what failed is in v_failed_syncs.
 */
export const FAILURE_CHANNEL = 'permsync_failure';
export const NOTIFY_FAILURE = `SELECT pg_notify('${FAILURE_CHANNEL}', '')`;

/**
 * What operators asked for through permsync's control functions: the
 * switches, and per environment whether it is paused, its retry counter (raised by
 * retry_failed() and skip_batch()) and the last commit_seq with a logged outcome (a skip
 * may be ahead of where the daemon is). One row per environment, or one row of NULLs.
 */
export const READ_SWITCHES = `
  SELECT coalesce((SELECT value FROM permsync.config WHERE key = 'sync_enabled'), 'true') = 'true' AS sync_enabled,
         coalesce((SELECT value FROM permsync.config WHERE key = 'dry_run'), 'false') = 'true' AS dry_run,
         e.name, e.paused, e.retry_requested::text,
         (SELECT max(x.commit_seq) FROM permsync.execution_log x WHERE x.environment_name = e.name)::text AS logged_through
    FROM (SELECT) s LEFT JOIN permsync.environments e ON true`;

/** The channel the control functions notify on: a bare wake-up, which anyone can send. */
export const CONTROL_CHANNEL = 'permsync_control';

/**
 * Written before a run of batches: after a crash, these may have applied unlogged. Several
 * environments' at once ($1 names, $2 commit_seqs), in one durable commit, each row only
 * where no other session holds it (an operator's transaction left open after pausing an
 * environment, say): one environment's lock then holds that environment alone, whose mark
 * MARK_ONE_IN_FLIGHT waits for. Returns the environments it marked.
 */
export const MARK_IN_FLIGHT = prepared(
  'mark_in_flight',
  `WITH mine AS (
     SELECT l.name FROM permsync.environments l WHERE l.name = ANY ($1::text[]) FOR UPDATE SKIP LOCKED),
   marked AS (
     UPDATE permsync.environments e SET in_flight_through = m.through
       FROM unnest($1::text[], $2::bigint[]) AS m (name, through)
      WHERE e.name = m.name AND e.name IN (SELECT mine.name FROM mine) AND e.in_flight_through < m.through)
   SELECT mine.name FROM mine`,
);
export const MARK_ONE_IN_FLIGHT = prepared(
  'mark_one_in_flight',
  `UPDATE permsync.environments SET in_flight_through = $2 WHERE name = $1 AND in_flight_through < $2`,
);
/** Back to where it was: the batches marked after it were rolled back on the target, none of them applied. */
export const UNMARK_IN_FLIGHT = `UPDATE permsync.environments SET in_flight_through = $2 WHERE name = $1`;

/** Retention (permsync.cleanup_old_logs): what it deleted, per table. */
export const CLEANUP_OLD_LOGS = `SELECT * FROM permsync.cleanup_old_logs()`;

/** The daemon group $2's environments no longer in its configuration stop counting (lag, retention) until they return. */
export const RETIRE_ENVIRONMENTS = `
  UPDATE permsync.environments SET enabled = false, updated_at = now()
   WHERE enabled AND group_name = $2 AND NOT (name = ANY ($1::text[]))`;

/**
 * The key of the roles permsync manages on environment $1's server (managed_roles.server_key):
 * the one its server's environments share once the daemon has joined it, its name until then.
 */
const SERVER_KEY = `coalesce((SELECT e.server_key FROM permsync.environments e WHERE e.name = $1), $1)`;

/** The roles permsync manages on an environment's server (permsync.v_managed_roles): oid there, name, and the source role's oid. */
export const MANAGED_ROLES = `
  SELECT role_oid::int8::float8 AS oid, role_name AS name, source_oid::int8::float8 AS "sourceOid"
    FROM permsync.v_managed_roles WHERE environment_name = $1`;

/** Records roles as permsync's on an environment's server, once for all its environments; $2 is a JSON array of {oid, name, sourceOid}. */
export const RECORD_MANAGED_ROLES = `
  INSERT INTO permsync.managed_roles (server_key, role_oid, role_name, source_oid, how)
  SELECT ${SERVER_KEY}, r.oid::oid, r.name, r."sourceOid"::oid, $3
    FROM jsonb_to_recordset($2::jsonb) AS r(oid bigint, name name, "sourceOid" bigint)
  ON CONFLICT (server_key, role_oid) DO UPDATE SET role_name = EXCLUDED.role_name, source_oid = EXCLUDED.source_oid`;

/** Forgets roles dropped on an environment's server ($2: their oids there). */
export const FORGET_MANAGED_ROLES = `
  DELETE FROM permsync.managed_roles WHERE server_key = ${SERVER_KEY} AND role_oid = ANY ($2::int8[]::oid[])`;

/** Names a managed role by its new name after a rename ($2 oid, $3 name). */
export const RENAME_MANAGED_ROLE = `
  UPDATE permsync.managed_roles SET role_name = $3 WHERE server_key = ${SERVER_KEY} AND role_oid = $2::int8::oid`;

/**
 * Records the server environment $1's database is on ($2, Target.serverIdentity), joining it
 * to that server's environments: from then on the roles permsync manages there are one set
 * for them all (permsync.join_server).
 */
export const RECORD_SERVER = `SELECT permsync.join_server($1, $2)`;

/**
 * A conflict seen again keeps its first batch; a new one opens a row. $3 is a JSON array
 * of {role, oid, reason}.
 */
export const RECORD_ROLE_CONFLICTS = `
  INSERT INTO permsync.role_conflicts (environment_name, role_name, target_oid, batch_id, reason)
  SELECT $1, c.role, c.oid::oid, $2, c.reason
    FROM jsonb_to_recordset($3::jsonb) AS c(role name, oid bigint, reason text)
  ON CONFLICT (environment_name, role_name) WHERE resolved_at IS NULL
  DO UPDATE SET last_seen_at = now()`;

/** Closes the open conflicts of these roles on an environment and the others of its server, saying how. */
export const RESOLVE_ROLE_CONFLICTS = `
  UPDATE permsync.role_conflicts SET resolved_at = now(), resolution = $3
   WHERE environment_name IN (SELECT $1::text UNION SELECT o.name FROM permsync.environments o WHERE coalesce(o.server_key, o.name) = ${SERVER_KEY})
     AND role_name = ANY ($2::name[]) AND resolved_at IS NULL`;

/**
 * Claims daemon group $2's leader lease for this session for $1 ms, or renews it
 * (permsync.claim_leadership): whether this daemon now leads, and who holds the lease.
 */
export const CLAIM_LEADERSHIP = `
  SELECT is_leader, pid, user_name, application_name, host(client_addr) AS client_addr, since
    FROM permsync.claim_leadership($1, $2)`;

/** Gives daemon group $1's leader lease up, if this session holds it. */
export const RELEASE_LEADERSHIP = `SELECT permsync.release_leadership($1)`;

/** The bootstrap superuser's name: initdb gives it oid 10. */
export const BOOTSTRAP_SUPERUSER = `SELECT rolname AS name FROM pg_catalog.pg_roles WHERE oid = 10`;
