// The one captured logger of the tests: a pino logger whose lines are kept and can be awaited.
// DEBUG_TEST_LOG=1 also writes every captured line to stderr.
import { EventEmitter } from "node:events";
import { pino, type Level, type Logger } from "pino";

export type LogLine = Record<string, unknown> & { msg: string; level: number };

export interface CapturedLog {
  log: Logger;
  /** Every line so far, parsed. */
  lines: LogLine[];
  /** Every line so far as written (to check what never reaches the output, such as secrets). */
  raw: string[];
  /** The first line, already logged or still to come, that matches. */
  next(pred: (l: LogLine) => boolean): Promise<LogLine>;
  /** Resolves when a line whose msg contains `text` has been written (already, or later). */
  waitFor(text: string): Promise<void>;
  /** How many lines so far have a msg containing `text`. */
  count(text: string): number;
}

export function captureLog(opts: { level?: Level } = {}): CapturedLog {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const events = new EventEmitter();
  const log = pino(
    { level: opts.level ?? "info" },
    {
      write(s: string) {
        if (process.env.DEBUG_TEST_LOG) process.stderr.write(s);
        const line = JSON.parse(s) as LogLine;
        raw.push(s);
        lines.push(line);
        events.emit("line", line);
      },
    },
  );
  const next = (pred: (l: LogLine) => boolean): Promise<LogLine> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const on = (l: LogLine): void => {
        if (!pred(l)) return;
        events.off("line", on);
        resolve(l);
      };
      events.on("line", on);
    });
  };
  return {
    log,
    lines,
    raw,
    next,
    waitFor: async (text) => void (await next((l) => l.msg.includes(text))),
    count: (text) => lines.filter((l) => l.msg.includes(text)).length,
  };
}
