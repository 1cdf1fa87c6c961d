import { createRequire } from "node:module";
import type { Logger, DestinationStream } from "pino";
import type PinoPretty from "pino-pretty";

// Loaded on first use, not at import: `import` of this folder stays cheap for a process that has not
// decided yet what it runs (cli.ts re-execs a proxy before loading anything heavy), and pino-pretty
// (~2 MB of RSS) is only loaded when a human reads the output.
const require = createRequire(import.meta.url);

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
  /** File descriptor when no destination is given: 1 (stdout, default) or 2 (stderr, for commands whose stdout is a report). */
  fd?: 1 | 2;
}

/** The one pino logger of a process (STYLE §9: cli.ts creates it, everything else receives it). */
export function createLogger(opts: LoggerOptions): Logger {
  const json = opts.json ?? !process.stdout.isTTY;
  const base = { level: opts.level.toLowerCase(), redact: { paths: REDACT, censor: "[redacted]" } };
  const { pino } = require("pino") as typeof import("pino");
  if (json) return pino(base, opts.destination ?? pino.destination({ fd: opts.fd ?? 1, sync: false }));
  const pretty = require("pino-pretty") as typeof PinoPretty;
  return pino(base, pretty({ sync: true, colorize: process.stdout.isTTY, destination: opts.destination ?? opts.fd ?? 1 }));
}
