import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { SourceListener } from '../source/listener.js';
import { CONTROL_CHANNEL } from '../source/queries.js';
import type { OperatorControls } from './controls.js';

/** The channel the source's capture trigger notifies on commit. */
const CAPTURE_CHANNEL = 'permsync';
/** How often the listening session must answer (within connection_timeout_ms), or be replaced. */
const LISTENER_HEARTBEAT_MS = 5000;

/**
 * LISTEN on the source for committed batches and operators' controls. Operators'
 * functions act within a second: the state is in the source's tables; the notification,
 * payload or not, only says to look now.
 */
export function listenToSource(config: Config, logger: Logger, controls: OperatorControls): SourceListener {
  return new SourceListener({
    connectionString: config.source.url,
    applicationName: `${config.source.applicationName}:listen`,
    timeoutMs: config.settings.connectionTimeoutMs,
    heartbeatMs: LISTENER_HEARTBEAT_MS,
    channels: [CAPTURE_CHANNEL, CONTROL_CHANNEL],
    logger,
    onNotification: (channel) => {
      if (channel === CONTROL_CHANNEL) controls.request();
      else controls.batchCommitted();
    },
    // What was notified while the listener was not listening is lost: catch up from the tables.
    onListening: () => controls.request(),
  });
}
