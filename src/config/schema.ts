import cron from 'node-cron';
import * as z from 'zod';

/** What rules can name: the permission statements, and the kinds of role statement the watcher writes. */
const COMMAND_TAGS = [
  'GRANT',
  'REVOKE',
  'ALTER DEFAULT PRIVILEGES',
  'ALTER OWNER',
  'CREATE ROLE',
  'ALTER ROLE',
  'DROP ROLE',
  'COMMENT ON ROLE',
  'GRANT ROLE',
  'REVOKE ROLE',
  'ALTER ROLE SET',
  'GRANT ON DATABASE',
  'REVOKE ON DATABASE',
] as const;
export type CommandTag = (typeof COMMAND_TAGS)[number];

/** Role attributes only a superuser may set: carried only where the configuration says so. */
const PRIVILEGED_ATTRIBUTES = ['SUPERUSER', 'REPLICATION', 'BYPASSRLS'] as const;
type PrivilegedAttribute = (typeof PRIVILEGED_ATTRIBUTES)[number];

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

export interface SyncRule {
  action: 'include' | 'exclude';
  commandTag?: CommandTag;
  /** JavaScript regular expression source (validated to compile). */
  rolePattern?: string;
  /** JavaScript regular expression source (validated to compile). */
  schemaPattern?: string;
}

export interface EnvironmentConfig {
  name: string;
  url: string;
  label?: string;
  /** Sort order in listings only (lower first). */
  priority: number;
  enabled: boolean;
  rules: SyncRule[];
  onPermanentFailure: 'hold' | 'continue';
  /**
   * The environment's name for each database of the source's cluster whose name differs
   * there, for privileges on it (GRANT ... ON DATABASE other). The source's own database
   * always stands for the environment's own.
   */
  databases?: Readonly<Record<string, string>>;
}

export interface Settings {
  dryRun: boolean;
  maxRetries: number;
  retryDelaySeconds: number;
  connectionTimeoutMs: number;
  statementTimeoutMs: number;
  logRetentionDays: number;
  auditRetentionDays: number;
  notifyOnFailure: boolean;
  /** Glob patterns (`*` only); see excludedRoleMatcher. */
  excludedRoles: string[];
  /** SUPERUSER, REPLICATION, BYPASSRLS: the powers the role watcher may give a role on a target. */
  carryRoleAttributes: PrivilegedAttribute[];
  /** Predefined roles (pg_monitor, ...) whose memberships the role watcher carries. */
  carryPredefinedRoles: string[];
  /**
   * Whether this daemon carries password verifiers. The source captures them only when an
   * admin turns capture on (permsync.enable_password_sync()) and its installer may read pg_authid.
   */
  syncPasswords: boolean;
  pollIntervalMs: number;
  roleWatchIntervalMs: number;
  /** An applier's drains start at least this far apart (ms), so that a burst goes in grouped transactions; 0: off. */
  groupWindowMs: number;
  /** When the daemon compares every environment with the source (cron expression); null: never. */
  driftCheckCron: string | null;
  /** When the daemon runs cleanup_old_logs() (cron expression); null: never. */
  cleanupCron: string | null;
}

export interface Config {
  source: { url: string; applicationName: string };
  /**
   * The daemon group (DEFAULT_GROUP when not given): daemons of one group stand by for each
   * other, and each group applies to environments of its own, from one source.
   */
  group?: string;
  environments: EnvironmentConfig[];
  settings: Settings;
  http: { port: number; host: string };
  log: { level: LogLevel };
}

// Messages below never include the received value: URL fields may hold passwords.
const NOT_A_POSTGRES_URL = 'not a valid postgres:// URL';

function isPostgresUrl(value: string): boolean {
  if (!/^postgres(ql)?:\/\//.test(value)) return false;
  try {
    // A fragment is almost always an unencoded '#' in a password, which would cut the URL short.
    return new URL(value).hash === '';
  } catch {
    return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const postgresUrl = z
  .string({ error: (issue) => (issue.input === undefined ? undefined : NOT_A_POSTGRES_URL) })
  .refine(isPostgresUrl, { error: NOT_A_POSTGRES_URL });

const nonEmptyString = z.string().min(1, { error: 'must not be empty' });

function intAtLeast(min: number) {
  const error = `expected an integer >= ${min}`;
  return z.int({ error }).min(min, { error });
}

function intBetween(min: number, max: number) {
  const error = `expected an integer between ${min} and ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

const regexSource = z.string().superRefine((source, ctx) => {
  try {
    new RegExp(source);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const commandTag = z
  .string()
  .transform((tag) => tag.trim().replace(/\s+/g, ' ').toUpperCase())
  .pipe(z.enum(COMMAND_TAGS, { error: `expected one of ${COMMAND_TAGS.map((t) => `"${t}"`).join(', ')}` }));

const ruleSchema = z
  .strictObject({
    action: z.enum(['include', 'exclude']),
    command_tag: commandTag.optional(),
    role_pattern: regexSource.optional(),
    schema_pattern: regexSource.optional(),
  })
  .refine((rule) => rule.command_tag !== undefined || rule.role_pattern !== undefined || rule.schema_pattern !== undefined, {
    error: 'a rule needs at least one of command_tag, role_pattern, schema_pattern',
    // Also check rules with other problems, so that every problem is reported at once.
    when: (payload) => isRecord(payload.value),
  })
  .transform((rule): SyncRule => ({
    action: rule.action,
    commandTag: rule.command_tag,
    rolePattern: rule.role_pattern,
    schemaPattern: rule.schema_pattern,
  }));

const environmentSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, {
      error: 'must be a lower-case letter followed by at most 62 lower-case letters, digits, "_" or "-"',
    }),
    url: postgresUrl,
    label: nonEmptyString.optional(),
    priority: z.int({ error: 'expected an integer' }).default(100),
    enabled: z.boolean().default(true),
    rules: z.array(ruleSchema).default(() => []),
    on_permanent_failure: z.enum(['hold', 'continue']).default('hold'),
    databases: z
      .record(nonEmptyString, nonEmptyString, { error: "expected a map of source database names to this environment's" })
      .default(() => ({})),
  })
  .transform((env): EnvironmentConfig => ({
    name: env.name,
    url: env.url,
    label: env.label,
    priority: env.priority,
    enabled: env.enabled,
    rules: env.rules,
    onPermanentFailure: env.on_permanent_failure,
    databases: env.databases,
  }));

const environmentsSchema = z
  .array(environmentSchema)
  .min(1, { error: 'at least one environment is required' })
  .superRefine(
    // Elements that failed validation are still here (raw), hence `unknown`.
    (envs: readonly unknown[], ctx) => {
      const seen = new Set<unknown>();
      envs.forEach((env, index) => {
        const name = isRecord(env) ? env.name : undefined;
        if (typeof name !== 'string') return;
        if (seen.has(name)) {
          ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate environment name "${name}"` });
        }
        seen.add(name);
      });
    },
    { when: (payload) => Array.isArray(payload.value) },
  );

const cronExpression = z
  .string({ error: 'expected a cron expression, or null' })
  .refine((expression) => expression.trim() === '' || cron.validate(expression), { error: 'not a valid cron expression' })
  .nullable();

const settingsSchema = z
  .strictObject({
    dry_run: z.boolean().default(false),
    max_retries: intAtLeast(0).default(3),
    retry_delay_seconds: z.number({ error: 'expected a number > 0' }).gt(0, { error: 'expected a number > 0' }).default(5),
    connection_timeout_ms: intAtLeast(1).default(5000),
    statement_timeout_ms: intAtLeast(1).default(30000),
    log_retention_days: intAtLeast(1).default(90),
    audit_retention_days: intAtLeast(1).default(365),
    notify_on_failure: z.boolean().default(true),
    excluded_roles: z.array(nonEmptyString).default(() => ['postgres']),
    carry_role_attributes: z
      .array(z.enum(PRIVILEGED_ATTRIBUTES, { error: `expected one of ${PRIVILEGED_ATTRIBUTES.map((a) => `"${a}"`).join(', ')}` }))
      .default(() => []),
    carry_predefined_roles: z
      .array(z.string().regex(/^pg_[a-z_]+$/, { error: 'expected the name of a predefined role, such as "pg_monitor"' }))
      .default(() => []),
    sync_passwords: z.boolean().default(false),
    poll_interval_ms: intAtLeast(100).default(5000),
    role_watch_interval_ms: intAtLeast(1).default(500),
    // Beyond a second it only delays every change; a typo in minutes would stall the sync.
    group_window_ms: intBetween(0, 1000).default(10),
    // null or empty turns the scheduled job off.
    drift_check_cron: cronExpression.default('*/15 * * * *'),
    cleanup_cron: cronExpression.default('0 3 * * *'),
  })
  .transform((s): Settings => ({
    dryRun: s.dry_run,
    maxRetries: s.max_retries,
    retryDelaySeconds: s.retry_delay_seconds,
    connectionTimeoutMs: s.connection_timeout_ms,
    statementTimeoutMs: s.statement_timeout_ms,
    logRetentionDays: s.log_retention_days,
    auditRetentionDays: s.audit_retention_days,
    notifyOnFailure: s.notify_on_failure,
    excludedRoles: s.excluded_roles,
    carryRoleAttributes: s.carry_role_attributes,
    carryPredefinedRoles: s.carry_predefined_roles,
    syncPasswords: s.sync_passwords,
    pollIntervalMs: s.poll_interval_ms,
    roleWatchIntervalMs: s.role_watch_interval_ms,
    groupWindowMs: s.group_window_ms,
    driftCheckCron: s.drift_check_cron?.trim() ? s.drift_check_cron.trim() : null,
    cleanupCron: s.cleanup_cron?.trim() ? s.cleanup_cron.trim() : null,
  }));

/** The daemon group of a configuration that names none. */
const DEFAULT_GROUP = 'default';

/** The daemon group a configuration names (one built in code may name none). */
export function daemonGroup(config: Pick<Config, 'group'>): string {
  return config.group ?? DEFAULT_GROUP;
}

const GROUP_NAME = 'expected a name of 1 to 63 letters, digits, "_", "." or "-"';

/** Every setting at its default, for callers that build a Config in code (demo, tests). */
export function defaultSettings(): Settings {
  return settingsSchema.parse({});
}

const portError = 'expected an integer between 0 (any free port) and 65535';

/**
 * The YAML file's shape (snake_case keys, all objects strict) parsed into `Config`
 * (camelCase, defaults filled in). `prefault({})` runs an omitted block through its
 * schema so that the block's own defaults apply.
 */
export const configSchema: z.ZodType<Config> = z.strictObject({
  source: z
    .strictObject({
      url: postgresUrl,
      application_name: nonEmptyString.default('permsync'),
    })
    .transform((s) => ({ url: s.url, applicationName: s.application_name })),
  group: z
    .string({ error: GROUP_NAME })
    .regex(/^[A-Za-z0-9_.-]{1,63}$/, { error: GROUP_NAME })
    .default(DEFAULT_GROUP),
  environments: environmentsSchema,
  settings: settingsSchema.prefault({}),
  http: z
    .strictObject({
      port: z.int({ error: portError }).min(0, { error: portError }).max(65535, { error: portError }).default(9187),
      host: nonEmptyString.default('127.0.0.1'),
    })
    .prefault({}),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({}),
});

/**
 * Matcher for `settings.excluded_roles`: `*` matches any run of characters, every
 * other character matches itself; whole-name and case-sensitive, like role names.
 */
export function excludedRoleMatcher(patterns: string[]): (role: string) => boolean {
  const escape = (text: string) => text.replace(/[\\^$.+?()[\]{}|]/g, '\\$&');
  // 's': quoted role names may contain newlines, which `*` must match too.
  const regexes = patterns.map((pattern) => new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`, 's'));
  return (role) => regexes.some((regex) => regex.test(role));
}
