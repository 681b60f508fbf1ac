/**
 * The synchronous design permsync did not choose, for comparison only: an event trigger
 * that sends each GRANT/REVOKE to every target over dblink inside the DBA's transaction,
 * so the DBA waits for all of them. It is given its best case: connections opened once
 * per DBA session and kept (dblink named connections), and each target runs the
 * statement in autocommit (no two-phase commit, which a correct version would need). The
 * targets' commits are as durable as the DBA's (synchronous_commit is passed on).
 */
export function syncTriggerSql(targets: { name: string; port: number }[]): string {
  const rows = targets.map((t) => `('${t.name}', 'host=127.0.0.1 port=${t.port} dbname=postgres user=postgres password=postgres')`).join(', ');
  return `
    CREATE EXTENSION dblink;
    CREATE SCHEMA bench_sync;
    CREATE TABLE bench_sync.targets (name text PRIMARY KEY, conninfo text NOT NULL);
    INSERT INTO bench_sync.targets VALUES ${rows};

    CREATE FUNCTION bench_sync.send() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
    DECLARE
        t record;
        open text[] := coalesce(dblink_get_connections(), '{}');
    BEGIN
        FOR t IN SELECT * FROM bench_sync.targets ORDER BY name LOOP
            IF NOT t.name = ANY (open) THEN
                PERFORM dblink_connect(t.name, t.conninfo);
                PERFORM dblink_exec(t.name, 'SET synchronous_commit = ' || current_setting('synchronous_commit'));
            END IF;
            PERFORM dblink_exec(t.name, current_query());
        END LOOP;
    END
    $fn$;

    CREATE EVENT TRIGGER bench_sync ON ddl_command_end WHEN TAG IN ('GRANT', 'REVOKE')
        EXECUTE FUNCTION bench_sync.send();`;
}
