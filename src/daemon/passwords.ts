import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { SourceStore } from '../source/store.js';

/** Says in the log whether password verifiers are carried, and if not, what keeps them. */
export async function logPasswordCarrying(config: Config, store: SourceStore, logger: Logger): Promise<void> {
  const passwords = await store.passwordTracking();
  if (!config.settings.syncPasswords) {
    if (passwords.tracked) logger.warn('the source captures password verifiers, but settings.sync_passwords is false: they are not carried');
    else logger.info('password verifiers are not carried: settings.sync_passwords is false');
  } else if (!passwords.captured) {
    logger.warn(
      'settings.sync_passwords is on but the source does not capture password verifiers: they are not carried. ' +
        'An admin turns capture on with SELECT permsync.enable_password_sync()',
    );
  } else if (!passwords.tracked) {
    logger.warn('settings.sync_passwords is on but the role that installed permsync cannot read pg_authid: password verifiers are not carried');
  }
}
