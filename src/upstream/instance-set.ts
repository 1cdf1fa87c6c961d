// The known healthy instances of one upstream, and how we choose among them: least active
// connections with random ties, failover state, and ejection of instances that keep failing.
import type { HealthEntry } from "../agent/index.js";
import type { Metrics } from "../ops/index.js";
import { formatAddress } from "../net/index.js";

/** Consecutive failures after which an instance is ejected. */
export const EJECT_AFTER_FAILURES = 2;
/** First ejection lasts this long; each further one doubles it, up to EJECT_MAX_MS. */
export const EJECT_BASE_MS = 5_000;
export const EJECT_MAX_MS = 60_000;

type Counter = ReturnType<Metrics["upstreamDialAttempts"]["labels"]>;

/** One dialable instance and what we learned about it. Mutated in place by the set and by dials. */
export interface Instance {
  /** Dial target for logs and the `instance` metric label: "10.0.0.5:21000" or "unix:/path". */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Non-empty for a unix-socket instance (port 0). */
  readonly socketPath: string;
  /** Expected server identity (spec §7.1): service, namespace, datacenter; lowercased for comparison. */
  readonly service: string;
  readonly namespace: string;
  readonly datacenter: string;
  active: number;
  consecutiveFailures: number;
  /** Ejections since the last success: the exponent of the ejection back-off. */
  ejections: number;
  /** Epoch ms until which the instance is ejected; 0 when it is not. */
  ejectedUntilMs: number;
  lastFailureMs: number;
  /** Last TLS session from this instance, valid only for material generation `sessionGeneration`. */
  session: Buffer | undefined;
  sessionGeneration: number;
  readonly dialAttempts: Counter;
  readonly ejectionsTotal: Counter;
}

export interface InstanceSetDeps {
  metrics: Metrics;
  now: () => number;
  random?: () => number;
}

/** One upstream's instances. Everything here is synchronous and allocation-light: it runs per connection. */
export interface InstanceSet {
  /**
   * Replaces the instance list with the discovered entries, keeping the counters, ejections and
   * sessions of instances that stay. Entries that cannot be dialled or named are skipped.
   */
  update(entries: readonly HealthEntry[]): void;
  /**
   * The instance a new dial should go to, skipping those in `tried`: the one with the fewest active
   * connections among those not ejected (ties at random); when every untried one is ejected, the
   * least recently failed of them. Undefined when none is left.
   */
  pick(tried: readonly Instance[]): Instance | undefined;
  /** A dial and handshake succeeded: clears failures and ejection. */
  recordSuccess(i: Instance): void;
  /** A dial or handshake failed; returns true when this failure ejected the instance. */
  recordFailure(i: Instance): boolean;
  /** Instances that are not ejected now (sets the healthy-instances gauge). */
  healthyCount(): number;
  size(): number;
  list(): readonly Instance[];
}

/**
 * Makes the instance set of one upstream. `defaults` fill in what an entry leaves out: the
 * namespace we expect and the datacenter when a node has none.
 */
export function createInstanceSet(
  upstreamName: string,
  defaults: { namespace: string; datacenter: string },
  deps: InstanceSetDeps,
): InstanceSet {
  const random = deps.random ?? Math.random;
  const healthyGauge = deps.metrics.upstreamHealthyInstances.labels(upstreamName);
  let instances: Instance[] = [];
  let byKey = new Map<string, Instance>();

  const healthyCount = (): number => {
    const now = deps.now();
    let n = 0;
    for (const i of instances) if (i.ejectedUntilMs <= now) n++;
    return n;
  };
  const refreshGauge = (): void => void healthyGauge.set(healthyCount());

  return {
    update(entries) {
      const next: Instance[] = [];
      const nextByKey = new Map<string, Instance>();
      for (const e of entries) {
        if (e.checks.some((c) => c.status === "critical" || c.status === "maintenance")) continue; // belt and braces
        const service = e.service.connectNative ? e.service.service : e.service.proxyDestinationServiceName;
        if (service === "") continue; // spec §7.1: "not a valid connect service"
        const socketPath = e.service.port === 0 ? e.service.socketPath : "";
        const host = e.service.address !== "" ? e.service.address : e.node.address; // spec §7.1
        if (socketPath === "" && (host === "" || e.service.port === 0)) continue;
        const datacenter = e.node.datacenter !== "" ? e.node.datacenter : defaults.datacenter;
        const address = formatAddress(socketPath !== "" ? { socketPath } : { host, port: e.service.port });
        const key = `${address}|${service.toLowerCase()}|${datacenter.toLowerCase()}`;
        if (nextByKey.has(key)) continue;
        const kept = byKey.get(key);
        const inst: Instance = kept ?? {
          address,
          host,
          port: e.service.port,
          socketPath,
          service: service.toLowerCase(),
          namespace: defaults.namespace.toLowerCase(),
          datacenter: datacenter.toLowerCase(),
          active: 0,
          consecutiveFailures: 0,
          ejections: 0,
          ejectedUntilMs: 0,
          lastFailureMs: 0,
          session: undefined,
          sessionGeneration: -1,
          dialAttempts: deps.metrics.upstreamDialAttempts.labels(upstreamName, address),
          ejectionsTotal: deps.metrics.upstreamEjections.labels(upstreamName, address),
        };
        next.push(inst);
        nextByKey.set(key, inst);
      }
      instances = next;
      byKey = nextByKey;
      refreshGauge();
    },

    pick(tried) {
      const now = deps.now();
      let best: Instance | undefined;
      let ties = 0;
      let fallback: Instance | undefined;
      for (const i of instances) {
        if (tried.includes(i)) continue;
        if (i.ejectedUntilMs > now) {
          if (fallback === undefined || i.lastFailureMs < fallback.lastFailureMs) fallback = i;
          continue;
        }
        if (best === undefined || i.active < best.active) {
          best = i;
          ties = 1;
        } else if (i.active === best.active && random() * ++ties < 1) {
          best = i; // reservoir sampling: each of the tied instances wins with probability 1/ties
        }
      }
      return best ?? fallback;
    },

    recordSuccess(i) {
      const wasEjected = i.ejectedUntilMs !== 0;
      i.consecutiveFailures = 0;
      i.ejections = 0;
      i.ejectedUntilMs = 0;
      if (wasEjected) refreshGauge();
    },

    recordFailure(i) {
      const now = deps.now();
      i.consecutiveFailures++;
      i.lastFailureMs = now;
      i.session = undefined;
      // A probe after an ejection that fails again ejects at once, for twice as long.
      if (i.consecutiveFailures < EJECT_AFTER_FAILURES && i.ejections === 0) return false;
      i.ejectedUntilMs = now + Math.min(EJECT_MAX_MS, EJECT_BASE_MS * 2 ** i.ejections);
      i.ejections++;
      i.consecutiveFailures = 0;
      i.ejectionsTotal.inc();
      refreshGauge();
      return true;
    },

    healthyCount,
    size: () => instances.length,
    list: () => instances,
  };
}
