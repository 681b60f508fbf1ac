import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import type { Config } from '../src/config/schema.js';
import type { Daemon } from '../src/daemon.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { Exposition } from './support/prometheus.js';
import { TcpProxy } from './support/proxy.js';

/**
 * The daemon reaches the source through a proxy that can silence one connection (the
 * listener's) while every other keeps working. Test daemons poll once a minute: a change
 * left to the poll shows up as a timeout here.
 */
let p: Pipeline;
let sourceProxy: TcpProxy;
let daemon: Daemon | undefined;
let logLines: string[] = [];
/** Listener sessions the tests silenced: their backends stay on the source until the test ends them. */
const silenced: number[] = [];
/** Far less than the poll interval, far more than noticing a silent listener takes (a heartbeat and its timeout). */
const WITHIN_SECONDS = 20_000;

function viaProxy(): Config {
  const config = p.config();
  return { ...config, source: { ...config.source, url: sourceProxy.rewrite(p.source.url) } };
}

/** The client ports of the listener's sessions the source sees, silenced ones left out. */
async function listenerPorts(): Promise<number[]> {
  const { rows } = await p.sourceClient.query<{ client_port: number }>(
    `SELECT client_port FROM pg_stat_activity WHERE application_name = 'permsync-test:listen'`,
  );
  return rows.map((r) => r.client_port).filter((port) => !silenced.includes(port));
}

/** Black-holes the listener's session: neither end hears from the other again, and neither is closed. */
async function silenceListener(): Promise<void> {
  const [port, ...others] = await listenerPorts();
  if (port === undefined || others.length > 0)
    throw new Error(`expected one listener session, found ${others.length + (port === undefined ? 0 : 1)}`);
  sourceProxy.blackHole(port);
  silenced.push(port);
}

async function outcome(text: string, environment: string): Promise<string | undefined> {
  const { rows } = await p.sourceClient.query<{ execution_status: string }>(
    `SELECT x.execution_status FROM permsync.batches b JOIN permsync.execution_log x ON x.batch_id = b.id
      WHERE b.query_text = $1 AND x.environment_name = $2 ORDER BY x.id DESC LIMIT 1`,
    [text, environment],
  );
  return rows[0]?.execution_status;
}

const untilStatus = (text: string, environment: string, wanted: string, timeoutMs = 15_000) =>
  waitFor(async () => (await outcome(text, environment)) === wanted, timeoutMs, `${environment} to record ${wanted} for ${text}`);

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${daemon?.http.port}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function scrape(): Promise<Exposition> {
  return new Exposition(await (await fetch(`http://127.0.0.1:${daemon?.http.port}/metrics`)).text());
}

beforeAll(async () => {
  p = await startPipeline(['dev', 'prod'], { embedded: true });
  await p.everywhere('CREATE ROLE app; CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int)');
  await p.adopt();
  sourceProxy = await TcpProxy.start(p.source.url);
});

afterAll(async () => {
  await p?.close();
  await sourceProxy?.cut();
});

beforeEach(() => {
  logLines = [];
  onTestFailed(() => console.log(`daemon log of the failed test:\n${logLines.join('')}`));
});

afterEach(async () => {
  sourceProxy.hangNew(false);
  await daemon?.stop();
  daemon = undefined;
  await p.sourceClient.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_port = ANY($1)', [silenced]);
});

describe('the source listener', () => {
  it('a listening session cut off silently is replaced within seconds: changes and a stored retry arrive', async () => {
    daemon = await p.startDaemon(viaProxy(), logLines);
    // dev holds on a grant it cannot apply (the table is not there); prod applies it.
    await p.dba(`SET permsync.capture = 'off'; CREATE TABLE only_later (id int); RESET permsync.capture`);
    await p.env('prod').client.query('CREATE TABLE only_later (id int)');
    const held = 'GRANT SELECT ON only_later TO app';
    await p.dba(held);
    await untilStatus(held, 'dev', 'failed');

    await silenceListener();
    await p.env('dev').client.query('CREATE TABLE only_later (id int)');
    // Both stored on the source; the notifications that say so go into the black hole.
    await p.dba(`SELECT * FROM permsync.retry_failed('dev')`);
    const change = 'GRANT UPDATE ON t1 TO app';
    await p.dba(change);

    await untilStatus(change, 'prod', 'success', WITHIN_SECONDS);
    await untilStatus(held, 'dev', 'success', WITHIN_SECONDS);
    await untilStatus(change, 'dev', 'success');
    expect(await listenerPorts()).toHaveLength(1); // a new session listens
    expect((await scrape()).value('permsync_listener_connected')).toBe(1);
  });

  it('reconnecting to an endpoint that accepts and never answers is retried, and reported, until the source answers', async () => {
    daemon = await p.startDaemon(viaProxy(), logLines);
    await expect.poll(readyz).toMatchObject({ status: 200 });
    const connectedSince = (await scrape()).value('permsync_listener_state_since_timestamp_seconds') ?? NaN;

    // From now on the endpoint takes connections and never answers; the listener's own goes silent.
    sourceProxy.hangNew(true);
    await silenceListener();
    // An attempt ran into the connect timeout: the listener is trying again, not stuck.
    await expect.poll(readyz, { timeout: WITHIN_SECONDS }).toMatchObject({
      status: 503,
      body: {
        status: 'not_ready',
        reason: expect.stringMatching(/^not listening on the source: reconnecting since .* \(connecting: timeout expired\)$/),
        listener: { state: 'reconnecting' },
      },
    });
    const down = await scrape();
    expect(down.value('permsync_listener_connected')).toBe(0);
    expect(down.value('permsync_listener_state_since_timestamp_seconds')).toBeGreaterThan(connectedSince);
    const change = 'GRANT DELETE ON t2 TO app';
    await p.dba(change);

    // Every attempt made so far hangs for good: listening again takes a new one.
    sourceProxy.hangNew(false);
    await untilStatus(change, 'prod', 'success', WITHIN_SECONDS);
    await expect.poll(readyz, { timeout: WITHIN_SECONDS }).toMatchObject({ status: 200, body: { listener: { state: 'connected' } } });
    const up = await scrape();
    expect(up.value('permsync_listener_connected')).toBe(1);
    expect(up.value('permsync_listener_last_heartbeat_timestamp_seconds')).toBeGreaterThanOrEqual(
      up.value('permsync_listener_state_since_timestamp_seconds') ?? Infinity,
    );
    // Notifications carry changes again.
    const next = 'GRANT DELETE ON t3 TO app';
    await p.dba(next);
    await untilStatus(next, 'prod', 'success');
  });
});
