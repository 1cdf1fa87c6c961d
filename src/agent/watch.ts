// The one blocking-watch primitive (spec §1.4, §1.4.1; STYLE §7). Every watched resource is a
// WatchSpec; only this file knows index vs hash mode, the reset rules, `wait`, the rate limit,
// back-off with jitter, and cancellation.
import { backoffDelayMs, delay } from "../net/index.js";
import type { AgentClient } from "./client.js";
import { AgentError } from "./errors.js";

export interface WatchSpec<T> {
  /** Short name for logs and metrics ("roots", "leaf", …). */
  name: string;
  path: string;
  query?: Record<string, string>;
  /** "index": X-Consul-Index + ?index=; "hash": X-Consul-ContentHash + ?hash= (spec §1.4.1). */
  mode: "index" | "hash";
  /** Sent as `wait=<N>ms`. Default 5 min (the server's default). */
  waitMs?: number;
  /** Validates the body; throws (AgentError "bad_body") on a wrong shape. */
  parse(body: unknown): T;
  /** Bounded label for the client's onRequest hook. */
  endpoint?: string;
}

export interface WatchOptions {
  /** Aborting ends the iteration (without throwing), also mid-request or mid-back-off. */
  signal: AbortSignal;
  /** Called for every failed round with the count of consecutive failures (1, 2, …). */
  onError?: (err: AgentError, failures: number) => void;
  /** Token-bucket refill interval: at most one request per this many ms after a burst. Default 500. */
  minIntervalMs?: number;
  /** Token-bucket size. Default 2 (spec §1.4 rule 3). */
  burst?: number;
  /** Exponential back-off on errors, with jitter. Default 250 ms doubling to 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Source of jitter in [0, 1); tests may pin it. */
  random?: () => number;
}

export const DEFAULT_WATCH_WAIT_MS = 5 * 60_000;
const DEFAULT_MIN_INTERVAL_MS = 500;
const DEFAULT_BURST = 2;
const DEFAULT_BACKOFF_INITIAL_MS = 250;
const DEFAULT_BACKOFF_MAX_MS = 30_000;
// An agent that does not answer at all (restarting, say) is retried at least this often, whatever
// the back-off says: a retry costs one refused connect to a local agent, and every second we wait
// after it is back is a second of a stale leaf, roots or intentions (a leaf may expire meanwhile).
export const UNREACHABLE_RETRY_MAX_MS = 2_000;

/**
 * Watches one resource: yields the first result, then each changed result; never yields an
 * equal index or hash twice. Errors are retried with back-off and reported to onError; the
 * iteration never throws and ends when the signal aborts or the client is closed.
 */
export function watch<T>(agent: AgentClient, spec: WatchSpec<T>, opts: WatchOptions): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => runWatch(agent, spec, opts) };
}

async function* runWatch<T>(agent: AgentClient, spec: WatchSpec<T>, opts: WatchOptions): AsyncGenerator<T, void, undefined> {
  const { signal } = opts;
  const waitParam = `${Math.max(1, Math.round(spec.waitMs ?? DEFAULT_WATCH_WAIT_MS))}ms`; // spec §1.1: wait=<N>ms
  const bucket = createTokenBucket({
    burst: opts.burst ?? DEFAULT_BURST,
    intervalMs: opts.minIntervalMs ?? DEFAULT_MIN_INTERVAL_MS,
    now: () => performance.now(),
  });
  const backoff = {
    initialMs: opts.backoff?.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS,
    maxMs: opts.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS,
  };
  const random = opts.random ?? Math.random;
  // The ?index= (index mode) or ?hash= (hash mode) of the next request; 0 or "" means a non-blocking read.
  let cursor: number | string = spec.mode === "index" ? 0 : "";
  let last: number | string | undefined; // index or hash of the last yielded result
  let failures = 0;

  while (!signal.aborted) {
    const delayMs = bucket.take();
    if (delayMs > 0 && !(await delay(delayMs, signal))) return;
    const query: Record<string, string> = { ...spec.query, wait: waitParam };
    if (cursor !== 0 && cursor !== "") query[spec.mode] = String(cursor);

    let value: T;
    try {
      const res = await agent.request({ method: "GET", path: spec.path, query, signal, endpoint: spec.endpoint });
      const version = answerVersion(spec, res, cursor);
      if (version === undefined) {
        // spec §1.4 rule 1: an index that goes backwards resets to 0: re-read without blocking.
        cursor = 0;
        failures = 0;
        continue;
      }
      if (version === last) {
        cursor = version;
        failures = 0;
        continue;
      }
      value = spec.parse(res.body); // the cursor moves only past an answer that parsed
      cursor = version;
      last = version;
    } catch (err) {
      if (signal.aborted) return;
      const e = asWatchError(err, spec);
      if (e.code === "aborted") return; // the client was closed
      failures += 1;
      agent.onWatchError?.(spec.name, e, failures);
      opts.onError?.(e, failures);
      if (!(await delay(retryDelayMs(e, failures, backoff, random), signal))) return;
      continue;
    }
    failures = 0;
    yield value;
  }
}

/**
 * What an answer's version is: its index (never 0, spec §1.4 rule 2), or undefined when it went
 * backwards from `cursor`; or its content hash (header, else the body's, spec §1.4.1).
 */
function answerVersion(spec: WatchSpec<unknown>, res: { index?: number | undefined; contentHash?: string | undefined; body: unknown }, cursor: number | string): number | string | undefined {
  if (spec.mode === "index") {
    const got = res.index ?? 0;
    return got < (cursor as number) ? undefined : Math.max(got, 1);
  }
  const got = res.contentHash ?? bodyContentHash(res.body);
  if (got === undefined) throw new AgentError("bad_body", `GET ${spec.path}: no X-Consul-ContentHash in a hash-blocking answer`);
  return got;
}

/** The body's `ContentHash`, which spec §1.4.1 says equals the header. */
function bodyContentHash(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const h = (body as { ContentHash?: unknown }).ContentHash;
  return typeof h === "string" && h !== "" ? h : undefined;
}

function asWatchError(err: unknown, spec: WatchSpec<unknown>): AgentError {
  if (err instanceof AgentError) {
    // Parser errors name a field but not the endpoint: add it.
    if (err.code === "bad_body" && !err.message.startsWith("GET ")) {
      return new AgentError("bad_body", `GET ${spec.path}: bad body: ${err.message}`, { status: err.status, cause: err });
    }
    return err;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new AgentError("bad_body", `GET ${spec.path}: bad body: ${msg}`, { cause: err });
}

/**
 * A token bucket (spec §1.4 rule 3): `take()` consumes a token and returns how many ms to wait
 * first (0 while the burst lasts, then one interval per request). intervalMs ≤ 0 disables it.
 */
export function createTokenBucket(o: { burst: number; intervalMs: number; now: () => number }): { take(): number } {
  let tokens = o.burst;
  let at = o.now();
  return {
    take() {
      if (o.intervalMs <= 0) return 0;
      const t = o.now();
      tokens = Math.min(o.burst, tokens + (t - at) / o.intervalMs);
      at = t;
      tokens -= 1; // may go negative: the wait below pays it back
      return tokens >= 0 ? 0 : -tokens * o.intervalMs;
    },
  };
}

/** How long to wait before retrying after `err`, the `failures`-th failure in a row. */
export function retryDelayMs(err: AgentError, failures: number, o: { initialMs: number; maxMs: number }, random: () => number): number {
  const maxMs = err.code === "unreachable" ? Math.min(o.maxMs, UNREACHABLE_RETRY_MAX_MS) : o.maxMs;
  return backoffDelayMs(failures, { initialMs: o.initialMs, maxMs }, random);
}
