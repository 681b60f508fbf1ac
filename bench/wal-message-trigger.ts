/**
 * A capture design permsync has not built, measured for the DBA's side only: the event
 * trigger writes nothing to a table and emits a transactional WAL message instead
 * (pg_logical_emit_message), which a daemon would read from a logical replication slot in
 * commit order. Nothing reads the messages here and no slot exists (a slot nobody
 * advances would hold back catalog vacuum and slow every GRANT), so this is the floor of
 * such a design on a server with wal_level = logical, which it needs.
 *
 * The message carries what a batch row carries: the command, the first object, the
 * identity and search_path it ran with, the statement's time and the client string. The
 * emitting function is SECURITY DEFINER, as it would have to be (the design would revoke
 * pg_logical_emit_message from PUBLIC so that nobody else can forge a message).
 */
const EMIT_COMMAND = `
  CREATE FUNCTION bench_wal.emit_command(command_tag text, invoker name, invoker_search_path text)
  RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
      cmd record;
  BEGIN
      SELECT * INTO cmd FROM pg_event_trigger_ddl_commands() LIMIT 1;
      IF NOT FOUND THEN
          RETURN;
      END IF;
      %ORDERING%
      PERFORM pg_logical_emit_message(true, 'permsync', json_build_object(
          'tag', command_tag, 'object_type', cmd.object_type, 'object', cmd.object_identity,
          'user', invoker, 'search_path', invoker_search_path,
          'at', statement_timestamp(), 'query', current_query())::text);
  END
  $fn$;
  CREATE FUNCTION bench_wal.capture() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
  BEGIN
      PERFORM bench_wal.emit_command(tg_tag, current_user, pg_catalog.current_setting('search_path'));
  END
  $fn$;
  CREATE EVENT TRIGGER bench_wal_capture ON ddl_command_end WHEN TAG IN ('GRANT', 'REVOKE')
      EXECUTE FUNCTION bench_wal.capture();`;

/** The message alone: what the design costs if nothing orders role changes before it. */
export const WAL_MESSAGE_SQL = `CREATE SCHEMA bench_wal; ${EMIT_COMMAND.replace('%ORDERING%', '')}`;

/**
 * With permsync's own role check first, as the design would still need it: a GRANT to a
 * role created earlier must reach the targets after the CREATE ROLE, and no event trigger
 * fires for roles. Runs in a database where permsync is installed with its own trigger
 * disabled, so that the check reads a real snapshot.
 */
export const WAL_MESSAGE_ORDERED_SQL = `
  ALTER EVENT TRIGGER permsync_capture DISABLE;
  CREATE SCHEMA bench_wal;
  ${EMIT_COMMAND.replace(
    '%ORDERING%',
    `IF NOT permsync.roles_in_snapshot(permsync.identifiers(current_query()), current_user)
         AND NOT permsync.role_snapshot_matches(true) THEN
          PERFORM permsync.capture_role_changes();
      END IF;`,
  )}`;
