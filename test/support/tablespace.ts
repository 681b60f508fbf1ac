import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Directories a local server may make tablespaces in, removed together when the test is done. */
export class TablespaceDirs {
  private readonly dirs: string[] = [];

  /** A new directory, its server's OS user's (postgres when the tests run as root). */
  async make(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'permsync-ts-'));
    this.dirs.push(dir);
    if (process.getuid?.() === 0) {
      const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
      await chown(dir, id('-u'), id('-g'));
    } else {
      await chmod(dir, 0o700);
    }
    return dir;
  }

  async remove(): Promise<void> {
    for (const dir of this.dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  }
}
