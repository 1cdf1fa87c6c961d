// Keeps one upstream's instance set current, so that accepting a connection costs no agent call:
// a blocking health watch for a service (spec §7.1), a periodic re-execution for a prepared query
// (spec §7.3), also run soon after dial failures.
import type { AgentClient, AgentError, HealthEntry } from "../agent/index.js";
import { executePreparedQuery, healthConnectWatch, watch } from "../agent/index.js";
import { backoffDelayMs, settlesWithin } from "../net/index.js";
import type { Logger } from "../ops/index.js";
import type { InstanceSet } from "./instance-set.js";
import type { UpstreamSpec } from "./upstream-config.js";

/** A prepared query's result is re-fetched this often (it cannot block). */
export const QUERY_REFRESH_MS = 10_000;
/** …and at most this often when dial failures ask for a refresh. */
const QUERY_MIN_GAP_MS = 1_000;
const QUERY_BACKOFF_MAX_MS = 30_000;

export type DiscoveryState = "pending" | "ok" | "failing";

export interface Discovery {
  /** "pending" before the first result; "failing" while the last attempt failed (old instances kept). */
  state(): DiscoveryState;
  /** Resolves at the first result (also when it is empty). Never rejects. */
  readonly firstResult: Promise<void>;
  /** Asks for a fresh result soon (a prepared query after dial failures); a no-op for a health watch. */
  refresh(): void;
  /** Stops the watch or poll. Idempotent. */
  close(): void;
}

export interface DiscoveryDeps {
  agent: AgentClient;
  log: Logger;
  now: () => number;
}

/** Starts discovery for `spec`, feeding `instances`. Agent errors are logged and retried, never thrown. */
export function startDiscovery(spec: UpstreamSpec, instances: InstanceSet, deps: DiscoveryDeps): Discovery {
  const u = spec.upstream;
  const stop = new AbortController();
  const signal = stop.signal;
  let state: DiscoveryState = "pending";
  let markFirst!: () => void;
  const firstResult = new Promise<void>((resolve) => (markFirst = resolve));
  let wake: (() => void) | undefined;
  let lastRequestMs = 0;

  const publish = (entries: HealthEntry[]): void => {
    instances.update(entries);
    if (state !== "ok" && deps.log.isLevelEnabled("info")) {
      deps.log.info({ upstream: u.destinationName, instances: instances.size() }, state === "pending" ? "upstream discovered" : "upstream discovery recovered");
    }
    state = "ok";
    markFirst();
  };
  const onError = (err: AgentError, failures: number): void => {
    if (state === "ok") state = "failing";
    // Log the first failure and then every doubling, so an agent outage does not flood the log.
    if ((failures & (failures - 1)) === 0) {
      deps.log.warn({ upstream: u.destinationName, code: err.code, status: err.status, failures, msg: err.message }, "upstream discovery failed; retrying");
    }
  };

  const followHealth = async (): Promise<void> => {
    const spec = healthConnectWatch(u.destinationName, u.datacenter === "" ? {} : { datacenter: u.datacenter });
    for await (const entries of watch(deps.agent, spec, { signal, onError })) publish(entries);
  };

  // Waits `ms`, or less when refresh() asks for a new look, or until the signal aborts.
  const sleep = async (ms: number): Promise<void> => {
    const woken = Promise.withResolvers<void>();
    wake = woken.resolve;
    await settlesWithin(woken.promise, ms, signal);
    wake = undefined;
  };

  const pollQuery = async (): Promise<void> => {
    let failures = 0;
    while (!signal.aborted) {
      const gapMs = lastRequestMs + QUERY_MIN_GAP_MS - deps.now();
      if (gapMs > 0) await sleep(gapMs);
      if (signal.aborted) return;
      lastRequestMs = deps.now();
      try {
        const entries = await executePreparedQuery(deps.agent, u.destinationName, u.datacenter === "" ? {} : { datacenter: u.datacenter }, signal);
        failures = 0;
        publish(entries);
      } catch (err) {
        if (signal.aborted) return;
        onError(err as AgentError, ++failures);
      }
      await sleep(failures === 0 ? QUERY_REFRESH_MS : backoffDelayMs(failures, { initialMs: QUERY_MIN_GAP_MS, maxMs: QUERY_BACKOFF_MAX_MS }));
    }
  };

  const run = u.destinationType === "prepared_query" ? pollQuery : followHealth;
  run().catch((err: unknown) => {
    // watch() never throws and pollQuery catches; reaching here is a bug worth a loud line.
    if (!signal.aborted) deps.log.error({ err, upstream: u.destinationName }, "upstream discovery ended unexpectedly");
  });

  return {
    state: () => state,
    firstResult,
    refresh() {
      if (u.destinationType === "prepared_query") wake?.();
    },
    close() {
      stop.abort();
    },
  };
}
