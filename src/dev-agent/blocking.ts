import { tryParseGoDuration } from "../net/index.js";
import { HttpError } from "./http-error.js";
import type { AgentRequest } from "./router.js";

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;

export interface BlockingParams {
  /** 0 when the request does not block. */
  minIndex: number;
  waitMs: number;
}

/**
 * Reads `?index` and `?wait` as Consul does (spec §1.4): 400 `Invalid index` / `Invalid wait time`,
 * default wait 5 min (or `defaultWaitMs`), clamped to 10 min, plus jitter in [0, wait/16) unless `jitter` is false.
 */
export function blockingParams(req: AgentRequest, opts: { defaultWaitMs?: number; jitter?: boolean } = {}): BlockingParams {
  const rawIndex = req.query.get("index");
  let minIndex = 0;
  if (rawIndex !== null && rawIndex !== "") {
    if (!/^\d+$/.test(rawIndex)) throw new HttpError(400, "Invalid index");
    minIndex = Number(rawIndex);
  }
  const rawWait = req.query.get("wait");
  let waitMs = opts.defaultWaitMs ?? DEFAULT_WAIT_MS;
  if (rawWait !== null && rawWait !== "") {
    const ms = tryParseGoDuration(rawWait);
    if (ms === undefined || ms < 0) throw new HttpError(400, "Invalid wait time");
    waitMs = ms;
  }
  waitMs = Math.min(waitMs, MAX_WAIT_MS);
  if (opts.jitter !== false) waitMs += Math.random() * (waitMs / 16);
  return { minIndex, waitMs };
}

/**
 * Runs a blocking read: returns at once without `?index` (or index 0), otherwise waits until
 * `read()` reports an index above the client's, or the wait ends (then returns the current value).
 */
export async function blockingRead<T>(
  req: AgentRequest,
  tables: readonly string[],
  read: () => { index: number; value: T },
  opts: { defaultWaitMs?: number; jitter?: boolean } = {},
): Promise<{ index: number; value: T }> {
  const { minIndex, waitMs } = blockingParams(req, opts);
  let result = read();
  if (minIndex === 0) return result;
  const deadline = Date.now() + waitMs;
  while (result.index <= minIndex && Date.now() < deadline && !req.signal.aborted) {
    await req.feed.waitChange(tables, deadline, req.signal);
    result = read();
  }
  return result;
}
