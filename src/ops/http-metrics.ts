// One listener's per-request HTTP metrics (protocol http), label children bound on first use, and
// the access-log line: what every HTTP exchange of either listener kind is counted and logged with.
// Labels are bounded: a method class (the nine RFC 9110 methods and PATCH, else "other") and a
// status class ("2xx"; "0xx" when no response was sent). Never a path or a peer address.
import type { HttpExchange } from "../net/index.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";

export interface HttpMetrics {
  /** One answered (or abandoned) request: its method, status (0: none) and duration. */
  request(method: string, status: number, seconds: number): void;
  /** One request refused with 403 by an L7 intention. */
  denied(): void;
}

const METHOD_CLASSES = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);

/** Binds the HTTP metrics of `listener` ("public", "upstream:<name>"); series appear on first use. */
export function bindHttpMetrics(m: Metrics, listener: string): HttpMetrics {
  type Child = ReturnType<Metrics["httpRequests"]["labels"]>;
  const byKey = new Map<string, Child>();
  let duration: ReturnType<Metrics["httpRequestDuration"]["labels"]> | undefined;
  let denied: ReturnType<Metrics["httpRequestsDenied"]["labels"]> | undefined;
  return {
    request(method, status, seconds) {
      const mc = METHOD_CLASSES.has(method) ? method : "other";
      const cc = status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : "0xx";
      const key = `${mc} ${cc}`;
      let child = byKey.get(key);
      if (child === undefined) byKey.set(key, (child = m.httpRequests.labels(listener, mc, cc)));
      child.inc();
      (duration ??= m.httpRequestDuration.labels(listener)).observe(seconds);
    },
    denied: () => (denied ??= m.httpRequestsDenied.labels(listener)).inc(),
  };
}

/**
 * What counts and logs one exchange: the metrics, and the `"http request"` line (method, path,
 * status, body bytes sent, duration and the caller's `fields`) when `accessLog` is on.
 */
export function recordHttpExchange(o: { metrics: HttpMetrics; log: Logger; accessLog: boolean; fields: Record<string, unknown> }): (x: HttpExchange) => void {
  return (x) => {
    o.metrics.request(x.method, x.status, x.seconds);
    if (!o.accessLog) return;
    o.log.info({ ...o.fields, method: x.method, path: x.url, status: x.status, bytesOut: x.bodyBytes, durationMs: Math.round(x.seconds * 1000) }, "http request");
  };
}
