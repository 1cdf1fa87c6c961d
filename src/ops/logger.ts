import { pino, type Logger, type DestinationStream } from "pino";
import pretty from "pino-pretty";

export type { Logger } from "pino";

// Secrets never reach a log line: these paths are censored wherever they appear in a logged object.
const REDACT = [
  "token", "*.token", "secret", "*.secret", "SecretID", "*.SecretID", "privateKeyPem", "*.privateKeyPem",
  "PrivateKeyPEM", "*.PrivateKeyPEM", "key", "*.key", "headers[\"x-consul-token\"]", "*.headers[\"x-consul-token\"]",
];

export interface LoggerOptions {
  level: string;
  /** JSON lines (default) or human-readable; undefined picks pretty when stdout is a terminal. */
  json?: boolean;
  destination?: DestinationStream;
}

/** The one pino logger of a process (STYLE §9: cli.ts creates it, everything else receives it). */
export function createLogger(opts: LoggerOptions): Logger {
  const json = opts.json ?? !process.stdout.isTTY;
  const base = { level: opts.level.toLowerCase(), redact: { paths: REDACT, censor: "[redacted]" } };
  if (json) return pino(base, opts.destination ?? pino.destination({ fd: 1, sync: false }));
  return pino(base, pretty({ sync: true, colorize: process.stdout.isTTY, destination: opts.destination ?? 1 }));
}
