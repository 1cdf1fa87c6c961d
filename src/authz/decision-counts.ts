// Decision counting for the hot path. A prom-client labelled `inc` hashes its labels and
// allocates a result object on every call (~200 ns); a cache hit must cost a few ns. So
// decisions are counted in a plain typed array and added to `authzDecisions` in batches, when the
// counter is read (metrics.authzDecisionBatches).
import type { Metrics } from "../ops/index.js";
import type { Verdict } from "./verdict.js";

/** Where a verdict came from: memory, a fresh agent answer, or a cached answer served while the agent fails. */
export type DecisionSource = "cache" | "agent" | "stale";

const RESULTS: readonly Verdict[] = ["allow", "denied", "authz_unavailable"];
const SOURCES: readonly DecisionSource[] = ["cache", "agent", "stale"];

/** Slot of (result, source) in the counts array: result-major. */
export function decisionSlot(result: Verdict, source: DecisionSource): number {
  return RESULTS.indexOf(result) * SOURCES.length + SOURCES.indexOf(source);
}

/** Slots of the cache-hit outcomes, used by `peek` without any lookup. */
export const SLOT_ALLOW_CACHE = decisionSlot("allow", "cache");
export const SLOT_DENIED_CACHE = decisionSlot("denied", "cache");
export const SLOT_ALLOW_STALE = decisionSlot("allow", "stale");
export const SLOT_DENIED_STALE = decisionSlot("denied", "stale");

export interface DecisionCounts {
  /** Counts per slot since the last flush; the hot path increments these directly. */
  readonly pending: Float64Array;
  /** Adds the pending counts to the Prometheus counter and zeroes them. No-op without metrics. */
  flush(): void;
}

/** Creates the batch; `metrics` absent (tests) means counts are kept and dropped on flush. */
export function createDecisionCounts(metrics: Metrics | undefined): DecisionCounts {
  const pending = new Float64Array(RESULTS.length * SOURCES.length);
  // Pre-bound children (architecture: "Hot paths pre-bind label children once").
  const children = metrics
    ? RESULTS.flatMap((r) => SOURCES.map((s) => metrics.authzDecisions.labels(r, s)))
    : undefined;
  return {
    pending,
    flush() {
      for (let i = 0; i < pending.length; i++) {
        const n = pending[i] ?? 0;
        if (n === 0) continue;
        pending[i] = 0;
        children?.[i]?.inc(n);
      }
    },
  };
}
