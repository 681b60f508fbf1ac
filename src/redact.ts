/**
 * What permsync writes never holds a secret: a password in a connection URL, a password
 * verifier in a statement, a credential in a log line. This is where each is hidden.
 */

/** What stands for a password verifier in a statement, as the source's capture writes it too (permsync_capture). */
export const MASKED_PASSWORD = "'********'";

/** Paths that may hold credentials in anything permsync logs, and what stands for them (pino's redact option). */
export const LOG_REDACTION = {
  paths: ['password', '*.password', 'url', '*.url', 'connectionString', '*.connectionString', 'verifier', '*.verifier'],
  censor: '[redacted]',
};

/** The URL with its password (in the user-info part or a `password` parameter) replaced by `***`, for logs, errors and output. */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '[unparseable URL]';
  }
  if (parsed.password) parsed.password = '***';
  for (const key of [...parsed.searchParams.keys()]) {
    if (/password/i.test(key)) parsed.searchParams.set(key, '***');
  }
  return parsed.href;
}
