/**
 * An invalid or unreadable configuration. `issues` holds one `<path>: <why>`
 * line per problem and never contains secrets, so it is safe to print.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /** Process exit code for configuration errors. */
  readonly exitCode = 2;
  readonly issues: string[];

  constructor(issues: string[]) {
    super(issues.join('\n'));
    this.issues = issues;
  }
}
