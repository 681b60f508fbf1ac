import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { PACKAGE_ROOT } from '../src/paths.js';
import { measureBurst, measureCatchUp } from './burst.js';
import { measureAddEnvironment } from './add-environment.js';
import { measureBulkRoles } from './bulk-roles.js';
import { measureFleet } from './fleet.js';
import { measureCostByRoleCount } from './cost-by-roles.js';
import { spawnDaemon, type DaemonProcess } from './daemon-process.js';
import { measureStatementLatency, type Side } from './dba-cost.js';
import { createOrDrop, DDL_ROLE, measureOwnerLooks, migration, prepareDdl } from './ddl-cost.js';
import { install } from '../src/install/migrate.js';
import { createGrants, runDrift } from './drift.js';
import { lastCommitSeq, waitApplied } from './progress.js';
import { measurePropagation } from './propagation.js';
import { mb, ms, printTable, rate, ratio, seconds, stamp, writeResults, type Row } from './report.js';
import { burstRows, catchUpRows, costRows, get, roleRows } from './rows.js';
import { createBaselineRoles, createRoles, measureCheck, measureDetection } from './roles.js';
import { connect, ENVIRONMENTS, startBenchServers, type BenchServers } from './servers.js';
import type { LocalCluster } from '../dev/embedded/cluster.js';
import { loadAverage } from './stats.js';

/** The sizes the goals are stated for (bench/README.md). */
const SIZES = {
  // Whole cycles of the side order (balancedOrder): 8 sides, rounds of 100.
  costPerSide: 2400,
  durableCostPerSide: 1600,
  costRound: 100,
  costWarmup: 200,
  propagationPerSecond: 50,
  propagationSeconds: 20,
  propagationWarmupSeconds: 2,
  burst: 10_000,
  catchUp: 10_000,
  catchUpEnvironment: 'prod',
  roles: 10_000,
  checks: 200,
  detections: 20,
  costAtRolesPerSide: 600,
  driftTables: 1000,
  driftRolesPerTable: 100,
  driftEnvironment: 'dev',
  bulkRoles: 10_000,
  bulkRoleMajors: [14, 18],
  roleCounts: [100, 10_000, 100_000],
  costByRolesPerSide: 600,
  addedEnvironmentRoles: 10_000,
  fleetSizes: [4, 50],
  fleetPerSecond: 20,
  fleetSeconds: 15,
  fleetBurst: 2000,
  fleetRoleChanges: 20,
  fleetDriftRoles: 10_000,
  ddlExisting: 10_000,
  ddlPerSide: 1000,
  migrationColumns: 400,
  migrationsPerSide: 12,
  ownerLooks: 30,
  ownersReassigned: 1000,
} as const;
/** The daemon's role_watch_interval_ms: the default, which the detection goal is stated for. */
const ROLE_WATCH_INTERVAL_MS = 500;

/** Measurements by number; --only=3,6 runs some (1 and 2 run together, so do 4, 5 and 8). */
const STEPS = {
  cost: ['1', '2'],
  propagation: ['3'],
  burst: ['4', '5', '8'],
  roles: ['6'],
  drift: ['7'],
  bulk: ['9'],
  roleCount: ['10'],
  addEnvironment: ['11'],
  fleet: ['12'],
  ddl: ['13', '14', '15'],
} as const;
type Step = keyof typeof STEPS;

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function main(argv: string[]): Promise<void> {
  const only = argv
    .find((a) => a.startsWith('--only='))
    ?.slice('--only='.length)
    .split(',');
  const wanted = (step: Step) => !only || STEPS[step].some((id) => only.includes(id));
  const profile = argv.includes('--profile');
  const startedAt = new Date();
  const loadAtStart = await loadAverage();
  say(`load average at start: ${loadAtStart} (${cpus().length} cores)`);

  const dir = await mkdtemp(join(tmpdir(), 'permsync-bench-'));
  say('starting eight embedded PostgreSQL servers: four sources (permsync, plain, synchronous dblink, WAL message), four targets');
  const servers = await startBenchServers();
  const clients: pg.Client[] = [];
  let daemon: DaemonProcess | undefined;
  let finished = false;
  try {
    const open = async (url: string) => {
      const client = await connect(url);
      clients.push(client);
      return client;
    };
    const [dba, plain, monitor] = await Promise.all([open(servers.source.url), open(servers.plain.url), open(servers.source.url)]);
    const profileDir = profile ? join(PACKAGE_ROOT, 'bench', 'results', `profile-${stamp(startedAt)}`) : undefined;
    daemon = await spawnDaemon({ config: daemonConfig(servers), dir, ...(profileDir && { profileDir }) });
    say(`daemon running (pid ${daemon.pid}, log ${daemon.logFile})${profileDir ? `, CPU profile to ${profileDir}` : ''}`);

    const rows: Row[] = [];
    const results: Record<string, unknown> = {};
    const settle = settler(monitor);

    if (wanted('cost')) {
      // Twice: commits that do not wait for the disk (the CPU and round trips alone: the
      // worst case for a ratio), then durable ones, as a production server's DBA sees them.
      const dbaCost: Record<string, unknown> = (results.dbaCost = {});
      for (const durable of [false, true]) {
        const perSide = durable ? SIZES.durableCostPerSide : SIZES.costPerSide;
        const mode = durable ? 'durable commit' : 'no disk wait';
        say(`1-2: ${perSide} GRANT/REVOKE per side, ${mode}, in rounds of ${SIZES.costRound}, sides alternating`);
        // Fresh sessions: the synchronous design's dblink connections take the session's setting.
        const sides: Side[] = [
          { name: 'permsync', client: await open(servers.source.url), afterRound: await settle() },
          { name: 'plain', client: await open(servers.plain.url) },
          { name: 'capture only', client: await open(servers.captureOnlyUrl) },
          { name: 'sync', client: await open(servers.sync.url) },
          { name: 'empty trigger', client: await open(servers.emptyTriggerUrl) },
          { name: 'one row', client: await open(servers.oneRowUrl) },
          { name: 'wal level logical', client: await open(servers.walPlainUrl) },
          { name: 'wal message', client: await open(servers.walMessageUrl) },
          { name: 'wal message ordered', client: await open(servers.walMessageOrderedUrl) },
        ];
        if (durable) for (const side of sides) await side.client.query('SET synchronous_commit = on');
        const cost = await measureStatementLatency(sides, { perSide, roundSize: SIZES.costRound, warmup: SIZES.costWarmup });
        dbaCost[durable ? 'durable' : 'noDiskWait'] = Object.fromEntries(cost);
        rows.push(...costRows('1', `DBA cost, permsync, ${mode}`, get(cost, 'permsync'), get(cost, 'plain'), 1.2));
        rows.push(
          ...costRows('1', `DBA cost, permsync's capture with no daemon on the same cores, ${mode}`, get(cost, 'capture only'), get(cost, 'plain')),
        );
        rows.push(...costRows('2', `DBA cost, synchronous dblink design, ${mode}`, get(cost, 'sync'), get(cost, 'plain')));
        rows.push(
          ...costRows(
            '1',
            `DBA cost, an event trigger that does nothing (the floor of any such capture), ${mode}`,
            get(cost, 'empty trigger'),
            get(cost, 'plain'),
          ),
        );
        rows.push(
          ...costRows(
            '1',
            `DBA cost, one row per statement numbered at commit (not built: the floor of capture into tables), ${mode}`,
            get(cost, 'one row'),
            get(cost, 'plain'),
          ),
        );
        rows.push(
          ...costRows(
            '1',
            `DBA cost, no capture but wal_level = logical (what a WAL-based capture needs), ${mode}`,
            get(cost, 'wal level logical'),
            get(cost, 'plain'),
          ),
        );
        rows.push(
          ...costRows(
            '1',
            `DBA cost, a WAL-message capture (not built: its floor, wal_level = logical), ${mode}`,
            get(cost, 'wal message'),
            get(cost, 'plain'),
          ),
        );
        rows.push(
          ...costRows(
            '1',
            `DBA cost, the same after permsync's role check (what ordering roles first adds), ${mode}`,
            get(cost, 'wal message ordered'),
            get(cost, 'plain'),
          ),
        );
      }
    }

    if (wanted('propagation')) {
      say(`3: propagation at ${SIZES.propagationPerSecond} statements/s for ${SIZES.propagationSeconds} s`);
      const propagation = await measurePropagation(dba, monitor, ENVIRONMENTS, {
        perSecond: SIZES.propagationPerSecond,
        seconds: SIZES.propagationSeconds,
        warmupSeconds: SIZES.propagationWarmupSeconds,
      });
      results.propagation = propagation;
      const d = propagation.allEnvironments;
      rows.push({
        id: '3',
        measurement: `propagation to all 4, p50 (sent ${rate(propagation.sentPerSecond)})`,
        figure: ms(d.p50),
        goal: '',
        met: null,
      });
      rows.push({ id: '3', measurement: 'propagation to all 4, p99', figure: `${ms(d.p99)} (max ${ms(d.max)})`, goal: '< 100 ms', met: d.p99 < 100 });
    }

    if (wanted('burst')) {
      const stopSampling = daemon.sampleRss();
      say(`4: burst of ${SIZES.burst} statements`);
      const backendPid = async (client: pg.Client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
      const [dbaPid, monitorPid] = [await backendPid(dba), await backendPid(monitor)];
      const postmaster = (cluster: LocalCluster) => cluster.pid() as number;
      const burst = await measureBurst(dba, monitor, servers.targets, SIZES.burst, [
        { name: 'sending client', pids: [process.pid] },
        { name: "DBA's session (capture)", pids: [dbaPid] },
        { name: 'daemon', pids: [daemon.pid] },
        { name: 'source for the daemon (its sessions, WAL writer, ...)', childrenOf: [postmaster(servers.source)], except: [dbaPid, monitorPid] },
        { name: 'four targets', childrenOf: [...servers.targets.values()].map(postmaster) },
      ]);
      say(`5: ${SIZES.catchUpEnvironment} down while ${SIZES.catchUp} statements commit, then back`);
      const catchUp = await measureCatchUp(dba, monitor, servers.targets, SIZES.catchUpEnvironment, SIZES.catchUp);
      const peakRss = stopSampling();
      results.burst = burst;
      results.catchUp = catchUp;
      results.daemonRss = { peakDuringBurstAndCatchUpMb: peakRss, highWaterMarkMb: daemon.peakRssMb() };
      rows.push(...burstRows(burst), ...catchUpRows(catchUp));
      rows.push({ id: '8', measurement: 'daemon peak RSS during 4 and 5', figure: mb(peakRss), goal: '< 150 MB', met: peakRss < 150 });
    }

    if (wanted('roles') || wanted('drift')) {
      say(`6: ${SIZES.roles} roles on the source (as its baseline) and on the plain source`);
      const fewRoles = wanted('roles') ? await measureCheck(monitor, SIZES.checks) : undefined;
      await createBaselineRoles(monitor, SIZES.roles);
      await createRoles(plain, SIZES.roles);
      if (fewRoles) {
        const check = await measureCheck(monitor, SIZES.checks);
        say(`6: ${SIZES.detections} role changes, each at a random moment of the watcher's interval`);
        const detection = await measureDetection(dba, monitor, SIZES.detections, ROLE_WATCH_INTERVAL_MS);
        say(`6: DBA cost again with ${SIZES.roles} roles (every captured command checks the roles first)`);
        const cost = await measureStatementLatency(
          [
            { name: 'permsync', client: dba, afterRound: await settle() },
            { name: 'plain', client: plain },
          ],
          { perSide: SIZES.costAtRolesPerSide, roundSize: SIZES.costRound, warmup: SIZES.costRound },
        );
        results.roleWatcher = { checkWithFewRoles: fewRoles, check, detection, dbaCost: Object.fromEntries(cost) };
        rows.push(...roleRows(SIZES.roles, fewRoles, check, detection));
        rows.push(...costRows('6', `DBA cost, permsync, ${SIZES.roles} roles`, get(cost, 'permsync'), get(cost, 'plain'), 1.2));
      }
    }

    if (wanted('drift')) {
      say(`7: drift, ${SIZES.roles} roles and ${SIZES.driftTables * SIZES.driftRolesPerTable} grants, against ${SIZES.driftEnvironment}`);
      const target = await open(servers.target(SIZES.driftEnvironment).url);
      await createRoles(target, SIZES.roles);
      const grants = { tables: SIZES.driftTables, rolesPerTable: SIZES.driftRolesPerTable, roles: SIZES.roles };
      await Promise.all([createGrants(monitor, grants), createGrants(target, grants)]);
      const drift = await runDrift(daemon.configFile, SIZES.driftEnvironment, dir, monitor);
      results.drift = drift;
      rows.push(
        drift.measured
          ? {
              id: '7',
              measurement: `drift --env ${SIZES.driftEnvironment} (${drift.differences ?? '?'} differences), time`,
              figure: seconds(drift.seconds),
              goal: '',
              met: null,
            }
          : { id: '7', measurement: 'drift', figure: `not measured: ${drift.reason}`, goal: '', met: null },
      );
      if (drift.measured) rows.push({ id: '7', measurement: 'drift, peak RSS of the process', figure: mb(drift.peakRssMb), goal: '', met: null });
    }

    if (wanted('ddl')) {
      say(`13: CREATE TABLE and DROP TABLE by a role in its schema, ${SIZES.ddlExisting} of its tables there, permsync's source and the plain one`);
      await Promise.all([prepareDdl(monitor, SIZES.ddlExisting), prepareDdl(plain, SIZES.ddlExisting)]);
      const sides: Side[] = [
        { name: 'permsync', client: await open(servers.source.url) },
        { name: 'plain', client: await open(servers.plain.url) },
      ];
      for (const side of sides) await side.client.query(`SET ROLE ${DDL_ROLE}`);
      const cost = await measureStatementLatency(sides, {
        perSide: SIZES.ddlPerSide,
        roundSize: SIZES.costRound,
        warmup: SIZES.costRound,
        statement: createOrDrop,
      });
      results.ddlCost = Object.fromEntries(cost);
      for (const statement of ['CREATE TABLE', 'DROP TABLE']) {
        rows.push(
          ...costRows(
            '13',
            `schema change cost, the ledger of owners, ${statement} (a serial key), ${SIZES.ddlExisting} tables there`,
            get(cost, `permsync: ${statement}`),
            get(cost, `plain: ${statement}`),
            2,
          ),
        );
      }
      say(`15: a migration sent as one string, ${SIZES.migrationColumns} ALTER TABLE ... ADD COLUMN, permsync's source and the plain one`);
      const migrations = await measureStatementLatency(sides, {
        perSide: SIZES.migrationsPerSide,
        roundSize: 2,
        warmup: 2,
        statement: (i) => migration(i, SIZES.migrationColumns),
      });
      results.migrationCost = Object.fromEntries(migrations);
      rows.push(
        ...costRows(
          '15',
          `a migration as one string: CREATE TABLE, ${SIZES.migrationColumns} ALTER TABLE ... ADD COLUMN ... DEFAULT`,
          get(migrations, 'permsync: migration'),
          get(migrations, 'plain: migration'),
          2,
        ),
      );
      say(
        `14: the role watcher's look for owners REASSIGN OWNED changed, ${SIZES.ddlExisting} tables, a database of the plain server with permsync installed`,
      );
      await plain.query('CREATE DATABASE bench_owners');
      const owners = await open(servers.plain.urlFor('bench_owners'));
      await install(owners);
      const looks = await measureOwnerLooks(owners, SIZES.ddlExisting, SIZES.ownersReassigned, SIZES.ownerLooks);
      results.ownerLooks = looks;
      const converged = looks.batches.reduce((sum, b) => sum + b.objects, 0);
      const slowest = Math.max(...looks.batches.map((b) => b.ms));
      rows.push(
        {
          id: '14',
          measurement: `owner look, ${looks.objects} objects noted, write counters unchanged (nothing read), p50`,
          figure: ms(looks.unchanged.p50),
          goal: '< 5 ms',
          met: looks.unchanged.p50 < 5,
        },
        {
          id: '14',
          measurement: 'owner look that reads the ledger, nothing changed, p50 / p99',
          figure: `${ms(looks.read.p50)} / ${ms(looks.read.p99)}`,
          goal: '< 100 ms',
          met: looks.read.p99 < 100,
        },
        {
          id: '14',
          measurement: `after REASSIGN OWNED of a role's schema and ${SIZES.ownersReassigned} of them: ${looks.batches.length} look(s) wrote ${converged} objects to give their new owner, the slowest`,
          figure: ms(slowest),
          goal: '< 1 s',
          met: converged === SIZES.ownersReassigned + 1 && slowest < 1000,
        },
      );
    }

    if (wanted('bulk')) {
      const bulk = [];
      for (const major of SIZES.bulkRoleMajors) {
        say(`9: PostgreSQL ${major}, ${SIZES.bulkRoles} roles created in one DO block, then a GRANT naming the last (servers of its own)`);
        const b = await measureBulkRoles(major, SIZES.bulkRoles, dir);
        bulk.push(b);
        const what = `PostgreSQL ${major}, ${b.roles} roles created in one DO block`;
        rows.push(
          { id: '9', measurement: `${what}: the next GRANT, naming the last`, figure: ms(b.grantMs), goal: '< 2 s', met: b.grantMs < 2000 },
          {
            id: '9',
            measurement: `${what}: carried in ${b.batches} batch(es), their commit after the block's (role watcher checks failed: ${b.watcherFailures})`,
            figure: ms(b.carriedMs),
            goal: 'no check fails',
            met: b.watcherFailures === 0,
          },
          {
            id: '9',
            measurement: `${what}: applied on the target, with the GRANT, after the block's commit`,
            figure: seconds(b.appliedMs / 1000),
            goal: '',
            met: null,
          },
        );
      }
      results.bulkRoles = bulk;
    }

    if (wanted('roleCount')) {
      say(`10: durable GRANT/REVOKE with ${SIZES.roleCounts.join(', ')} roles in the cluster (servers of their own, capture without a daemon)`);
      const byCount = await measureCostByRoleCount(SIZES.roleCounts, {
        perSide: SIZES.costByRolesPerSide,
        roundSize: SIZES.costRound,
        warmup: SIZES.costRound,
      });
      results.costByRoleCount = byCount;
      const fewest = byCount[0];
      for (const c of byCount) {
        if (!fewest) break;
        const r = c.permsync.p50 / fewest.permsync.p50;
        // What capture adds, apart from the commit's own disk wait (which the plain side has too).
        const added = c.permsync.p50 - c.plain.p50;
        rows.push({
          id: '10',
          measurement: `DBA cost, durable, ${c.roles} roles: p50 ${ms(c.permsync.p50)} (plain ${ms(c.plain.p50)}; capture adds ${ms(added)}, ${ratio(added / (fewest.permsync.p50 - fewest.plain.p50))} what it adds at ${fewest.roles}), against ${fewest.roles} roles`,
          figure: ratio(r),
          goal: c === fewest ? '' : '<= 1.25x',
          met: c === fewest ? null : r <= 1.25,
        });
      }
    }

    if (wanted('addEnvironment')) {
      say(`11: an environment added by SIGHUP, brought to a source with ${SIZES.addedEnvironmentRoles} roles (servers of their own)`);
      const added = await measureAddEnvironment(SIZES.addedEnvironmentRoles, dir);
      results.addEnvironment = added;
      rows.push({
        id: '11',
        measurement: `environment added by SIGHUP: SIGHUP to brought to the source's ${added.roles} roles and their grants (${added.statements} statements)`,
        figure: seconds(added.bootstrapMs / 1000),
        goal: '',
        met: null,
      });
    }

    if (wanted('fleet')) {
      say(
        `12: one daemon, ${SIZES.fleetSizes.join(' then ')} environments (databases, ten per server): ${SIZES.fleetPerSecond}/s, then a burst of ${SIZES.fleetBurst}`,
      );
      const fleet = await measureFleet(
        SIZES.fleetSizes,
        {
          perSecond: SIZES.fleetPerSecond,
          seconds: SIZES.fleetSeconds,
          burst: SIZES.fleetBurst,
          roleChanges: SIZES.fleetRoleChanges,
          driftRoles: SIZES.fleetDriftRoles,
        },
        dir,
      );
      results.fleet = fleet;
      const [small, large] = [fleet[0], fleet[fleet.length - 1]];
      for (const f of fleet) {
        const at = `${f.environments} environments`;
        const goals = f === large;
        rows.push(
          {
            id: '12',
            measurement: `${at}: propagation to the last at ${rate(f.sentPerSecond)}, p99 (p50 ${ms(f.propagation.p50)})`,
            figure: ms(f.propagation.p99),
            goal: goals ? '< 500 ms' : '',
            met: goals ? f.propagation.p99 < 500 : null,
          },
          {
            id: '12',
            measurement: `${at}: burst of ${f.burst.count}, last commit to applied by all (slowest ${rate(f.burst.slowestPerSecond)})${f.burst.orderKept ? '' : `: ${f.burst.problems.join('; ')}`}`,
            figure: ms(f.burst.drainAfterLastCommitMs),
            goal: 'order kept',
            met: f.burst.orderKept,
          },
          {
            id: '12',
            measurement: `${at}: daemon peak RSS`,
            figure: mb(f.peakRssMb),
            goal: goals ? '< 250 MB' : '',
            met: goals ? f.peakRssMb < 250 : null,
          },
          {
            id: '12',
            measurement: `${at}: sessions after the burst, on the targets and on the source`,
            figure: `${f.targetSessions} + ${f.sourceSessions}`,
            goal: '',
            met: null,
          },
          {
            id: '12',
            measurement: `${at}: ${f.roleChanges.count} role changes with a grant each, grant's commit to applied by the last, p99 (p50 ${ms(f.roleChanges.propagation.p50)}); CREATE ROLE runs per change`,
            figure: `${ms(f.roleChanges.propagation.p99)}; ${(f.roleChanges.createRoleRuns / f.roleChanges.count).toFixed(1)}`,
            goal: `once per server (${f.roleChanges.servers})`,
            met: f.roleChanges.createRoleRuns === f.roleChanges.count * f.roleChanges.servers,
          },
        );
        if (f.drift) {
          const { roles, rolesAppliedMs, all, one } = f.drift;
          const shown = (d: typeof all) =>
            d.measured ? `${seconds(d.seconds)}, ${mb(d.peakRssMb)}, ${d.differences ?? '?'} differences` : `not measured: ${d.reason}`;
          rows.push(
            {
              id: '12',
              measurement: `${at}: ${roles} roles created in one DO block, to applied by all`,
              figure: seconds(rolesAppliedMs / 1000),
              goal: '',
              met: null,
            },
            {
              id: '12',
              measurement: `${at}: permsync drift over all of them (roles read once per server), time, peak RSS`,
              figure: shown(all),
              goal: 'no differences',
              met: all.measured ? all.differences === 0 : false,
            },
            { id: '12', measurement: `${at}: permsync drift over one of them`, figure: shown(one), goal: '', met: null },
          );
        }
      }
      if (small && large && large.environments > small.environments) {
        // A straight line through the two sizes, as a projection, not a measurement.
        const at200 = (a: number, b: number) => a + ((b - a) * (200 - small.environments)) / (large.environments - small.environments);
        rows.push({
          id: '12',
          measurement: `200 environments, projected from ${small.environments} and ${large.environments}: peak RSS, propagation p99`,
          figure: `${mb(at200(small.peakRssMb, large.peakRssMb))}, ${ms(at200(small.propagation.p99, large.propagation.p99))}`,
          goal: '',
          met: null,
        });
      }
    }

    const loadAtEnd = await loadAverage();
    process.stdout.write('\n');
    printTable(rows, (line) => process.stdout.write(`${line}\n`));
    process.stdout.write(`\nload average (1, 5, 15 min): ${loadAtStart} at start, ${loadAtEnd} at end, ${cpus().length} cores\n`);
    const postgres = await serverVersion(monitor);
    process.stdout.write(`servers: embedded PostgreSQL ${postgres} for all eight (the synchronous design uses its contrib dblink)\n`);
    const file = await writeResults(startedAt, {
      startedAt,
      version: gitVersion(),
      node: process.version,
      postgres,
      load: { atStart: loadAtStart, atEnd: loadAtEnd, cores: cpus().length },
      sizes: SIZES,
      table: rows,
      results,
    });
    process.stdout.write(`results: ${file}\n`);
    finished = true;
  } finally {
    await daemon?.stop();
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await servers.destroy();
    // After a failure the daemon's log stays, for a look.
    if (finished) await rm(dir, { recursive: true, force: true });
  }
}

/** The daemon's configuration: defaults, but no scheduled drift check in the middle of a measurement. */
function daemonConfig(servers: BenchServers): Record<string, unknown> {
  return {
    source: { url: servers.source.url, application_name: 'permsync-bench' },
    environments: [...servers.targets].map(([name, cluster]) => ({ name, url: cluster.url })),
    settings: { drift_check_cron: null },
    log: { level: 'info' },
  };
}

/** After the permsync side's round: wait (untimed) until the daemon has applied it everywhere. */
function settler(monitor: pg.Client) {
  return async (): Promise<Side['afterRound']> => {
    let mark = await lastCommitSeq(monitor);
    return async () => {
      await waitApplied(monitor, mark, ENVIRONMENTS, 60_000);
      mark = await lastCommitSeq(monitor);
    };
  };
}

function gitVersion(): string | null {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

async function serverVersion(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
  return rows[0]?.v ?? 'unknown';
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
