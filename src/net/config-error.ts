/**
 * A bad flag, environment variable or configuration value. The message names the field and
 * the fix; the CLI prints it and exits non-zero without a stack trace.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "config" as const;
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}
