/**
 * The answer for one (source, this service) pair. `authz_unavailable` is the fail-closed answer
 * when the agent cannot decide (unreachable past the stale bound, or the token lacks rights).
 */
export type Verdict = "allow" | "denied" | "authz_unavailable";
