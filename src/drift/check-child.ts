// The scheduled drift check's process (check-process.ts): one check, then exit.
import type { Config } from '../config/schema.js';
import { createLogger } from '../log.js';
import { openSourcePool } from '../source/pool.js';
import type { DriftCheckReply, DriftCheckRequest } from './check-process.js';
import { runDriftCheck } from './scheduled.js';

async function check(config: Config): Promise<void> {
  const logger = createLogger(config.log.level).child({ job: 'drift-check' });
  const source = openSourcePool(config, { applicationName: `${config.source.applicationName}:drift`, max: 1 });
  source.on('error', (error) => logger.warn({ err: error }, 'idle source connection failed'));
  let reply: DriftCheckReply;
  try {
    reply = { results: await runDriftCheck({ config, source, logger }) };
  } catch (error) {
    reply = { error: (error as Error).message };
  } finally {
    await source.end().catch(() => {});
  }
  process.send?.(reply, () => process.disconnect?.());
}

process.once('message', ({ config, libpqEnv }: DriftCheckRequest) => {
  Object.assign(process.env, libpqEnv);
  void check(config);
});
