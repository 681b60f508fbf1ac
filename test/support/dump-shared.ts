import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { TestServer } from './servers.js';

/**
 * A server's permissions as pg_dump tells them, for comparing a target with the source
 * the way a DBA would: the role, membership, role setting and parameter privilege lines
 * of `pg_dumpall --roles-only --no-role-passwords`, the privilege and owner lines of
 * `pg_dumpall --tablespaces-only`, and those of `pg_dump --schema-only --create` of each
 * database, sorted. What legitimately differs between servers is normalised or left out:
 * the current database's name (`{database}`), a tablespace's location (CREATE TABLESPACE
 * is not kept), and the lines the caller names (permsync's own schema and roles, say).
 *
 * pg_dump reads servers of its own major and older only. Where no pg_dump that can read
 * the server is installed (PostgreSQL 16 and later, here), the same facts come from the
 * catalogs (catalogAccount), in the lines pg_dumpall and pg_dump 16+ print for them.
 */
export interface DumpOptions {
  /** Lines to leave out (what only one side has on purpose: permsync's own schema and roles, say). */
  leaveOut: RegExp;
}

const run = promisify(execFile);

/** The newest bin directory with pg_dump and pg_dumpall that can read a server of `major`. */
function dumpTools(major: number): string | undefined {
  const dirs: { major: number; dir: string }[] = [];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const v of readdirSync(debian)) dirs.push({ major: Number(v), dir: join(debian, v, 'bin') });
  }
  return dirs.filter((d) => d.major >= major && existsSync(join(d.dir, 'pg_dumpall'))).sort((a, b) => b.major - a.major)[0]?.dir;
}

export async function permissionDump(server: TestServer, options: DumpOptions): Promise<string[]> {
  const client = new pg.Client(server.url);
  await client.connect();
  try {
    const { rows } = await client.query<{ current: string; databases: string[] }>(
      `SELECT current_database() AS current,
              array_agg(datname::text ORDER BY datname) FILTER (WHERE datallowconn) AS databases FROM pg_database`,
    );
    const { current, databases } = rows[0] as { current: string; databases: string[] };
    const tools = dumpTools(server.major);
    const lines = tools ? await dumpedLines(server, tools, databases) : await catalogAccount(client);
    // The current database is each environment's own, whatever its name.
    const here = new RegExp(`DATABASE "?${escape(current)}"?(?=[ ;:]|$)`, 'g');
    return lines
      .map((l) => l.replace(here, 'DATABASE {database}'))
      .filter((l) => !options.leaveOut.test(l))
      .sort();
  } finally {
    await client.end();
  }
}

function escape(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

const KEPT =
  /^(CREATE ROLE|ALTER ROLE|GRANT|REVOKE|ALTER .* OWNER TO|ALTER DEFAULT PRIVILEGES|SET SESSION AUTHORIZATION|RESET SESSION AUTHORIZATION)/;

async function dumpedLines(server: TestServer, tools: string, databases: string[]): Promise<string[]> {
  const tool = (name: string, args: string[]) => run(join(tools, name), args, { maxBuffer: 64 * 1024 * 1024 }).then((r) => r.stdout);
  const out = [
    ...(await tool('pg_dumpall', ['--roles-only', '--no-role-passwords', '-d', server.url])).split('\n'),
    ...(await tool('pg_dumpall', ['--tablespaces-only', '-d', server.url])).split('\n'),
  ];
  for (const database of databases) {
    out.push(...(await tool('pg_dump', ['--schema-only', '--create', '-d', server.urlFor(database)])).split('\n'));
  }
  return out.filter((l) => KEPT.test(l));
}

/**
 * What pg_dumpall and pg_dump 16+ print of memberships (with their grantor and options),
 * role settings, and the privileges on databases, tablespaces and parameters, read from
 * the catalogs. Privileges are printed per ACL item (grantee=privileges/grantor), the
 * facts pg_dump's GRANT lines are made of.
 */
async function catalogAccount(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(`
    SELECT format('GRANT %I TO %I%s GRANTED BY %I;', pg_get_userbyid(m.roleid), r.rolname,
                  CASE WHEN concat_ws(', ', CASE WHEN m.admin_option THEN 'ADMIN OPTION' END,
                                        CASE WHEN m.inherit_option <> r.rolinherit THEN 'INHERIT ' || upper(m.inherit_option::text) END,
                                        CASE WHEN NOT m.set_option THEN 'SET FALSE' END) <> ''
                       THEN ' WITH ' || concat_ws(', ', CASE WHEN m.admin_option THEN 'ADMIN OPTION' END,
                                        CASE WHEN m.inherit_option <> r.rolinherit THEN 'INHERIT ' || upper(m.inherit_option::text) END,
                                        CASE WHEN NOT m.set_option THEN 'SET FALSE' END) ELSE '' END,
                  pg_get_userbyid(m.grantor)) AS line
      FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
    UNION ALL
    SELECT format('ALTER ROLE %I%s SET %s;', pg_get_userbyid(s.setrole),
                  CASE WHEN s.setdatabase = 0 THEN '' ELSE ' IN DATABASE ' || quote_ident(d.datname) END, c)
      FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase CROSS JOIN LATERAL unnest(s.setconfig) c
    UNION ALL
    SELECT format('GRANT ON DATABASE %I: %s;', d.datname, a) FROM pg_database d CROSS JOIN LATERAL unnest(d.datacl) a
    UNION ALL
    SELECT format('GRANT ON TABLESPACE %I: %s;', t.spcname, a) FROM pg_tablespace t CROSS JOIN LATERAL unnest(t.spcacl) a
    UNION ALL
    SELECT format('GRANT ON PARAMETER %I: %s;', p.parname, a) FROM pg_parameter_acl p CROSS JOIN LATERAL unnest(p.paracl) a`);
  return rows.map((r) => r.line);
}
