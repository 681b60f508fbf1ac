import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../src/config/errors.js';
import { loadConfig } from '../src/config/load.js';
import { excludedRoleMatcher, type Config } from '../src/config/schema.js';

let dir: string;
let fileCount = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'permsync-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(text: string): Promise<string> {
  const path = join(dir, `config-${++fileCount}.yaml`);
  await writeFile(path, text);
  return path;
}

async function load(text: string, env: NodeJS.ProcessEnv = {}): Promise<Config> {
  return loadConfig(await writeConfig(text), env);
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

async function loadError(text: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  return configError(load(text, env));
}

const MINIMAL = `
source:
  url: postgres://localhost/source
environments:
  - name: dev
    url: postgresql://localhost/dev
`;

describe('loadConfig', () => {
  it('loads a file using every key', async () => {
    const config = await load(`
source:
  url: postgres://sync@source.example:5432/app
  application_name: permsync-test
environments:
  - name: dev
    url: postgres://sync@dev.example/app
    label: Development
    priority: 1
    enabled: false
    rules:
      - action: exclude
        command_tag: grant
        role_pattern: ^tmp_
        schema_pattern: ^scratch$
    on_permanent_failure: continue
    databases:
      reporting: reporting_dev
  - name: prod
    url: postgresql://sync@prod.example/app?sslmode=require
group: eu-west.1
settings:
  dry_run: true
  max_retries: 0
  retry_delay_seconds: 0.5
  connection_timeout_ms: 1000
  statement_timeout_ms: 2000
  log_retention_days: 7
  audit_retention_days: 30
  notify_on_failure: false
  excluded_roles: [admin, "svc_*"]
  carry_role_attributes: [REPLICATION]
  carry_predefined_roles: [pg_monitor, pg_read_all_stats]
  sync_passwords: true
  poll_interval_ms: 100
  role_watch_interval_ms: 250
  group_window_ms: 0
  drift_check_cron: "0 * * * *"
  cleanup_cron: "30 2 * * 0"
http:
  port: 8080
  host: 0.0.0.0
log:
  level: debug
`);
    expect(config).toEqual({
      source: { url: 'postgres://sync@source.example:5432/app', applicationName: 'permsync-test' },
      group: 'eu-west.1',
      environments: [
        {
          name: 'dev',
          url: 'postgres://sync@dev.example/app',
          label: 'Development',
          priority: 1,
          enabled: false,
          rules: [{ action: 'exclude', commandTag: 'GRANT', rolePattern: '^tmp_', schemaPattern: '^scratch$' }],
          onPermanentFailure: 'continue',
          databases: { reporting: 'reporting_dev' },
        },
        {
          name: 'prod',
          url: 'postgresql://sync@prod.example/app?sslmode=require',
          priority: 100,
          enabled: true,
          rules: [],
          onPermanentFailure: 'hold',
          databases: {},
        },
      ],
      settings: {
        dryRun: true,
        maxRetries: 0,
        retryDelaySeconds: 0.5,
        connectionTimeoutMs: 1000,
        statementTimeoutMs: 2000,
        logRetentionDays: 7,
        auditRetentionDays: 30,
        notifyOnFailure: false,
        excludedRoles: ['admin', 'svc_*'],
        carryRoleAttributes: ['REPLICATION'],
        carryPredefinedRoles: ['pg_monitor', 'pg_read_all_stats'],
        syncPasswords: true,
        pollIntervalMs: 100,
        roleWatchIntervalMs: 250,
        groupWindowMs: 0,
        driftCheckCron: '0 * * * *',
        cleanupCron: '30 2 * * 0',
      },
      http: { port: 8080, host: '0.0.0.0' },
      log: { level: 'debug' },
    } satisfies Config);
  });

  it('applies defaults', async () => {
    const config = await load(MINIMAL);
    expect(config.source.applicationName).toBe('permsync');
    expect(config.group).toBe('default');
    expect(config.environments[0]).toEqual({
      name: 'dev',
      url: 'postgresql://localhost/dev',
      priority: 100,
      enabled: true,
      rules: [],
      onPermanentFailure: 'hold',
      databases: {},
    });
    expect(config.settings).toEqual({
      dryRun: false,
      maxRetries: 3,
      retryDelaySeconds: 5,
      connectionTimeoutMs: 5000,
      statementTimeoutMs: 30000,
      logRetentionDays: 90,
      auditRetentionDays: 365,
      notifyOnFailure: true,
      excludedRoles: ['postgres'],
      carryRoleAttributes: [],
      carryPredefinedRoles: [],
      syncPasswords: false,
      pollIntervalMs: 5000,
      roleWatchIntervalMs: 500,
      groupWindowMs: 10,
      driftCheckCron: '*/15 * * * *',
      cleanupCron: '0 3 * * *',
    });
    expect(config.http).toEqual({ port: 9187, host: '127.0.0.1' });
    expect(config.log).toEqual({ level: 'info' });
  });

  it('turns the scheduled drift check and cleanup off with null or an empty expression', async () => {
    for (const value of ['null', '""', '"  "']) {
      const config = await load(`${MINIMAL}settings:\n  drift_check_cron: ${value}\n  cleanup_cron: ${value}\n`);
      expect(config.settings.driftCheckCron).toBeNull();
      expect(config.settings.cleanupCron).toBeNull();
    }
  });

  it('loads the annotated example', async () => {
    const env = Object.fromEntries(
      ['SOURCE', 'DEV', 'TEST', 'PREPROD', 'PROD'].map((name) => [`PERMSYNC_${name}_URL`, `postgres://localhost/${name}`]),
    );
    const config = await loadConfig(join(import.meta.dirname, '../config/permsync.example.yaml'), env);
    expect(config.environments.map((e) => e.name)).toEqual(['dev', 'test', 'preprod', 'prod']);
    expect(config.environments[3]?.url).toBe('postgres://localhost/PROD');
  });

  it('substitutes ${VAR} and ${VAR:-default} in string values', async () => {
    const config = await load(
      `
source:
  url: \${SOURCE_URL}
  application_name: \${APP_NAME:-permsync-default}
environments:
  - name: dev
    url: postgres://\${DEV_HOST:-localhost}:\${DEV_PORT:-5432}/app
    label: "\${LABEL}"
  - name: prod
    url: \${PROD_URL:-postgres://fallback/app}
`,
      { SOURCE_URL: 'postgres://src/app', DEV_HOST: 'db.dev', DEV_PORT: '', LABEL: 'a: b\n- c', PROD_URL: 'postgres://prod/app' },
    );
    expect(config.source).toEqual({ url: 'postgres://src/app', applicationName: 'permsync-default' });
    // An empty variable counts as unset for `:-`.
    expect(config.environments[0]?.url).toBe('postgres://db.dev:5432/app');
    // A value is never parsed as YAML.
    expect(config.environments[0]?.label).toBe('a: b\n- c');
    expect(config.environments[1]?.url).toBe('postgres://prod/app');
  });

  it('reports an unset variable with the field path', async () => {
    const error = await loadError(
      `
source:
  url: \${SOURCE_URL}
environments:
  - name: dev
    url: postgres://localhost/dev
  - name: prod
    url: \${PERMSYNC_TEST_UNSET_PROD_URL}
`,
      { SOURCE_URL: 'postgres://src/app' },
    );
    // Reported once: not also as an invalid URL.
    expect(error.issues).toEqual(['environments[1].url: environment variable PERMSYNC_TEST_UNSET_PROD_URL is not set']);
    expect(error.message).toBe(error.issues[0]);
    expect(error.exitCode).toBe(2);
  });

  it('rejects unknown keys, naming their path', async () => {
    const error = await loadError(`
${MINIMAL}
    rules:
      - action: include
        command_tag: GRANT
        roles: x
settings:
  dry_runn: true
extra: 1
`);
    expect(error.issues).toEqual(['environments[0].rules[0].roles: unknown key', 'settings.dry_runn: unknown key', 'extra: unknown key']);
  });

  it('names the powers it may carry exactly', async () => {
    const error = await loadError(
      `${MINIMAL}settings:\n  carry_role_attributes: [SUPERUSER, CREATEDB]\n  carry_predefined_roles: [pg_monitor, "pg_*", admin]\n`,
    );
    expect(error.issues).toEqual([
      'settings.carry_role_attributes[1]: expected one of "SUPERUSER", "REPLICATION", "BYPASSRLS"',
      'settings.carry_predefined_roles[1]: expected the name of a predefined role, such as "pg_monitor"',
      'settings.carry_predefined_roles[2]: expected the name of a predefined role, such as "pg_monitor"',
    ]);
  });

  it('rejects a daemon group name that is not one word of 1 to 63 characters', async () => {
    const error = await loadError(`
source:
  url: postgres://localhost/source
group: "east; west"
environments:
  - { name: dev, url: "postgres://localhost/a" }
`);
    expect(error.issues).toEqual(['group: expected a name of 1 to 63 letters, digits, "_", "." or "-"']);
  });

  it('rejects duplicate environment names', async () => {
    const error = await loadError(`
source:
  url: postgres://localhost/source
environments:
  - { name: dev, url: "postgres://localhost/a" }
  - { name: dev, url: "not a url" }
  - { name: prod, url: "postgres://localhost/c" }
  - { name: prod, url: "postgres://localhost/d" }
`);
    expect(error.issues).toEqual([
      'environments[1].url: not a valid postgres:// URL',
      'environments[1].name: duplicate environment name "dev"',
      'environments[3].name: duplicate environment name "prod"',
    ]);
  });

  it('validates rules', async () => {
    const error = await loadError(`
${MINIMAL}
    rules:
      - action: include
        command_tag: " alter   default\\tprivileges "
      - action: exclude
        role_pattern: "(unclosed"
      - action: exclude
        schema_pattern: "[z-a]"
      - action: maybe
      - action: include
        command_tag: DROP
`);
    expect(error.issues).toHaveLength(5);
    expect(error.issues[0]).toMatch(/^environments\[0\]\.rules\[1\]\.role_pattern: Invalid regular expression: .*\(unclosed/);
    expect(error.issues[1]).toMatch(/^environments\[0\]\.rules\[2\]\.schema_pattern: Invalid regular expression: /);
    expect(error.issues.slice(2)).toEqual([
      'environments[0].rules[3].action: expected one of "include", "exclude"',
      'environments[0].rules[3]: a rule needs at least one of command_tag, role_pattern, schema_pattern',
      'environments[0].rules[4].command_tag: expected one of "GRANT", "REVOKE", "ALTER DEFAULT PRIVILEGES", "ALTER OWNER", "CREATE ROLE", "ALTER ROLE", "DROP ROLE", "COMMENT ON ROLE", "GRANT ROLE", "REVOKE ROLE", "ALTER ROLE SET", "GRANT ON DATABASE", "REVOKE ON DATABASE"',
    ]);

    const config = await load(`
${MINIMAL}
    rules:
      - action: include
        command_tag: " alter   default\\tprivileges "
`);
    expect(config.environments[0]?.rules).toEqual([{ action: 'include', commandTag: 'ALTER DEFAULT PRIVILEGES' }]);
  });

  it('never echoes URLs or passwords in errors', async () => {
    const secret = 's3cr3t-pw';
    const error = await loadError(
      `
source:
  url: mysql://admin:${secret}@db.example/app
environments:
  - name: dev
    url: postgres://admin:${secret}@db.example:port/app
  - name: test
    url: \${TEST_URL}
  - name: prod
    url: 42
    label: 7
`,
      { TEST_URL: `postgres://admin:12#${secret}@db.example/app` },
    );
    expect(error.issues).toEqual([
      'source.url: not a valid postgres:// URL',
      'environments[0].url: not a valid postgres:// URL',
      'environments[1].url: not a valid postgres:// URL',
      'environments[2].url: not a valid postgres:// URL',
      'environments[2].label: expected a string',
    ]);
    expect(error.message).not.toContain(secret);

    const syntaxError = await loadError(`source:\n  url: "postgres://admin:${secret}@db.example/app\n`);
    expect(syntaxError.message).not.toContain(secret);

    // A URL that ended up as a key (here: missing "url:") is not shown either.
    const keyError = await loadError(`${MINIMAL}\n  - { name: prod, postgres://admin:${secret}@db.example/app }\n`);
    expect(keyError.issues).toEqual(['environments[1].url: required', 'environments[1].<key not shown>: unknown key']);
  });

  it('reports every problem at once, one per line', async () => {
    const error = await loadError(`
source:
  application_name: ""
environments:
  - name: Dev
    url: postgres://localhost/dev
    priority: high
    enabled: "yes"
    on_permanent_failure: stop
settings:
  max_retries: -1
  retry_delay_seconds: 0
  connection_timeout_ms: 1.5
  poll_interval_ms: 99
  excluded_roles: postgres
  drift_check_cron: every five minutes
http:
  port: 70000
log:
  level: verbose
`);
    expect(error.issues).toEqual([
      'source.url: required',
      'source.application_name: must not be empty',
      'environments[0].name: must be a lower-case letter followed by at most 62 lower-case letters, digits, "_" or "-"',
      'environments[0].priority: expected an integer',
      'environments[0].enabled: expected true or false',
      'environments[0].on_permanent_failure: expected one of "hold", "continue"',
      'settings.max_retries: expected an integer >= 0',
      'settings.retry_delay_seconds: expected a number > 0',
      'settings.connection_timeout_ms: expected an integer >= 1',
      'settings.excluded_roles: expected a list',
      'settings.poll_interval_ms: expected an integer >= 100',
      'settings.drift_check_cron: not a valid cron expression',
      'http.port: expected an integer between 0 (any free port) and 65535',
      'log.level: expected one of "trace", "debug", "info", "warn", "error", "fatal"',
    ]);
    expect(error.message.split('\n')).toEqual(error.issues);
  });

  it('refuses a group window that is not an integer from 0 to 1000, naming the field', async () => {
    for (const value of ['-1', '2.5', '"10"', '1001']) {
      const error = await loadError(`${MINIMAL}settings:\n  group_window_ms: ${value}\n`);
      expect(error.issues).toEqual(['settings.group_window_ms: expected an integer between 0 and 1000']);
    }
  });

  it('reports missing top-level blocks and an empty environment list', async () => {
    expect((await loadError('')).issues).toEqual(['(top level): expected a mapping']);
    expect((await loadError('environments: []')).issues).toEqual(['source: required', 'environments: at least one environment is required']);
  });

  it('reports YAML syntax errors with line and column', async () => {
    const path = await writeConfig('source:\n  url: postgres://localhost/source\n environments: [\n');
    const error = await configError(loadConfig(path, {}));
    expect(error.issues.length).toBeGreaterThan(0);
    expect(error.issues[0]).toMatch(new RegExp(`^${path.replace(/[.\\]/g, '\\$&')}:3:\\d+: `));
  });

  it('reports a missing file', async () => {
    const path = join(dir, 'missing.yaml');
    await expect(loadConfig(path, {})).rejects.toThrow(new ConfigError([`config file not found: ${path}`]));
  });

  it('reads config/permsync.yaml and .env from the working directory by default', async () => {
    const cwd = process.cwd();
    const project = await mkdtemp(join(dir, 'project-'));
    await mkdir(join(project, 'config'));
    await writeFile(join(project, 'config', 'permsync.yaml'), MINIMAL.replace('postgres://localhost/source', '${SOURCE_URL}'));
    await writeFile(join(project, '.env'), 'SOURCE_URL=postgres://from-dotenv/app\nAPP=from-dotenv\n');
    const output = [vi.spyOn(console, 'log'), vi.spyOn(console, 'error')];
    try {
      process.chdir(project);
      const env: NodeJS.ProcessEnv = { APP: 'already-set' };
      const config = await loadConfig(undefined, env);
      expect(config.source.url).toBe('postgres://from-dotenv/app');
      expect(env.APP).toBe('already-set');
      for (const spy of output) expect(spy).not.toHaveBeenCalled();
    } finally {
      process.chdir(cwd);
      for (const spy of output) spy.mockRestore();
    }
  });
});

describe('excludedRoleMatcher', () => {
  it('matches whole names with * as the only wildcard, case-sensitively', () => {
    const excluded = excludedRoleMatcher(['postgres', 'pg_*', 'a.b', '*_admin']);
    expect(excluded('postgres')).toBe(true);
    expect(excluded('postgres2')).toBe(false);
    expect(excluded('pg_monitor')).toBe(true);
    expect(excluded('pg_')).toBe(true);
    expect(excluded('app_pg_x')).toBe(false);
    expect(excluded('PG_monitor')).toBe(false);
    expect(excluded('a.b')).toBe(true);
    expect(excluded('axb')).toBe(false);
    expect(excluded('line\nbreak_admin')).toBe(true);
    expect(excludedRoleMatcher([])('postgres')).toBe(false);
  });
});
