import { execFile } from 'node:child_process';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { unitNodeOptions } from '../bench/service-options.js';
import { dockerignoreFilter, execForm, parseDockerfile, type Stage } from './support/dockerfile.js';

const run = promisify(execFile);
const read = (path: string) => readFile(join(PACKAGE_ROOT, path), 'utf8');
const exists = (path: string) =>
  access(join(PACKAGE_ROOT, path)).then(
    () => true,
    () => false,
  );

/** The environments README.md and DESIGN.md name, in their order. */
const ENVIRONMENTS = ['dev', 'test', 'preprod', 'prod'];
const CONFIG_IN_CONTAINER = '/etc/permsync/permsync.yaml';

const temporary: string[] = [];
afterAll(async () => {
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
}

/** Compose's own interpolation, for the forms the file uses; `${VAR:?message}` must be set. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{(\w+)(?::\?[^}]*)?\}/g, (_match, name: string) => {
    const value = env[name];
    if (value === undefined) throw new Error(`${name} is not set`);
    return value;
  });
}

describe('docker-compose.yml', async () => {
  const text = await read('docker-compose.yml');
  const passwords = { POSTGRES_PASSWORD: 'source-secret', PERMSYNC_SYNC_PASSWORD: 'sync-secret' };
  // merge: the file shares service settings through YAML merge keys (<<), as Compose reads them.
  const compose = parse(interpolate(text, passwords), { merge: true }) as { services: Record<string, ComposeService> };
  const services = compose.services;

  it('has the source, the four environments, install and the daemon', () => {
    expect(Object.keys(services).sort()).toEqual(['source', ...ENVIRONMENTS, 'install', 'permsync'].sort());
  });

  it('asks for every password instead of shipping a default', () => {
    const references = [...text.matchAll(/\$\{[^}]*\}/g)].map((m) => m[0]);
    expect(references.length).toBeGreaterThan(0);
    for (const reference of references) expect(reference).toMatch(/^\$\{\w+:\?[^}]+\}$/);
    expect(() => interpolate(text, {})).toThrow(/is not set/);
  });

  it('runs PostgreSQL 17 with a TCP health check for every database', () => {
    for (const name of ['source', ...ENVIRONMENTS]) {
      const service = services[name]!;
      expect(service.image).toBe('postgres:17');
      expect(service.healthcheck?.test).toEqual(expect.arrayContaining(['pg_isready', '--host=127.0.0.1']));
      expect(service.environment?.POSTGRES_DB).toBe('app');
    }
  });

  it('mounts init scripts that exist: the demo schema everywhere, the sync user on targets', async () => {
    const mounts = (name: string) =>
      (services[name]!.volumes ?? []).filter((v) => v.startsWith('./')).map((v) => v.split(':') as [string, string, string?]);
    for (const name of ['source', ...ENVIRONMENTS, 'install', 'permsync']) {
      for (const [hostPath] of mounts(name)) expect(await exists(hostPath), hostPath).toBe(true);
    }
    expect(mounts('source').map(([, inContainer]) => inContainer)).toEqual(['/docker-entrypoint-initdb.d/10-demo-schema.sql']);
    for (const name of ENVIRONMENTS) {
      expect(mounts(name)).toEqual([['./deploy/compose/initdb', '/docker-entrypoint-initdb.d', 'ro']]);
      expect(services[name]!.environment?.PERMSYNC_SYNC_PASSWORD).toBe(passwords.PERMSYNC_SYNC_PASSWORD);
    }
    const syncUser = await read('deploy/compose/initdb/20-sync-user.sh');
    expect(syncUser).toMatch(/CREATE ROLE permsync_sync LOGIN .*PASSWORD :'password'/);
    expect(syncUser).toContain('--set=password="$PERMSYNC_SYNC_PASSWORD"');
  });

  it('installs once the source is healthy, and starts the daemon once install succeeded', () => {
    const { install, permsync } = services;
    expect(install!.command).toEqual(['install', '--config', CONFIG_IN_CONTAINER]);
    expect(install!.depends_on).toEqual({ source: { condition: 'service_healthy' } });
    expect(permsync!.command).toBeUndefined(); // the image's CMD: run --config ...
    expect(permsync!.depends_on?.install).toEqual({ condition: 'service_completed_successfully' });
    for (const name of ENVIRONMENTS) expect(permsync!.depends_on?.[name]).toEqual({ condition: 'service_healthy' });
    for (const service of [install!, permsync!]) {
      expect(service.build).toBe('.');
      expect(service.volumes).toEqual([`./deploy/compose/permsync.yaml:${CONFIG_IN_CONTAINER}:ro`]);
    }
    expect(permsync!.ports).toEqual(['127.0.0.1:9187:9187']);
  });

  it("gives the daemon a configuration that loads with the containers' environment and names each server", async () => {
    const config = await loadConfig(join(PACKAGE_ROOT, 'deploy/compose/permsync.yaml'), { ...services.permsync!.environment });
    expect(config.environments.map((e) => e.name)).toEqual(ENVIRONMENTS);
    const source = new URL(config.source.url);
    expect([source.hostname, source.password]).toEqual(['source', passwords.POSTGRES_PASSWORD]);
    for (const env of config.environments) {
      const url = new URL(env.url);
      expect([url.hostname, url.username, url.password, url.pathname]).toEqual([env.name, 'permsync_sync', passwords.PERMSYNC_SYNC_PASSWORD, '/app']);
    }
    expect(config.http).toEqual({ host: '0.0.0.0', port: 9187 });
  });
});

describe('Dockerfile', async () => {
  const stages = parseDockerfile(await read('Dockerfile'));
  const runtime = stages.at(-1) as Stage;
  const instruction = (keyword: string) => runtime.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

  it('builds in one stage and runs from a Node 20 stage holding production dependencies only', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    expect(runtime.image).toMatch(/^node:20-/);
    expect(instruction('RUN').join('\n')).toMatch(/npm ci --omit=dev --ignore-scripts/);
    expect(instruction('COPY')).toContain('--from=build /app/dist/src ./dist/src');
  });

  it('runs as a non-root user, node as PID 1, with its configuration from /etc/permsync', () => {
    const [user] = instruction('USER');
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(execForm(instruction('ENTRYPOINT')[0]!)).toEqual(['node', 'bin/permsync.js']);
    expect(execForm(instruction('CMD')[0]!)).toEqual(['run', '--config', CONFIG_IN_CONTAINER]);
  });

  it('limits the heap as the systemd unit does, after npm ci', async () => {
    const env = instruction('ENV').filter((e) => e.startsWith('NODE_OPTIONS='));
    expect(env).toEqual([`NODE_OPTIONS="${await unitNodeOptions()}"`]);
    const keywords = runtime.instructions.map((i) => `${i.keyword} ${i.args}`);
    expect(keywords.findIndex((k) => k.startsWith('ENV NODE_OPTIONS='))).toBeGreaterThan(keywords.findIndex((k) => k.includes('npm ci')));
  });

  it('keeps secrets and local state out of the build context', async () => {
    const inContext = dockerignoreFilter(await read('.dockerignore'));
    for (const path of [
      '.env',
      'config/permsync.yaml',
      'node_modules/pg/package.json',
      'dist/src/cli/main.js',
      '.git/config',
      'scratch/x',
      'server.key',
    ]) {
      expect(inContext(path), path).toBe(false);
    }
    for (const path of ['package.json', 'package-lock.json', 'src/cli/main.ts', 'sql/bootstrap.sql', 'bin/permsync.js']) {
      expect(inContext(path), path).toBe(true);
    }
  });

  it('checks health with node fetch on /healthz: 0 on 200, 1 on an error status or no answer', async () => {
    const [healthcheck] = instruction('HEALTHCHECK');
    const command = execForm(healthcheck!);
    expect(command[0]).toBe('node');
    expect(command.join(' ')).toContain("fetch('http://127.0.0.1:9187/healthz')");
    let status = 200;
    const server = createServer((request, response) => response.writeHead(request.url === '/healthz' ? status : 404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const probe = () =>
      run(
        command[0]!,
        command.slice(1).map((a) => a.replace(':9187/', `:${port}/`)),
      ).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
    try {
      expect(await probe()).toBe(0);
      status = 503;
      expect(await probe()).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await probe()).toBe(1);
  });
});

/** systemd unit files: sections of `Key=value` lines, a key may repeat. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      sections.set(header[1]!, section);
      continue;
    }
    const [, key, value] = /^([A-Za-z]+)=(.*)$/.exec(line) ?? [];
    if (!section || key === undefined || value === undefined) throw new Error(`not a unit file line: ${line}`);
    section.set(key, [...(section.get(key) ?? []), value]);
  }
  return sections;
}

describe('deploy/permsync.service', async () => {
  const text = await read('deploy/permsync.service');
  const unit = parseUnit(text);
  const service = unit.get('Service')!;
  const value = (key: string) => service.get(key)?.at(-1);
  const systemdAnalyze = await run('systemd-analyze', ['--version']).then(
    () => true,
    () => false,
  );

  it("limits the daemon's heap", async () => {
    expect(await unitNodeOptions()).toMatch(/^--max-old-space-size=\d+ --max-semi-space-size=\d+$/);
  });

  it('runs the installed CLI as its own user, secrets from an environment file', () => {
    expect(value('Type')).toBe('exec');
    expect(value('ExecStart')).toBe('permsync run --config /etc/permsync/permsync.yaml');
    expect(value('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(value('EnvironmentFile')).toBe('/etc/permsync/permsync.env');
    expect(value('User')).toBe('permsync');
    expect(value('Restart')).toBe('on-failure');
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('is hardened, except for what V8 needs', () => {
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectKernelLogs: 'yes',
      ProtectControlGroups: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      RestrictNamespaces: 'yes',
      LockPersonality: 'yes',
      SystemCallArchitectures: 'native',
      CapabilityBoundingSet: '',
      // V8's JIT writes machine code and then runs it.
      MemoryDenyWriteExecute: 'no',
    };
    for (const [key, setting] of Object.entries(expected)) expect([key, value(key)]).toEqual([key, setting]);
  });

  it.runIf(systemdAnalyze)('passes systemd-analyze verify, permsync stood in for by a script', async () => {
    // verify checks that ExecStart's program exists, and permsync is not installed here.
    const dir = await tempDir('permsync-unit-');
    const standIn = join(dir, 'permsync');
    await writeFile(standIn, '#!/bin/sh\n');
    await chmod(standIn, 0o755);
    const unitFile = join(dir, 'permsync.service');
    await writeFile(unitFile, text.replace(/^ExecStart=permsync /m, `ExecStart=${standIn} `));
    const { stderr } = await run('systemd-analyze', ['verify', unitFile]);
    expect(stderr).toBe('');

    // --offline (systemd 252+) rates a unit file without a running systemd.
    const security = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unitFile]).catch(() => undefined);
    if (security) {
      const exposure = Number(/Overall exposure level for .*: ([\d.]+)/.exec(security.stdout)?.[1]);
      expect(exposure).toBeLessThanOrEqual(2);
    }
  });
});
