// One listener's connection metrics, bound once per listener (public, or upstream:<name>): the label
// children a connection touches on the hot path, and the one place a connection's end is counted.
import { isRefusal, type CloseReason } from "../net/index.js";
import type { Metrics } from "./metrics.js";

/** The label child of metric `K`. */
export type Child<K extends keyof Metrics> = Metrics[K] extends { labels(...a: string[]): infer C } ? C : never;

export interface ListenerMetrics {
  readonly accepted: Child<"connectionsAccepted">;
  readonly active: Child<"connectionsActive">;
  readonly receivedBytes: Child<"receivedBytes">;
  readonly sentBytes: Child<"sentBytes">;
  readonly handshake: Child<"handshakeDuration">;
  /**
   * Counts a connection's end: closed_total by `reason`, rejected_total too when it was refused before
   * reaching its destination, revoked_total for a revocation, the bytes it carried; active goes down.
   * One synchronous block, so a scrape always sees accepted = closed + active.
   */
  closed(reason: CloseReason, c: { reachedDestination: boolean; bytesIn: number; bytesOut: number }): void;
}

/** Binds `listener`'s label children; reason children are bound on first use (bounded by CloseReason). */
export function bindListenerMetrics(m: Metrics, listener: string): ListenerMetrics {
  const closedBy = new Map<CloseReason, Child<"connectionsClosed">>();
  const rejectedBy = new Map<CloseReason, Child<"connectionsRejected">>();
  const receivedBytes = m.receivedBytes.labels(listener);
  const sentBytes = m.sentBytes.labels(listener);
  const active = m.connectionsActive.labels(listener);
  return {
    accepted: m.connectionsAccepted.labels(listener),
    active,
    receivedBytes,
    sentBytes,
    handshake: m.handshakeDuration.labels(listener),
    closed(reason, c) {
      active.dec();
      childFor(closedBy, reason, () => m.connectionsClosed.labels(listener, reason)).inc();
      if (isRefusal(reason, c.reachedDestination)) childFor(rejectedBy, reason, () => m.connectionsRejected.labels(listener, reason)).inc();
      if (reason === "revoked") m.connectionsRevoked.inc();
      if (c.bytesIn > 0) receivedBytes.inc(c.bytesIn);
      if (c.bytesOut > 0) sentBytes.inc(c.bytesOut);
    },
  };
}

/** The label child cached under `key`, bound by `make` on first use. */
export function childFor<K, C>(cache: Map<K, C>, key: K, make: () => C): C {
  let c = cache.get(key);
  if (c === undefined) cache.set(key, (c = make()));
  return c;
}
