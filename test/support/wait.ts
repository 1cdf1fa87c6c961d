// The one polling wait of the tests, for state that has no event to wait on (a status() view, a
// metric, a count of open fds). Prefer an event (once(emitter, "x"), a log line) where there is one.
import assert from "node:assert/strict";

export interface UntilOptions {
  /** Give up after this long (a guard against a hang, not a timing assertion). Default 20 s. */
  timeoutMs?: number;
  /** How often `cond` is asked. Default 10 ms. */
  everyMs?: number;
}

/**
 * Resolves once `cond()` holds, asking it every `everyMs`; fails the test after `timeoutMs` with
 * "timed out after N ms waiting for <what>", so a hang says what it waited for.
 */
export async function until(cond: () => boolean | Promise<boolean>, what: string, opts: UntilOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 10));
  }
}
