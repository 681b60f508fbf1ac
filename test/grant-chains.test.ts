import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEnvironments } from '../src/drift/check.js';
import { startPipeline, type Pipeline } from './support/pipeline.js';
import { TablespaceDirs } from './support/tablespace.js';

/**
 * Grant-option chains of any depth on what no event trigger sees (the source's database,
 * another database, a tablespace, a parameter), carried by the role watcher as one batch:
 * on the target each grantor gets its option before it grants, and a grant that depends
 * on another's option is revoked before that option goes. The chain's roles are created
 * in a scrambled order, so that no order by oid or by name is also the chain's.
 */

/** The chains each test builds: a database 100 grants deep, the rest 40. */
const CHAINS = [
  { on: 'DATABASE {own}', privilege: 'CREATE', depth: 40 },
  { on: 'DATABASE {db}', privilege: 'CONNECT', depth: 100 },
  { on: 'TABLESPACE {ts}', privilege: 'CREATE', depth: 40 },
  { on: 'PARAMETER {param}', privilege: 'SET', depth: 40 },
];
const LONGEST = Math.max(...CHAINS.map((c) => c.depth));

/** The names a test's statements use: its own roles, database, tablespace and parameter. */
interface Names {
  prefix: string;
  own: string;
  db: string;
  ts: string;
  param: string;
}

function link(names: Names, position: number): string {
  return `${names.prefix}_${String(position).padStart(3, '0')}`;
}

/** The chain's roles, created in an order (37 steps on, around the chain) that is neither theirs nor their names'. */
function createRoles(names: Names): string {
  return Array.from({ length: LONGEST }, (_, i) => `CREATE ROLE ${link(names, ((i * 37) % LONGEST) + 1)}`).join('; ');
}

/** Each chain, granted link by link as the previous link, every link but the last with the grant option. */
function buildChains(names: Names): string {
  const out: string[] = [];
  for (const chain of CHAINS) {
    const on = chain.on.replace(/\{(\w+)\}/, (_, key: keyof Names) => names[key]);
    for (let position = 1; position <= chain.depth; position++) {
      if (position > 1) out.push(`SET ROLE ${link(names, position - 1)}`);
      out.push(`GRANT ${chain.privilege} ON ${on} TO ${link(names, position)}${position < chain.depth ? ' WITH GRANT OPTION' : ''}`);
    }
    out.push('RESET ROLE');
  }
  return out.join('; ');
}

/** The head of each chain loses its grant option, and with it every grant down the chain. */
function revokeHeads(names: Names): string {
  return CHAINS.map((chain) => {
    const on = chain.on.replace(/\{(\w+)\}/, (_, key: keyof Names) => names[key]);
    return `REVOKE GRANT OPTION FOR ${chain.privilege} ON ${on} FROM ${link(names, 1)} CASCADE`;
  }).join('; ');
}

describe('grant-option chains on shared objects', () => {
  let p: Pipeline;
  const dirs = new TablespaceDirs();
  let own: string;

  beforeAll(async () => {
    p = await startPipeline(['target'], { embedded: true });
    const { rows } = await p.sourceClient.query<{ name: string }>('SELECT current_database() AS name');
    own = (rows[0] as { name: string }).name;
    for (const client of [p.sourceClient, ...p.environments.map((e) => e.client)]) {
      for (const prefix of ['built', 'cut']) {
        await client.query(`CREATE DATABASE ${prefix}_db`);
        await client.query(`CREATE TABLESPACE ${prefix}_ts LOCATION '${await dirs.make()}'`);
      }
    }
    await p.startDaemon();
  }, 120_000);

  afterAll(async () => {
    await p?.close();
    await dirs.remove();
  });

  function names(prefix: string, param: string): Names {
    return { prefix, own, db: `${prefix}_db`, ts: `${prefix}_ts`, param };
  }

  /** Every grant to the test's roles on its objects, with its grantor, as lines. */
  async function acl(client: Pipeline['sourceClient'], n: Names): Promise<string[]> {
    const { rows } = await client.query<{ line: string }>(
      `SELECT o.what || ': ' || pg_get_userbyid(a.grantor) || ' granted ' || a.privilege_type || ' to '
              || pg_get_userbyid(a.grantee) || CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END AS line
         FROM (SELECT 'database ' || CASE WHEN datname = current_database() THEN '{own}' ELSE datname END, datacl
                 FROM pg_database WHERE datname IN (current_database(), $2)
               UNION ALL SELECT 'tablespace ' || spcname, spcacl FROM pg_tablespace WHERE spcname = $3
               UNION ALL SELECT 'parameter ' || parname, paracl FROM pg_parameter_acl WHERE parname = $4) o(what, acl)
        CROSS JOIN LATERAL aclexplode(o.acl) a
        WHERE a.grantee <> 0 AND starts_with(pg_get_userbyid(a.grantee), $1 || '_')
        ORDER BY 1`,
      [n.prefix, n.db, n.ts, n.param],
    );
    return rows.map((r) => r.line);
  }

  async function expectTargetsEqual(n: Names): Promise<string[]> {
    const source = await acl(p.sourceClient, n);
    for (const e of p.environments) expect(await acl(e.client, n)).toEqual(source);
    const [result] = await checkEnvironments(p.config(), p.sourceClient, p.config().environments, { dropExtraRoles: false });
    expect(result?.error).toBeUndefined();
    expect(result?.report?.differences.map((d) => d.change)).toEqual([]);
    const { rows } = await p.sourceClient.query(`SELECT result_message FROM permsync.execution_log WHERE execution_status = 'failed'`);
    expect(rows).toEqual([]);
    return source;
  }

  it('built in one transaction, 40 and 100 grants deep, arrive whole, each link granted by the one before', async () => {
    const n = names('built', 'work_mem');
    await p.dba(createRoles(n));
    await p.settleRoles();
    await p.dba(buildChains(n));
    await p.settleRoles();
    const source = await expectTargetsEqual(n);
    expect(source).toContain(`database built_db: ${link(n, 99)} granted CONNECT to ${link(n, 100)}`);
    expect(source).toContain(`parameter work_mem: ${link(n, 39)} granted SET to ${link(n, 40)}`);
    expect(source).toHaveLength(CHAINS.reduce((sum, c) => sum + c.depth, 0));
  });

  it("cut at the head (its grant option revoked with CASCADE) lose every grant down the chain, dependents' first", async () => {
    const n = names('cut', 'maintenance_work_mem');
    await p.dba(createRoles(n));
    await p.settleRoles();
    // Built on the target as on the source, as the schema is: the cut alone is carried.
    await p.everywhere(buildChains(n));
    await p.settleRoles();
    expect(await expectTargetsEqual(n)).toHaveLength(CHAINS.reduce((sum, c) => sum + c.depth, 0));
    await p.dba(revokeHeads(n));
    await p.settleRoles();
    const heads = await expectTargetsEqual(n);
    expect(heads).toHaveLength(CHAINS.length);
    for (const line of heads) expect(line).toMatch(new RegExp(` to ${link(n, 1)}$`));
  });
});
