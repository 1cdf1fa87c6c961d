// What the admin server reports: readiness as one discriminated union (STYLE §6), and the
// JSON document behind /status. The sidecar computes both; this file only knows their shapes.
import { assertNever } from "../net/index.js";


/** What a starting sidecar still waits for. */
export type ReadinessWait = "proxy_config" | "certificates" | "public_listener";

/** The sidecar's readiness: one state, never a set of booleans. */
export type Readiness =
  | { t: "starting"; missing: ReadinessWait[] }
  | { t: "ready" }
  | { t: "agent_unreachable"; sinceMs: number }
  | { t: "draining"; deadlineMs: number }
  | { t: "failed"; error: string };

/** One line for /ready's body and for logs: "ok", or why the sidecar is not ready. */
export function describeReadiness(r: Readiness, nowMs: number): string {
  switch (r.t) {
    case "ready":
      return "ok";
    case "starting":
      return `waiting for ${r.missing.map(describeWait).join(", ")}`;
    case "agent_unreachable":
      return `the Consul agent has been unreachable for ${Math.max(0, Math.round((nowMs - r.sinceMs) / 1000))}s`;
    case "draining":
      return "draining: shutting down";
    case "failed":
      return `failed: ${r.error}`;
    default:
      return assertNever(r);
  }
}

function describeWait(w: ReadinessWait): string {
  switch (w) {
    case "proxy_config":
      return "the proxy registration from the agent";
    case "certificates":
      return "the leaf certificate and CA roots";
    case "public_listener":
      return "the public listener to bind";
    default:
      return assertNever(w);
  }
}


/** The /status document (JSON). Addresses are "host:port"; times are ISO 8601. */
export interface SidecarStatus {
  ready: boolean;
  readiness: string;
  state: Readiness["t"];
  mode: "proxy-id" | "sidecar-for" | "static";
  proxyId: string | undefined;
  service: string | undefined;
  identity: { serviceUri: string; trustDomain: string } | undefined;
  leaf: { serial: string; notAfter: string } | undefined;
  roots: { fingerprints: string[] } | undefined;
  listeners: {
    admin: string;
    public: { address: string; activeConnections: number; app: string } | undefined;
  };
  /** UpstreamsManager.status(), as the upstream module reports it. */
  upstreams: readonly unknown[];
  authz: { cacheEntries: number } | undefined;
  agent: { origin: string; lastContact: string | undefined };
  registration: { id: string; checkId: string } | undefined;
  /** The production checklist as the sidecar last checked it on itself (`connect-sidecar doctor`). */
  checklist?: unknown;
}
