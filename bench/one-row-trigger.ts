/**
 * The least a capture that keeps its batches in tables does, measured for the DBA's side
 * only: the event trigger writes one row with the client string, and at commit a deferred
 * trigger gives it its place in commit order (a sequence number drawn under a row lock held
 * until the commit is visible, as permsync's assign_commit_seq does). No role check, no
 * audit row, no notification, no masking: what is left of permsync's cost above this is
 * theirs, and this above the empty trigger is what keeping a batch in a table costs.
 */
export const ONE_ROW_SQL = `
  CREATE SCHEMA bench_one;
  CREATE TABLE bench_one.locks (name text PRIMARY KEY);
  INSERT INTO bench_one.locks VALUES ('commit_seq');
  CREATE SEQUENCE bench_one.commit_seq;
  CREATE TABLE bench_one.batches (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      commit_seq bigint UNIQUE,
      query_text text NOT NULL);
  CREATE FUNCTION bench_one.number() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS $fn$
  BEGIN
      PERFORM FROM bench_one.locks l WHERE l.name = 'commit_seq' FOR UPDATE;
      UPDATE bench_one.batches SET commit_seq = nextval('bench_one.commit_seq') WHERE id = NEW.id;
      RETURN NULL;
  END
  $fn$;
  CREATE CONSTRAINT TRIGGER number AFTER INSERT ON bench_one.batches
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_one.number();
  CREATE FUNCTION bench_one.record() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS $fn$
  BEGIN
      INSERT INTO bench_one.batches (query_text) VALUES (current_query());
  END
  $fn$;
  CREATE FUNCTION bench_one.capture() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
  BEGIN
      PERFORM bench_one.record();
  END
  $fn$;
  CREATE EVENT TRIGGER bench_one_capture ON ddl_command_end WHEN TAG IN ('GRANT', 'REVOKE')
      EXECUTE FUNCTION bench_one.capture();`;
