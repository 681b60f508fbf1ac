import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths that may hold credentials in anything permsync logs. */
const REDACT_PATHS = ['password', '*.password', 'url', '*.url', 'connectionString', '*.connectionString', 'verifier', '*.verifier'];

/** JSON lines by default; pretty when standard output is a terminal. */
export function createLogger(level = 'info', destination?: NodeJS.WritableStream): Logger {
  const pretty = !destination && process.stdout.isTTY && process.env.PERMSYNC_LOG_FORMAT !== 'json';
  const options = { level, base: { service: 'permsync' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
