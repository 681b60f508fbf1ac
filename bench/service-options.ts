import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';

/** The NODE_OPTIONS the systemd unit (and the image) run the daemon with. */
export async function unitNodeOptions(): Promise<string> {
  const unit = await readFile(join(PACKAGE_ROOT, 'deploy', 'permsync.service'), 'utf8');
  const match = /^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(unit);
  if (!match?.[1]) throw new Error('deploy/permsync.service sets no NODE_OPTIONS');
  return match[1];
}
