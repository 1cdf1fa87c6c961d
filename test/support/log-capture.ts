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
  /**
   * The first line, already logged or still to come, that matches. Fails after `timeoutMs` (default
   * 60 s, under the runner's 120 s) naming what it waited for and the last lines seen, so broken code
   * fails with a reason instead of hanging until the test times out.
   */
  next(pred: (l: LogLine) => boolean, what?: string, timeoutMs?: number): Promise<LogLine>;
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
  const next = (pred: (l: LogLine) => boolean, what = pred.toString(), timeoutMs = 60_000): Promise<LogLine> => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const on = (l: LogLine): void => {
        if (!pred(l)) return;
        clearTimeout(timer);
        events.off("line", on);
        resolve(l);
      };
      const timer = setTimeout(() => {
        events.off("line", on);
        const last = lines.slice(-5).map((l) => `${l.msg} ${JSON.stringify({ ...l, msg: undefined, time: undefined, pid: undefined, hostname: undefined })}`);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line: ${what}; the last lines:\n  ${last.join("\n  ")}`));
      }, timeoutMs);
      timer.unref();
      events.on("line", on);
    });
  };
  return {
    log,
    lines,
    raw,
    next,
    waitFor: async (text) => void (await next((l) => l.msg.includes(text), `a msg containing ${JSON.stringify(text)}`)),
    count: (text) => lines.filter((l) => l.msg.includes(text)).length,
  };
}
