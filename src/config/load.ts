import dotenv from 'dotenv';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type * as z from 'zod';
import { ConfigError } from './errors.js';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_PATH = 'config/permsync.yaml';

type Path = readonly PropertyKey[];

interface Problem {
  path: Path;
  message: string;
}

/**
 * Reads, substitutes and validates the YAML config file. `.env` in the current
 * directory is loaded into `env` first, without overriding variables already set.
 * Throws ConfigError listing every problem found.
 */
export async function loadConfig(path: string = DEFAULT_CONFIG_PATH, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const envFile = resolve('.env');
  // All options explicit: DOTENV_* variables would otherwise change them (e.g. DOTENV_OVERRIDE).
  const { error: envError } = dotenv.config({ path: envFile, processEnv: env, quiet: true, debug: false, override: false });
  if (envError && envError.code !== 'ENOENT') throw new ConfigError([`cannot read ${envFile}: ${envError.message}`]);

  const file = resolve(path);
  const data = parseYaml(file, await readConfigFile(file));

  const problems: Problem[] = [];
  const substituted = substitute(data, [], env, problems);
  const result = configSchema.safeParse(substituted, { error: describeIssue });
  if (result.success && problems.length === 0) return result.data;

  const substitutionFailed = new Set(problems.map((p) => formatPath(p.path)));
  for (const issue of result.success ? [] : result.error.issues) {
    // A value whose variable is unset has been reported already.
    if (issue.code !== 'unrecognized_keys' && substitutionFailed.has(formatPath(issue.path))) continue;
    problems.push(...toProblems(issue));
  }
  throw new ConfigError(problems.map((p) => `${formatPath(p.path)}: ${p.message}`));
}

async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([code === 'ENOENT' ? `config file not found: ${file}` : `cannot read config file ${file}: ${code}`]);
  }
}

function parseYaml(file: string, text: string): unknown {
  const lineCounter = new LineCounter();
  // prettyErrors would append the offending source line, which may hold a password.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((err) => {
        const { line, col } = lineCounter.linePos(err.pos[0]);
        return `${file}:${line}:${col}: ${err.message}`;
      }),
    );
  }
  try {
    return doc.toJS();
  } catch (err) {
    // e.g. too many aliases (a "billion laughs" document)
    throw new ConfigError([`${file}: ${(err as Error).message}`]);
  }
}

const VARIABLE_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in the string values of the parsed
 * document. Working on parsed values means a variable's value is never read as YAML.
 */
function substitute(value: unknown, path: Path, env: NodeJS.ProcessEnv, problems: Problem[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VARIABLE_REFERENCE, (_match, name: string, fallback: string | undefined) => {
      const variable = env[name];
      if (fallback !== undefined) return variable || fallback; // `:-` also replaces an empty value
      if (variable === undefined) {
        problems.push({ path, message: `environment variable ${name} is not set` });
        return '';
      }
      return variable;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => substitute(item, [...path, index], env, problems));
  if (typeof value === 'object' && value !== null) {
    // fromEntries defines own properties, so a `__proto__` key stays an (unknown) key.
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item, [...path, key], env, problems)]));
  }
  return value;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
};

/**
 * Messages for issues the schema gives no message of its own. Like the schema's,
 * they never include the received value.
 */
function describeIssue(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'required' : `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'unrecognized_keys':
      return 'unknown key';
    default:
      return 'invalid value';
  }
}

function toProblems(issue: z.core.$ZodIssue): Problem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: [...issue.path, key], message: issue.message }));
  }
  return [{ path: issue.path, message: issue.message }];
}

// A mistyped line can turn a URL into a mapping key, so only name-like keys are shown.
const PLAIN_KEY = /^[\w-]+$/;

/** `environments[2].url` style; the empty path is the document itself. */
function formatPath(path: Path): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((key, index) => {
      if (typeof key === 'number') return `[${key}]`;
      const name = PLAIN_KEY.test(String(key)) ? String(key) : '<key not shown>';
      return index === 0 ? name : `.${name}`;
    })
    .join('');
}
