import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let runDir: string | undefined;

/**
 * One directory for the run's servers and files, in memory where the machine has it
 * (/dev/shm: initdb and data directory copies take a tenth of their time on disk here),
 * and one initdb'd data directory per major that every server copies (dev/embedded).
 * Workers inherit both through the environment; the directory goes at the end of the run.
 */
export async function setup(): Promise<void> {
  const root = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  runDir = await mkdtemp(join(root, 'permsync-test-'));
  // The postgres OS user (servers run as it under root) creates its templates here.
  await chmod(runDir, 0o777);
  process.env.TMPDIR = runDir;
  process.env.PERMSYNC_LOCAL_TEMPLATES = runDir;
}

export async function teardown(): Promise<void> {
  if (runDir) await rm(runDir, { recursive: true, force: true });
}
