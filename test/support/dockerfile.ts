import { execFile } from 'node:child_process';
import { cp, mkdir, readFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { promisify } from 'node:util';

/**
 * Just enough of the Dockerfile format to check ours, and to replay its stages on this
 * machine (no Docker engine here): each stage's filesystem is a directory, RUN runs on the host.
 */
interface Instruction {
  keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  args: string;
}

export interface Stage {
  name: string;
  image: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  for (const line of logical) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') {
      const [image = '', as, name] = args.split(/\s+/);
      if (as?.toUpperCase() !== 'AS' || !name) throw new Error(`unnamed stage: FROM ${args}`);
      stages.push({ name, image, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${keyword} before FROM`);
    stage.instructions.push({ keyword: keyword.toUpperCase(), args });
  }
  return stages;
}

/** The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK's CMD). */
export function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not exec form: ${args}`);
  return parsed;
}

/** .dockerignore as Docker reads it: the last pattern matching a path or one of its parents wins. */
export function dockerignoreFilter(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const include = line.startsWith('!');
      const pattern = posix.normalize(include ? line.slice(1) : line).replace(/^\/+/, '');
      const source = pattern
        .split(/(\*\*|\*|\?)/)
        .map((part) => ({ '**': '.*', '*': '[^/]*', '?': '[^/]' })[part] ?? part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
        .join('');
      return { include, regex: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let included = true;
    for (const rule of rules) {
      if (candidates.some((c) => rule.regex.test(c))) included = rule.include;
    }
    return included;
  };
}

const run = promisify(execFile);

export interface ReplayedStage {
  /** The stage's filesystem root on this machine. */
  root: string;
  /** Its WORKDIR, mapped under root. */
  workdir: string;
}

/**
 * Replays WORKDIR, ENV, COPY and RUN of every stage under `into`; other instructions
 * describe the container, not the build, and are left to the caller's checks.
 */
export async function replayDockerfile(stages: Stage[], context: string, into: string): Promise<Map<string, ReplayedStage>> {
  const inContext = dockerignoreFilter(await readFile(join(context, '.dockerignore'), 'utf8').catch(() => ''));
  const replayed = new Map<string, ReplayedStage>();
  for (const stage of stages) {
    const root = join(into, stage.name);
    let workdir = '/';
    const env: Record<string, string> = {};
    const map = (path: string) => join(root, posix.resolve(workdir, path));
    await mkdir(root, { recursive: true });
    for (const { keyword, args } of stage.instructions) {
      if (keyword === 'WORKDIR') {
        workdir = posix.resolve(workdir, args);
        await mkdir(map('.'), { recursive: true });
      } else if (keyword === 'ENV') {
        const [, name = '', quoted, bare] = /^(\w+)=(?:"([^"]*)"|(\S*))$/.exec(args) ?? [];
        const value = quoted ?? bare ?? '';
        if (!name) throw new Error(`ENV not in NAME=value form: ${args}`);
        env[name] = value;
      } else if (keyword === 'COPY') {
        const words = args.split(/\s+/);
        const from = words[0]?.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined;
        const dest = words.pop()!;
        const sourceRoot = from === undefined ? context : replayed.get(from)?.root;
        if (!sourceRoot) throw new Error(`COPY --from an unknown stage: ${from}`);
        for (const source of words) {
          // Docker fails the same way: an ignored file is not in the build context.
          if (from === undefined && !inContext(source)) throw new Error(`COPY ${source}: excluded by .dockerignore`);
          const target = dest.endsWith('/') ? posix.join(dest, posix.basename(source)) : dest;
          await mkdir(dirname(map(target)), { recursive: true });
          await cp(join(sourceRoot, source), map(target), {
            recursive: true,
            filter: (path) => from !== undefined || inContext(relative(context, path).split('\\').join('/') || '.'),
          });
        }
      } else if (keyword === 'RUN') {
        // The image's environment, not this process's (NODE_ENV, npm_config_* from npm test ...).
        const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
        await run('sh', ['-c', args], { cwd: map('.'), env: { ...base, ...env }, maxBuffer: 64 * 1024 * 1024 });
      }
    }
    replayed.set(stage.name, { root, workdir: map('.') });
  }
  return replayed;
}
