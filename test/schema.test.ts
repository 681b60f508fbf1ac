import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_VERSION, install, listMigrations, SchemaVersionError } from '../src/install/migrate.js';
import { dumpSchema, SCHEMA_DUMP_MAJOR } from './support/schema-dump.js';
import { startServer, type TestServer } from './support/servers.js';

let server: TestServer;
let admin: pg.Client;
const clients: pg.Client[] = [];

/** A new database with permsync installed, for one test. */
async function installed(database: string): Promise<pg.Client> {
  await admin.query(`CREATE DATABASE ${database}`);
  const client = new pg.Client(server.urlFor(database));
  clients.push(client);
  await client.connect();
  await install(client);
  return client;
}

async function versions(client: pg.ClientBase): Promise<number[]> {
  return (await client.query<{ version: number }>('SELECT version FROM permsync.schema_migrations ORDER BY 1')).rows.map((r) => r.version);
}

beforeAll(async () => {
  server = await startServer('schema', { embedded: true, major: SCHEMA_DUMP_MAJOR });
  admin = new pg.Client(server.url);
  await admin.connect();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await admin?.end();
  await server?.destroy();
});

describe('the installed schema', () => {
  it('is what sql/schema.dump.sql says', async () => {
    await installed('dumped');
    await expect(
      await dumpSchema(server.urlFor('dumped')),
      'sql/schema.dump.sql is stale: run `npm run schema:dump` and commit it',
    ).toMatchFileSnapshot('../sql/schema.dump.sql');
  });
});

describe('install', () => {
  it('refuses a schema newer than it knows, naming both versions, and changes nothing', async () => {
    const client = await installed('newer');
    const known = Math.max(...(await listMigrations()).map((m) => m.version));
    await client.query(`INSERT INTO permsync.schema_migrations (version, name) VALUES ($1, 'from_a_later_release')`, [known + 1]);
    const before = await versions(client);
    const refused = await install(client).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SchemaVersionError);
    expect(refused).toMatchObject({
      recorded: known + 1,
      known,
      message: expect.stringContaining(`version ${known + 1}, newer than this permsync knows (${known})`),
    });
    expect(await versions(client)).toEqual(before);
  });

  it('refuses a development schema recorded below the base version', async () => {
    const client = await installed('older');
    await client.query(`DELETE FROM permsync.schema_migrations; INSERT INTO permsync.schema_migrations (version, name) VALUES (15, 'versions')`);
    await expect(install(client)).rejects.toMatchObject({
      name: 'SchemaVersionError',
      recorded: 15,
      known: BASE_VERSION,
      message: expect.stringContaining('run permsync uninstall, then install again'),
    });
  });

  it('counts a database the pre-release migrations installed as the base version', async () => {
    const client = await installed('prerelease');
    await client.query(`DELETE FROM permsync.schema_migrations;
      INSERT INTO permsync.schema_migrations (version, name) SELECT v, 'pre-release' FROM generate_series(1, ${BASE_VERSION}) v`);
    expect((await install(client)).applied).toEqual([]);
  });
});
