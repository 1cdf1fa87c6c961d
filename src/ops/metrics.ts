import { createRequire } from "node:module";
import type { Counter as CounterT, Gauge as GaugeT, Histogram as HistogramT, Registry } from "prom-client";

// prom-client is loaded by the first createMetrics(), not at import (see logger.ts), and from its lib/
// files, not its index: the index also loads the Pushgateway (http, https, zlib), the cluster
// aggregator and Summary (tdigest), and its process CPU metric loads @opentelemetry/api (51 files) for
// exemplars we never record: 70 of the ~500 modules a sidecar loaded, none of which it runs. The
// classes are the same objects the index exports (one CommonJS module per file).
const require = createRequire(import.meta.url);

// Prometheus names follow the conventions: base units, `_total` counters, one `connect_sidecar_` prefix.
// Label sets are bounded: listener names (public + one per upstream), reasons (string unions), upstream
// instances (bounded by the catalog), agent endpoints (a fixed set of path templates). Never a peer address.
const P = "connect_sidecar_";

/**
 * prom-client's default metrics after process CPU, in collectDefaultMetrics()'s order
 * (lib/defaultMetrics.js; processResources is there whenever process.getActiveResourcesInfo is, as
 * on every Node this runs on), each registered from its own lib/metrics/ file.
 */
const DEFAULT_METRIC_FILES = [
  "processStartTime",
  "osMemoryHeap",
  "processOpenFileDescriptors",
  "processMaxFileDescriptors",
  "eventLoopLag",
  "processResources",
  "processHandles",
  "processRequests",
  "heapSizeAndUsed",
  "heapSpacesSizeAndUsed",
  "version",
  "gc",
] as const;

/** How often the event loop lag metric samples the loop (prom-client's eventLoopMonitoringPrecision). */
const EVENT_LOOP_SAMPLE_MS = 100;

type DefaultMetric = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

/** Registers prom-client's default process metrics on `registry` under `prefix`, as collectDefaultMetrics() does but for the lag's sampling interval. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  processCpuMetrics(registry, prefix); // first, as in collectDefaultMetrics
  // The event loop lag is sampled every 100 ms, not at collectDefaultMetrics' 10 ms: monitorEventLoopDelay
  // wakes the process at each sample, and at 100 a second that cost an idle sidecar 6.7–8.4 ms of CPU
  // per second on a VM (0.4 without the monitor). A stall shorter than 100 ms is caught in proportion
  // to its length; a longer one always is.
  const config = { prefix, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS };
  for (const name of DEFAULT_METRIC_FILES) (require(`prom-client/lib/metrics/${name}`) as DefaultMetric)(registry, config);
}

/**
 * process_cpu_user_seconds_total, process_cpu_system_seconds_total and process_cpu_seconds_total,
 * with the names, help and values of prom-client's lib/metrics/processCpuTotal.js (CPU time since
 * registration, brought up to date on each scrape), minus its exemplar support, which is what
 * requires @opentelemetry/api.
 */
function processCpuMetrics(registry: Registry, prefix: string): void {
  const { Counter } = promClient();
  let last = process.cpuUsage();
  const user: CounterT = new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: "Total user CPU time spent in seconds.",
    registers: [registry],
    // One collect() brings all three up to date, as in prom-client.
    collect() {
      const now = process.cpuUsage();
      const userMicros = now.user - last.user;
      const systemMicros = now.system - last.system;
      last = now;
      user.inc(userMicros / 1e6);
      system.inc(systemMicros / 1e6);
      total.inc((userMicros + systemMicros) / 1e6);
    },
  });
  const system: CounterT = new Counter({ name: `${prefix}process_cpu_system_seconds_total`, help: "Total system CPU time spent in seconds.", registers: [registry] });
  const total: CounterT = new Counter({ name: `${prefix}process_cpu_seconds_total`, help: "Total user and system CPU time spent in seconds.", registers: [registry] });
}

function promClient() {
  return {
    Registry: require("prom-client/lib/registry") as typeof Registry,
    Counter: require("prom-client/lib/counter") as typeof CounterT,
    Gauge: require("prom-client/lib/gauge") as typeof GaugeT,
    Histogram: require("prom-client/lib/histogram") as typeof HistogramT,
  };
}

/**
 * Creates every metric the sidecar exports on `registry` (a fresh one per sidecar; tests make their own).
 * The process metrics are registered by the first scrape(), not here: their twelve prom-client files and
 * set-up cost 10–17 ms of CPU on the way to /ready, and the event-loop-lag metric keeps a sampling timer
 * running (monitorEventLoopDelay) in a sidecar that nobody may ever scrape. What they count (CPU, GCs,
 * event loop lag) is counted from then on: prom-client counts from registration too.
 */
export function createMetrics(registry?: Registry, opts: { processMetrics?: boolean } = {}) {
  const { Counter, Gauge, Histogram, Registry } = promClient();
  const r = registry ?? new Registry();
  let processMetricsPending = opts.processMetrics !== false;
  const reg = [r];
  const authzDecisionBatches = new Set<() => void>();
  return {
    registry: r,
    contentType: r.contentType,
    /** The exposition text of every metric, the process metrics included (registered by the first call). */
    scrape(): Promise<string> {
      if (processMetricsPending) {
        processMetricsPending = false;
        collectProcessMetrics(r, P);
      }
      return r.metrics();
    },
    connectionsAccepted: new Counter({
      name: `${P}connections_accepted_total`,
      help: "Connections accepted, per listener (public, or upstream:<name>).",
      labelNames: ["listener"] as const,
      registers: reg,
    }),
    connectionsActive: new Gauge({
      name: `${P}connections_active`,
      help: "Connections open now, per listener. accepted_total = closed_total + active.",
      labelNames: ["listener"] as const,
      registers: reg,
    }),
    connectionsClosed: new Counter({
      name: `${P}connections_closed_total`,
      help: "Connections closed, per listener and reason (a rejection reason, or how a proxied connection ended).",
      labelNames: ["listener", "reason"] as const,
      registers: reg,
    }),
    connectionsRejected: new Counter({
      name: `${P}connections_rejected_total`,
      help: "Connections refused before any byte reached the app or upstream, per listener and reason.",
      labelNames: ["listener", "reason"] as const,
      registers: reg,
    }),
    receivedBytes: new Counter({
      name: `${P}received_bytes_total`,
      help: "Bytes received from the accepting side's peer (downstream), per listener.",
      labelNames: ["listener"] as const,
      registers: reg,
    }),
    sentBytes: new Counter({
      name: `${P}sent_bytes_total`,
      help: "Bytes sent back to the accepting side's peer (downstream), per listener.",
      labelNames: ["listener"] as const,
      registers: reg,
    }),
    handshakeDuration: new Histogram({
      name: `${P}tls_handshake_duration_seconds`,
      help: "TLS handshake duration, per listener (public: as server; upstream: as client).",
      labelNames: ["listener"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: reg,
    }),
    authzDecisions: new Counter({
      name: `${P}authz_decisions_total`,
      help: "Authorization decisions by result (allow, denied, authz_unavailable) and source (cache, agent, stale).",
      labelNames: ["result", "source"] as const,
      registers: reg,
      // The batches are added when the counter is read (a scrape, get()), not on a timer that would wake
      // an idle sidecar every second.
      collect() {
        for (const flush of authzDecisionBatches) flush();
      },
    }),
    /**
     * Decision counts kept outside prom-client (authz/decision-counts.ts: a labelled inc() per decision
     * costs the hot path ~200 ns): each flush() here is called before authz_decisions_total is read.
     */
    authzDecisionBatches,
    authzCacheEntries: new Gauge({
      name: `${P}authz_cache_entries`,
      help: "Cached authorization decisions.",
      registers: reg,
    }),
    connectionsRevoked: new Counter({
      name: `${P}connections_revoked_total`,
      help: "Live inbound connections closed because an intention change now denies their source.",
      registers: reg,
    }),
    upstreamDialAttempts: new Counter({
      name: `${P}upstream_dial_attempts_total`,
      help: "Dials to upstream instances (TCP + TLS), per upstream and instance (host:port).",
      labelNames: ["upstream", "instance"] as const,
      registers: reg,
    }),
    upstreamDialFailures: new Counter({
      name: `${P}upstream_dial_failures_total`,
      help: "Failed dials to upstream instances, per upstream, instance and reason.",
      labelNames: ["upstream", "instance", "reason"] as const,
      registers: reg,
    }),
    upstreamEjections: new Counter({
      name: `${P}upstream_ejections_total`,
      help: "Times an upstream instance was ejected after repeated failures.",
      labelNames: ["upstream", "instance"] as const,
      registers: reg,
    }),
    upstreamHealthyInstances: new Gauge({
      name: `${P}upstream_healthy_instances`,
      help: "Healthy (passing, not ejected) instances known per upstream.",
      labelNames: ["upstream"] as const,
      registers: reg,
    }),
    certNotAfter: new Gauge({
      name: `${P}certificate_not_after_timestamp_seconds`,
      help: "NotAfter of the loaded leaf (kind=leaf) and of each trusted root (kind=root, id=fingerprint).",
      labelNames: ["kind", "id"] as const,
      registers: reg,
    }),
    certRotations: new Counter({
      name: `${P}certificate_rotations_total`,
      help: "Certificate material swapped in, by kind (leaf, roots).",
      labelNames: ["kind"] as const,
      registers: reg,
    }),
    certRejected: new Counter({
      name: `${P}certificate_updates_rejected_total`,
      help: "Certificate updates from the agent refused (previous material kept), by reason.",
      labelNames: ["reason"] as const,
      registers: reg,
    }),
    agentRequests: new Counter({
      name: `${P}agent_requests_total`,
      help: "HTTP requests to the Consul agent, by endpoint template and status (0 = no response).",
      labelNames: ["endpoint", "status"] as const,
      registers: reg,
    }),
    agentRequestDuration: new Histogram({
      name: `${P}agent_request_duration_seconds`,
      help: "Duration of non-blocking agent requests, by endpoint template.",
      labelNames: ["endpoint"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: reg,
    }),
    httpRequests: new Counter({
      name: `${P}http_requests_total`,
      help: "HTTP requests answered on listeners whose protocol is http, by listener, method class (GET, POST, …, other) and status class (2xx, …; 0xx: no response).",
      labelNames: ["listener", "method_class", "code_class"] as const,
      registers: reg,
    }),
    httpRequestDuration: new Histogram({
      name: `${P}http_request_duration_seconds`,
      help: "HTTP request duration, from the request head to the response's end, per listener.",
      labelNames: ["listener"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: reg,
    }),
    httpRequestsDenied: new Counter({
      name: `${P}http_requests_denied_total`,
      help: "HTTP requests refused with 403 by an L7 intention, per listener.",
      labelNames: ["listener"] as const,
      registers: reg,
    }),
    watchErrors: new Counter({
      name: `${P}watch_errors_total`,
      help: "Errors of blocking watches on the agent, by watch name.",
      labelNames: ["watch"] as const,
      registers: reg,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
