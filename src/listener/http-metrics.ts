// One listener's per-request HTTP metrics (protocol http), label children bound on first use.
// Labels are bounded: a method class (the nine RFC 9110 methods and PATCH, else "other") and a
// status class ("2xx"; "0xx" when no response was sent). Never a path or a peer address.
import type { Metrics } from "../ops/index.js";

export interface HttpMetrics {
  /** One answered (or abandoned) request: its method, status (0: none) and duration. */
  request(method: string, status: number, seconds: number): void;
  /** One request refused with 403 by an L7 intention. */
  denied(): void;
}

const METHOD_CLASSES = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);

export function bindHttpMetrics(m: Metrics, listener: string): HttpMetrics {
  type Child = ReturnType<Metrics["httpRequests"]["labels"]>;
  const byKey = new Map<string, Child>();
  const duration = m.httpRequestDuration.labels(listener);
  const denied = m.httpRequestsDenied.labels(listener);
  return {
    request(method, status, seconds) {
      const mc = METHOD_CLASSES.has(method) ? method : "other";
      const cc = status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : "0xx";
      const key = `${mc} ${cc}`;
      let child = byKey.get(key);
      if (child === undefined) byKey.set(key, (child = m.httpRequests.labels(listener, mc, cc)));
      child.inc();
      duration.observe(seconds);
    },
    denied: () => denied.inc(),
  };
}
