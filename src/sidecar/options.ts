// What one sidecar process is asked to do, after the CLI has parsed and validated its flags.
import type { AgentConfig, ProxyIdentity, Upstream } from "../agent/index.js";
import type { Logger, Metrics } from "../ops/index.js";

// consul-dataplane's paths; the CLI's flag defaults too (this module loads nothing at run time).
export const DEFAULT_GRACEFUL_SHUTDOWN_PATH = "/graceful_shutdown";
export const DEFAULT_GRACEFUL_STARTUP_PATH = "/graceful_startup";

/**
 * Where the proxy configuration comes from (spec §9.1 precedence: proxy-id > sidecar-for > service).
 * In static mode -listen and -service-addr go together (spec §9.1: -service-addr is required with -listen).
 */
export type ProxySource = ProxyIdentity<{
  upstreams: Upstream[];
  /** -register: self-register `<service>-sidecar-proxy[-<idSuffix>]` with a TTL check. */
  register: { idSuffix: string } | undefined;
  /** -register without -listen: bind 0.0.0.0 on the lowest free port of this range (resolved at start). */
  pickListenPort?: { min: number; max: number } | undefined;
}>;

export interface SidecarOptions {
  source: ProxySource;
  agent: AgentConfig;
  /** The admin server (/metrics, /ready, /live, /status). */
  metricsAddr: { host: string; port: number };
  /** True when -metrics-addr was given: it then beats the registration's Config.metrics_bind_addr. */
  metricsAddrExplicit: boolean;
  drainTimeoutMs: number;
  /**
   * After a shutdown begins, the upstream listeners keep accepting this long so the app can finish its
   * own shutdown (consul-dataplane's -shutdown-grace-period-seconds); within the drain deadline. 0: none.
   */
  shutdownGracePeriodMs?: number | undefined;
  /** /graceful_startup answers 200 after this long even when not ready (consul-dataplane's); 0 or undefined: no limit. */
  startupGracePeriodMs?: number | undefined;
  /** Admin paths of the lifecycle endpoints; defaults "/graceful_shutdown" and "/graceful_startup" (consul-dataplane's). */
  gracefulShutdownPath?: string | undefined;
  gracefulStartupPath?: string | undefined;
  allowNonLoopbackApp: boolean;
  logConnections: boolean;
  /** One log line per HTTP request on listeners whose protocol is http; default true. */
  accessLog?: boolean | undefined;
  revokeLive: boolean;
  authzMaxStaleMs: number;
  /** -max-conns: live connections each listener carries at most (the public one and each upstream, each its own count). */
  maxConns: number | undefined;
  /** Proxied connections (both directions) idle this long are closed; 0 or undefined: never. */
  idleTimeoutMs: number | undefined;
  /** TCP keepalive on every proxied socket: first probe after this much silence; 0 or undefined: off. */
  tcpKeepAliveMs?: number | undefined;
  /** Run the production checklist (doctor) on itself when ready and at this period; undefined or 0: off. */
  checklistIntervalMs?: number | undefined;
  /** Process-wide, read by the CLI: release V8's pooled pages when quiet (src/ops/idle-memory-release.ts). */
  idleMemoryRelease?: boolean | undefined;
}

export interface SidecarDeps {
  log: Logger;
  metrics: Metrics;
  now: () => number;
}

// spec §6.1 defaults, owned by the registration reader (src/agent/proxy-settings.ts)
export { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_LOCAL_CONNECT_TIMEOUT_MS } from "../agent/index.js";
