import { pino, type Logger } from 'pino';
import { LOG_REDACTION } from './redact.js';

export type { Logger };

/** JSON lines by default; pretty when standard output is a terminal. */
export function createLogger(level = 'info', destination?: NodeJS.WritableStream): Logger {
  const pretty = !destination && process.stdout.isTTY && process.env.PERMSYNC_LOG_FORMAT !== 'json';
  const options = { level, base: { service: 'permsync' }, redact: LOG_REDACTION };
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
