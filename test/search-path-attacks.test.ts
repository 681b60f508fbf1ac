import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeConfigFile } from './support/cli.js';
import { startPipeline, waitFor, type Pipeline } from './support/pipeline.js';
import { runAs } from './support/servers.js';

/**
 * permsync's queries call pg_catalog's functions by their bare names. A login that may
 * create in a schema of the default search_path (public, or its own "$user" schema) can
 * define one that PostgreSQL prefers, an exact match over a polymorphic one:
 * public.array_agg(text) over pg_catalog.array_agg(anynonarray). Run by the daemon, it would
 * run as the daemon's login (which may write which roles permsync manages); run by drift on
 * a target, as the sync user. It must never run. (Drift's catalog reads set their own
 * search_path already; the daemon's per-batch queries on the source did not.)
 */
let p: Pipeline;

/** An aggregate and a function that note who ran them, in a table anyone may write. */
const TRAP = `
  CREATE TABLE public.ran (who name, at timestamptz DEFAULT clock_timestamp());
  GRANT INSERT ON public.ran TO PUBLIC;
  CREATE FUNCTION public.trap(s text[], v text) RETURNS text[] LANGUAGE plpgsql AS $$
  BEGIN
      INSERT INTO public.ran (who) VALUES (current_user);
      RETURN pg_catalog.array_append(s, v);
  END $$;
  CREATE AGGREGATE public.array_agg(text) (SFUNC = public.trap, STYPE = text[]);
  CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
  BEGIN
      INSERT INTO public.ran (who) VALUES (current_user);
      RETURN QUERY SELECT pg_catalog.unnest(a);
  END $$;`;

const asMallory = runAs;

async function whoRan(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ who: string }>('SELECT DISTINCT who FROM public.ran ORDER BY 1');
  return rows.map((r) => r.who);
}

beforeAll(async () => {
  p = await startPipeline(['prod']);
  await p.everywhere(`CREATE TABLE sp_t (id int); CREATE ROLE sp_app; ALTER ROLE sp_app SET work_mem = '1MB';
                      CREATE ROLE mallory LOGIN PASSWORD 'mallory-pw'; GRANT CREATE ON SCHEMA public TO mallory`);
  await p.adopt();
  for (const url of [p.source.urlFor('postgres', 'mallory', 'mallory-pw'), p.env('prod').server.urlFor('postgres', 'mallory', 'mallory-pw')]) {
    await asMallory(url, TRAP);
  }
  // The trap works: a session on the default search_path runs it.
  for (const client of [p.sourceClient, p.env('prod').client]) {
    await client.query(`SELECT array_agg(x), (SELECT count(*) FROM unnest('{b}'::text[])) FROM (VALUES ('a'::text)) v (x)`);
    expect(await whoRan(client)).toEqual(['postgres']);
  }
  await p.everywhere('TRUNCATE public.ran');
});

afterAll(async () => {
  await p?.close();
});

describe('a function a login puts on the default search_path', () => {
  it("is not run by the daemon's queries on the source, nor by drift's on a target", async () => {
    const daemon = await p.startDaemon();
    try {
      await p.settleRoles();
      await p.dba('GRANT SELECT ON sp_t TO sp_app');
      const prod = p.env('prod').client;
      await waitFor(
        async () => (await prod.query<{ ok: boolean }>(`SELECT has_table_privilege('sp_app', 'sp_t', 'SELECT') AS ok`)).rows[0]?.ok === true,
        15_000,
        'the GRANT to reach prod',
      );
    } finally {
      await daemon.stop();
    }
    const dir = await mkdtemp(join(tmpdir(), 'permsync-search-path-'));
    try {
      const drift = await runCli('drift', '--env', 'prod', '--config', await writeConfigFile(dir, p.config()));
      expect(drift.out).toContain('prod: matches the source');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(await whoRan(p.sourceClient)).toEqual([]);
    expect(await whoRan(p.env('prod').client)).toEqual([]);
  });
});
