import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Config } from '../../src/config/schema.js';

/** Runs the CLI in this process, as bin/permsync.js does, capturing what it prints. */
export async function runCli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  try {
    return { code: await main(['node', 'permsync', ...args]), out, err };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
    // main() leaves its result in process.exitCode, which would become this worker's.
    process.exitCode = undefined;
  }
}

/** A configuration file in `dir` with the source and environments of `config`, and no scheduled drift check. */
export async function writeConfigFile(dir: string, config: Config): Promise<string> {
  const file = join(dir, 'permsync.yaml');
  await writeFile(
    file,
    [
      'source:',
      `  url: "${config.source.url}"`,
      'environments:',
      ...config.environments.flatMap((e) => [`  - name: ${e.name}`, `    url: "${e.url}"`]),
      'settings:',
      '  drift_check_cron: null',
    ].join('\n'),
  );
  return file;
}
