// One listener's per-request HTTP metrics (protocol http), label children bound on first use, and
// the access-log line: what every HTTP exchange of either listener kind is counted and logged with.
// Labels are bounded: a method class (the nine RFC 9110 methods and PATCH, else "other") and a
// status class ("2xx"; "0xx" when no response was sent). Never a path or a peer address.
import type { HttpExchange } from "../net/index.js";
import type { Logger } from "./logger.js";
import { childFor, type Child } from "./listener-metrics.js";
import type { Metrics } from "./metrics.js";

export interface HttpMetrics {
  /** One answered (or abandoned) request: its method, status (0: none) and duration. */
  request(method: string, status: number, seconds: number): void;
  /** One request refused with 403 by an L7 intention. */
  denied(): void;
}

const METHOD_CLASSES = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"] as const;
const OTHER = METHOD_CLASSES.length - 1;
const CODE_CLASSES = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** Binds the HTTP metrics of `listener` ("public", "upstream:<name>"); series appear on first use. */
export function bindHttpMetrics(m: Metrics, listener: string): HttpMetrics {
  // Keyed by method class × status class, so that counting a request builds no label string.
  const requests = new Map<number, Child<"httpRequests">>();
  let duration: Child<"httpRequestDuration"> | undefined;
  let denied: Child<"httpRequestsDenied"> | undefined;
  return {
    request(method, status, seconds) {
      const found = METHOD_CLASSES.indexOf(method as (typeof METHOD_CLASSES)[number]);
      const mc = found === -1 ? OTHER : found;
      const cc = status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
      childFor(requests, mc * CODE_CLASSES.length + cc, () => m.httpRequests.labels(listener, METHOD_CLASSES[mc]!, CODE_CLASSES[cc]!)).inc();
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
