// The set of outbound listeners of one sidecar, kept equal to Proxy.Upstreams[] by apply():
// added, removed and changed live, never restarting an unchanged one (spec §9.3 says Consul can't).
import type { AgentClient, Upstream } from "../agent/index.js";
import type { CertStore } from "../certs/index.js";
import { ConfigError } from "../net/index.js";
import type { Logger, Metrics } from "../ops/index.js";
import { createClientTls } from "./client-tls.js";
import type { DiscoveryState } from "./discovery.js";
import { toUpstreamSpec, type UpstreamSpec } from "./upstream-config.js";
import { closeRoute, createRoute, startUpstreamListener, type RouteDeps, type UpstreamListener } from "./upstream-listener.js";

export interface UpstreamInstanceStatus {
  address: string;
  service: string;
  datacenter: string;
  activeConns: number;
  consecutiveFailures: number;
  /** Epoch ms; undefined when the instance is not ejected. */
  ejectedUntilMs: number | undefined;
}

export interface UpstreamStatus {
  name: string;
  destinationType: Upstream["destinationType"];
  datacenter: string;
  /** "127.0.0.1:9191" (the real port) or "unix:/path". */
  bind: string;
  activeConns: number;
  connectTimeoutMs: number;
  discovery: DiscoveryState;
  instances: UpstreamInstanceStatus[];
}

export interface UpstreamsManager {
  /**
   * Makes the listeners match `upstreams`. All entries are checked first: a bad one throws
   * ConfigError and nothing changes. Then, by bind address: new ones are bound; removed ones stop
   * accepting while their live connections finish; a changed destination swaps the route under the
   * same socket (no moment when the port is closed); a changed timeout or socket mode applies to
   * new connections; unchanged ones are not touched. Rejects with UpstreamBindError (code
   * "bind_failed") after applying everything else when some listeners could not be bound; the next
   * apply retries them.
   */
  apply(upstreams: Upstream[]): Promise<void>;
  /** One entry per listener, in apply order. */
  status(): UpstreamStatus[];
  /** Stops accepting everywhere; resolves when live connections have ended. Idempotent. */
  close(): Promise<void>;
  /** Ends every live connection now. */
  destroy(): void;
}

export interface UpstreamsDeps {
  agent: AgentClient;
  certs: CertStore;
  log: Logger;
  metrics: Metrics;
  /** Expected datacenter of instances whose node does not say (Node.Datacenter is normally set). */
  localDatacenter: string;
  /** One info line per proxied connection (refusals are always logged). Default true. */
  logConnections?: boolean;
  now?: () => number;
  random?: () => number;
  /** Accept LocalBindPort 0 as "any free port" (tests); otherwise it is a ConfigError as in Consul. */
  allowEphemeralPorts?: boolean;
  /** Proxied connections idle this long are closed (idle_timeout); 0 or absent: never. */
  idleTimeoutMs?: number;
  /** TCP keepalive's first probe after this much silence; 0 or absent: off. */
  keepAliveMs?: number;
  /** Live connections each upstream listener carries at most (each its own count); 0 or absent: no limit. */
  maxConns?: number;
  /** One log line per HTTP request (upstreams whose protocol is http). Default true. */
  accessLog?: boolean;
}

/** Thrown by apply() when some listeners could not be bound; the others were applied. */
export class UpstreamBindError extends Error {
  override name = "UpstreamBindError";
  readonly code = "bind_failed" as const;
  readonly failures: Array<{ bind: string; code: string | undefined; message: string }>;
  constructor(failures: UpstreamBindError["failures"]) {
    super(`could not bind upstream listener(s): ${failures.map((f) => `${f.bind} (${f.code ?? f.message})`).join(", ")}`);
    this.failures = failures;
  }
}

/** Creates the manager; nothing listens until apply(). */
export function createUpstreams(deps: UpstreamsDeps): UpstreamsManager {
  const now = deps.now ?? Date.now;
  const routeDeps: RouteDeps = {
    agent: deps.agent,
    log: deps.log,
    metrics: deps.metrics,
    now,
    localDatacenter: deps.localDatacenter,
    ...(deps.random ? { random: deps.random } : {}),
  };
  const listenerDeps = {
    certs: deps.certs,
    tls: createClientTls(deps.certs, deps.log),
    log: deps.log,
    metrics: deps.metrics,
    logConnections: deps.logConnections ?? true,
    pipe: { idleTimeoutMs: deps.idleTimeoutMs ?? 0, keepAliveMs: deps.keepAliveMs ?? 0 },
    maxConns: deps.maxConns ?? 0,
    accessLog: deps.accessLog ?? true,
  };
  const listeners = new Map<string, UpstreamListener>(); // by bindKey, in apply order
  const retiring = new Set<UpstreamListener>(); // removed, still finishing live connections
  let queue: Promise<void> = Promise.resolve();
  let closed = false;

  // A removed destination's gauge goes too, unless another listener still serves that name.
  const dropRoute = (name: string): void => {
    for (const l of listeners.values()) if (l.route.spec.upstream.destinationName === name) return;
    deps.metrics.upstreamHealthyInstances.remove(name);
  };

  const retire = (l: UpstreamListener): void => {
    closeRoute(l.route);
    dropRoute(l.route.spec.upstream.destinationName);
    retiring.add(l);
    void l.close().then(() => retiring.delete(l));
  };

  const applyNow = async (specs: UpstreamSpec[]): Promise<void> => {
    if (closed) return;
    const wanted = new Set(specs.map((s) => s.bindKey));
    for (const [key, l] of listeners) {
      if (wanted.has(key)) continue;
      listeners.delete(key);
      retire(l);
      deps.log.info({ listener: l.route.spec.listenerLabel, bind: l.address() }, "upstream listener removed");
    }

    const failures: UpstreamBindError["failures"] = [];
    const next = new Map<string, UpstreamListener>();
    const starts = specs.map(async (spec) => {
      const l = listeners.get(spec.bindKey);
      if (l === undefined) {
        const route = createRoute(spec, routeDeps);
        try {
          const started = await startUpstreamListener(route, listenerDeps);
          deps.log.info({ listener: spec.listenerLabel, bind: started.address(), connectTimeoutMs: spec.connectTimeoutMs, protocol: spec.protocol }, "upstream listener started");
          if (spec.protocol !== "tcp") logProtocol(spec, deps.log);
          return started;
        } catch (err) {
          closeRoute(route);
          const e = err as NodeJS.ErrnoException;
          failures.push({ bind: spec.bindKey, code: e.code, message: e.message });
          return undefined;
        }
      }
      if (l.route.spec.destinationKey !== spec.destinationKey) {
        const old = l.route;
        l.route = createRoute(spec, routeDeps); // new connections only; live ones keep their instance
        closeRoute(old);
        dropRoute(old.spec.upstream.destinationName);
        deps.log.info({ listener: spec.listenerLabel, was: old.spec.listenerLabel, bind: l.address() }, "upstream destination changed");
      } else if (l.route.spec !== spec) {
        const modeChanged = socketMode(l.route.spec) !== socketMode(spec);
        const protocolChanged = l.route.spec.protocol !== spec.protocol;
        l.route.spec = spec;
        if (protocolChanged) logProtocol(spec, deps.log);
        if (modeChanged) await l.applySocketMode().catch((err: unknown) => void failures.push({ bind: spec.bindKey, code: (err as NodeJS.ErrnoException).code, message: (err as Error).message }));
      }
      return l;
    });
    const results = await Promise.all(starts);
    specs.forEach((s, i) => {
      const l = results[i];
      if (l !== undefined) next.set(s.bindKey, l);
    });
    listeners.clear();
    for (const [k, l] of next) listeners.set(k, l);
    if (closed) {
      // close() ran while we were binding: nothing may keep listening.
      for (const l of next.values()) retire(l);
      listeners.clear();
    }
    if (failures.length > 0) {
      deps.log.error({ failures }, "some upstream listeners could not be bound");
      throw new UpstreamBindError(failures);
    }
  };

  return {
    async apply(upstreams) {
      const specs = upstreams.map((u, i) => toUpstreamSpec(u, `upstreams[${i}]`, { allowEphemeralPort: deps.allowEphemeralPorts ?? false }));
      const seen = new Set<string>();
      for (const s of specs) {
        if (seen.has(s.bindKey)) {
          throw new ConfigError(
            "upstreams",
            `upstreams cannot contain duplicates by local bind address and port or unix path; "${s.bindKey.replace(/^(tcp|unix):/, "")}" is specified twice`,
          );
        }
        seen.add(s.bindKey);
      }
      const run = queue.then(() => applyNow(specs));
      queue = run.catch(() => undefined);
      await run;
    },

    status() {
      const nowMs = now();
      return [...listeners.values()].map((l) => {
        const u = l.route.spec.upstream;
        return {
          name: u.destinationName,
          destinationType: u.destinationType,
          datacenter: u.datacenter,
          bind: l.address(),
          activeConns: l.activeCount(),
          connectTimeoutMs: l.route.spec.connectTimeoutMs,
          discovery: l.route.discovery.state(),
          instances: l.route.instances.list().map((i) => ({
            address: i.address,
            service: i.service,
            datacenter: i.datacenter,
            activeConns: i.active,
            consecutiveFailures: i.consecutiveFailures,
            ejectedUntilMs: i.ejectedUntilMs > nowMs ? i.ejectedUntilMs : undefined,
          })),
        };
      });
    },

    async close() {
      closed = true;
      for (const l of listeners.values()) retire(l);
      listeners.clear();
      await queue; // an apply in flight retires what it bound once it sees `closed`
      await Promise.all([...retiring].map((l) => l.close()));
    },

    destroy() {
      closed = true;
      for (const l of listeners.values()) retire(l);
      listeners.clear();
      for (const l of retiring) l.destroy();
    },
  };
}

/** Says how the listener's new connections are handled under its protocol. */
function logProtocol(spec: UpstreamSpec, log: Logger): void {
  const { listenerLabel: listener, protocol } = spec;
  if (protocol === "http") log.info({ listener, protocol }, "new connections are served as HTTP/1.1: per-request metrics and access log");
  else if (protocol === "tcp") log.info({ listener, protocol }, "new connections are proxied at layer 4");
  else log.warn({ listener, protocol }, `protocol ${protocol} is proxied at layer 4 (bytes only)`);
}

function socketMode(s: UpstreamSpec): number | undefined {
  return s.bind.kind === "unix" ? s.bind.mode : undefined;
}
