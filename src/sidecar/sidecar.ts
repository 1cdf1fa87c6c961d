// One sidecar process, composed: proxy configuration (agent watch or static flags), the cert store,
// the authorizer, the public listener, the upstream listeners and the admin server; config changes
// applied live; drain on close. cli.ts owns signals and the exit code.
import { startChecklist, type Checklist } from "./checklist.js";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AgentError,
  agentServiceWatch,
  createAgentClient,
  findSidecarFor,
  readTokenFile,
  watch,
  type AgentClient,
  type AgentService,
} from "../agent/index.js";
import { createAuthorizer, type Authorizer } from "../authz/index.js";
import { createCertStore, parseSpiffeId, type CertStore, type TlsMaterial } from "../certs/index.js";
import { startPublicListener, type PublicListener } from "../listener/index.js";
import { checkNodeInternals, ConfigError, formatHostPort } from "../net/index.js";
import {
  describeReadiness,
  startAdminServer,
  type AdminServer,
  type Readiness,
  type ReadinessWait,
  type SidecarStatus,
} from "../ops/index.js";
import { createUpstreams, type UpstreamsManager } from "../upstream/index.js";
import type { SidecarDeps, SidecarOptions } from "./options.js";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_LOCAL_CONNECT_TIMEOUT_MS } from "./options.js";
import { appSettingsChanged, formatApp, proxySettingsFromService, sameAddress, type ProxySettings } from "./proxy-config.js";
import { startRegistration, type Registration } from "./registration.js";

/** The agent counts as unreachable for /ready after failing this long without any answer. */
export const AGENT_UNREACHABLE_GRACE_MS = 5_000;
// Endpoints the sidecar long-polls: their durations are not request latencies.
const BLOCKING_ENDPOINTS = new Set([
  "/v1/agent/service/:id",
  "/v1/agent/connect/ca/leaf/:service",
  "/v1/agent/connect/ca/roots",
  "/v1/health/connect/:service",
  "/v1/connect/intentions/match",
]);

export interface Sidecar {
  /** Resolves once certificates are loaded and every listener is bound; rejects when start-up fails. */
  readonly ready: Promise<void>;
  adminUrl(): string;
  adminAddress(): { host: string; port: number };
  /** The public listener's bound address, if there is one. */
  publicAddress(): { host: string; port: number } | undefined;
  readiness(): Readiness;
  status(): SidecarStatus;
  /** SIGHUP: re-reads the token file (if the token came from one) and uses it from the next request. */
  reloadToken(): void;
  /**
   * Drains: not ready, stop accepting on the public listener, keep upstream listeners serving, wait for
   * live connections up to `drainTimeoutMs`, deregister. Resolves 0, or 1 when connections had to be cut.
   */
  close(drainTimeoutMs: number): Promise<0 | 1>;
  /** Ends everything now. */
  destroy(): void;
}

type Phase =
  | { t: "running" }
  | { t: "failed"; error: string }
  | { t: "draining"; deadlineMs: number };

/**
 * Starts a sidecar: binds the admin server (rejects when it cannot), then starts everything else in
 * the background (`ready`). Never leaves a half-started sidecar: a failed start ends `ready` with the
 * error and close() cleans up whatever did start.
 */
export async function runSidecar(opts: SidecarOptions, deps: SidecarDeps): Promise<Sidecar> {
  const { log, metrics, now } = deps;
  // A Node release that took away an internal the data path uses costs CPU, never correctness: say so.
  for (const problem of checkNodeInternals()) log.error({ node: process.versions.node }, `node internals changed: ${problem}`);
  const stop = new AbortController();
  let phase: Phase = { t: "running" };
  let agentDownSinceMs: number | undefined;
  let settings: ProxySettings | undefined;
  let proxyId: string | undefined = opts.source.t === "proxy-id" ? opts.source.proxyId : undefined;
  let certs: CertStore | undefined;
  let authz: Authorizer | undefined;
  let upstreams: UpstreamsManager | undefined;
  let publicListener: PublicListener | undefined;
  let registration: Registration | undefined;
  let material: TlsMaterial | undefined;

  const agent: AgentClient = createAgentClient(opts.agent, {
    log: log.child({ component: "agent" }),
    now,
    onWatchError: (watchName) => metrics.watchErrors.labels(watchName).inc(),
    onRequest(endpoint, status, seconds) {
      metrics.agentRequests.labels(endpoint, String(status)).inc();
      if (!BLOCKING_ENDPOINTS.has(endpoint)) metrics.agentRequestDuration.labels(endpoint).observe(seconds);
      if (status === 0) agentDownSinceMs ??= now();
      else agentDownSinceMs = undefined;
    },
  });

  const readiness = (): Readiness => {
    if (phase.t !== "running") return phase;
    const missing: ReadinessWait[] = [];
    if (settings === undefined) missing.push("proxy_config");
    if (certs?.current() === undefined) missing.push("certificates");
    if (settings?.bind !== undefined && publicListener === undefined) missing.push("public_listener");
    if (missing.length > 0) return { t: "starting", missing };
    if (agentDownSinceMs !== undefined && now() - agentDownSinceMs >= AGENT_UNREACHABLE_GRACE_MS) {
      return { t: "agent_unreachable", sinceMs: agentDownSinceMs };
    }
    return { t: "ready" };
  };

  const status = (): SidecarStatus => {
    const r = readiness();
    const m = certs?.current();
    const lastContact = agent.lastContactMs();
    return {
      ready: r.t === "ready",
      readiness: describeReadiness(r, now()),
      state: r.t,
      mode: opts.source.t,
      proxyId: registration?.id ?? proxyId,
      service: settings?.service ?? (opts.source.t === "static" ? opts.source.service : undefined),
      identity: m && { serviceUri: m.serviceUri, trustDomain: m.trustDomain },
      leaf: m && { serial: m.leafSerial, notAfter: m.leafNotAfter.toISOString() },
      roots: m && { fingerprints: m.rootFingerprints },
      listeners: {
        admin: formatHostPort(admin.address().host, admin.address().port),
        public:
          publicListener && settings
            ? {
                address: formatHostPort(publicListener.address().host, publicListener.address().port),
                activeConnections: publicListener.activeCount(),
                app: formatApp(settings.app),
              }
            : undefined,
      },
      upstreams: upstreams?.status() ?? [],
      authz: authz && { cacheEntries: authz.size() },
      agent: { origin: agent.origin, lastContact: lastContact === undefined ? undefined : new Date(lastContact).toISOString() },
      registration: registration && { id: registration.id, checkId: registration.checkId },
      checklist: checklist?.latest(),
    };
  };

  let admin: AdminServer;
  try {
    admin = await startAdminServer({ bind: opts.metricsAddr, registry: metrics.registry, readiness, status }, { log, now });
  } catch (err) {
    await agent.destroy();
    throw new ConfigError("metrics-addr", `cannot listen on ${formatHostPort(opts.metricsAddr.host, opts.metricsAddr.port)}: ${(err as Error).message}; pick a free address or port 0`);
  }

  // Moves the admin server (Config.metrics_bind_addr), unless -metrics-addr was given explicitly.
  const applyMetricsAddr = async (addr: { host: string; port: number } | undefined): Promise<void> => {
    if (addr === undefined || opts.metricsAddrExplicit || sameAddress(addr, admin.address())) return;
    try {
      const next = await startAdminServer({ bind: addr, registry: metrics.registry, readiness, status }, { log, now });
      const old = admin;
      admin = next;
      await old.close();
      log.info({ admin: admin.url() }, `admin server moved to ${admin.url()} (Config.metrics_bind_addr)`);
    } catch (err) {
      log.error({ err, metricsBindAddr: addr }, "cannot bind Config.metrics_bind_addr; the admin server stays where it is");
    }
  };

  // Certificate metrics: expiry gauges, and rotations after the first load.
  const onMaterial = (m: TlsMaterial): void => {
    if (material !== undefined && material.leafSerial !== m.leafSerial) metrics.certRotations.labels("leaf").inc();
    if (material !== undefined && material.rootFingerprints.join() !== m.rootFingerprints.join()) {
      metrics.certRotations.labels("roots").inc();
      for (const r of material.roots.roots) {
        if (!m.rootFingerprints.includes(r.id)) metrics.certNotAfter.remove("root", r.id);
      }
    }
    metrics.certNotAfter.labels("leaf", "").set(m.leafNotAfter.getTime() / 1000);
    for (const r of m.roots.roots) metrics.certNotAfter.labels("root", r.id).set(r.notAfter.getTime() / 1000);
    material = m;
  };

  const listenerOptions = (s: ProxySettings, bind: { host: string; port: number }) => ({
    bind,
    app: s.app!,
    handshakeTimeoutMs: s.handshakeTimeoutMs,
    localConnectTimeoutMs: s.localConnectTimeoutMs,
    allowNonLoopbackApp: opts.allowNonLoopbackApp,
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    ...(opts.maxConns !== undefined ? { maxConns: opts.maxConns } : {}),
  });

  const openPublicListener = async (s: ProxySettings, bind: { host: string; port: number }): Promise<PublicListener> => {
    const l = await startPublicListener(listenerOptions(s, bind), {
      certs: certs!,
      authz: authz!,
      log: log.child({ listener: "public" }),
      metrics,
      logConnections: opts.logConnections,
    });
    return l;
  };

  // Agent-mode configuration: the registration, followed live with a hash-blocking watch (spec §9.2).
  const configs = async function* (): AsyncGenerator<ProxySettings> {
    if (opts.source.t === "static") return;
    if (opts.source.t === "sidecar-for") {
      const svc = await findSidecarWithRetry(agent, opts.source.serviceId, stop.signal, log);
      if (svc === undefined) return;
      proxyId = svc.id;
      log.info({ proxyId, sidecarFor: opts.source.serviceId }, `running as ${svc.id}, the sidecar of ${opts.source.serviceId}`);
    }
    const spec = agentServiceWatch(proxyId!);
    const changes = watch(agent, spec, {
      signal: stop.signal,
      onError: (err: AgentError, failures: number) => {
        log.warn({ code: err.code, status: err.status, failures, error: err.message, proxyId }, "proxy configuration watch failed; retrying");
      },
    });
    for await (const svc of changes) {
      try {
        yield proxySettingsFromService(svc);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        log.error({ field: err.field, proxyId }, `ignored a proxy registration update: ${err.message}`);
      }
    }
  };
  const configIterator = configs();

  const staticSettings = (): ProxySettings | undefined => {
    if (opts.source.t !== "static") return undefined;
    const s = opts.source;
    return {
      proxyId: undefined,
      service: s.service,
      datacenter: opts.agent.datacenter,
      bind: s.listen,
      app: s.app,
      handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
      localConnectTimeoutMs: DEFAULT_LOCAL_CONNECT_TIMEOUT_MS,
      upstreams: s.upstreams,
      metricsBindAddr: undefined,
    };
  };

  const start = async (): Promise<void> => {
    let first = staticSettings();
    if (first === undefined) {
      const r = await configIterator.next();
      if (r.done) throw new AgentError("aborted", "stopped before the proxy configuration arrived");
      first = r.value;
    }
    settings = first;
    const service = first.service;
    await applyMetricsAddr(first.metricsBindAddr);

    certs = createCertStore(agent, { service }, {
      log: log.child({ component: "certs" }),
      now,
      onRejected: (reason) => metrics.certRejected.labels(reason).inc(),
    });
    certs.subscribe(onMaterial);
    authz = createAuthorizer(agent, { log: log.child({ component: "authz" }), metrics, now }, {
      target: service,
      maxStaleMs: opts.authzMaxStaleMs,
      revokeLive: opts.revokeLive,
    });
    const m = await certs.ready(stop.signal);
    onMaterial(m);
    const leafId = parseSpiffeId(m.serviceUri);
    const localDatacenter =
      first.datacenter ?? opts.agent.datacenter ?? (leafId.ok && "datacenter" in leafId.value ? leafId.value.datacenter : "dc1");

    upstreams = createUpstreams({ agent, certs, log: log.child({ component: "upstream" }), metrics, localDatacenter, logConnections: opts.logConnections });
    await upstreams.apply(first.upstreams);
    if (stop.signal.aborted) return;
    if (first.bind !== undefined) publicListener = await openPublicListener(first, first.bind);
    if (stop.signal.aborted) return;
    if (opts.source.t === "static" && opts.source.register !== undefined && publicListener !== undefined) {
      const bound = publicListener.address();
      registration = await startRegistration(agent, { service, idSuffix: opts.source.register.idSuffix, listen: bound }, { log });
    }
    log.info({ service, identity: m.serviceUri, leafSerial: m.leafSerial, upstreams: first.upstreams.length }, "sidecar started");
    void followConfig();
  };

  // Later registrations apply live, one at a time (spec §9.3 does not; we do).
  const followConfig = async (): Promise<void> => {
    try {
      for (;;) {
        const r = await configIterator.next();
        if (r.done || stop.signal.aborted) return;
        await applySettings(r.value);
      }
    } catch (err) {
      if (!stop.signal.aborted) log.error({ err }, "following the proxy configuration failed");
    }
  };

  const applySettings = async (incoming: ProxySettings): Promise<void> => {
    const prev = settings!;
    let next = incoming;
    if (next.service !== prev.service) {
      log.error(
        { was: prev.service, now: next.service },
        "Proxy.DestinationServiceName changed; the identity cannot change live, restart the sidecar to run as the new service",
      );
      next = { ...next, service: prev.service };
    }
    if (!sameAddress(prev.bind, next.bind)) {
      try {
        if (publicListener !== undefined && next.bind !== undefined) {
          await publicListener.rebind(next.bind);
          log.info({ was: prev.bind, now: next.bind }, "public listener re-bound; live connections kept");
        } else if (publicListener !== undefined) {
          const old = publicListener;
          publicListener = undefined;
          log.info("bind port is now 0: the public listener stops accepting");
          void old.close();
        } else if (next.bind !== undefined && next.app !== undefined) {
          publicListener = await openPublicListener(next, next.bind);
        }
      } catch (err) {
        log.error({ err, bind: next.bind }, "could not bind the new public listener address; keeping the old one");
        next = { ...next, bind: prev.bind };
      }
    }
    if (publicListener !== undefined && next.app !== undefined && appSettingsChanged(prev, next)) {
      try {
        publicListener.update({ app: next.app, handshakeTimeoutMs: next.handshakeTimeoutMs, localConnectTimeoutMs: next.localConnectTimeoutMs });
        log.info({ app: formatApp(next.app), handshakeTimeoutMs: next.handshakeTimeoutMs, localConnectTimeoutMs: next.localConnectTimeoutMs }, "public listener settings updated for new connections");
      } catch (err) {
        log.error({ err }, "refused the new app settings; keeping the old ones");
        next = { ...next, app: prev.app, handshakeTimeoutMs: prev.handshakeTimeoutMs, localConnectTimeoutMs: prev.localConnectTimeoutMs };
      }
    }
    if (upstreams !== undefined && JSON.stringify(prev.upstreams) !== JSON.stringify(next.upstreams)) {
      try {
        await upstreams.apply(next.upstreams);
        log.info({ upstreams: next.upstreams.map((u) => u.destinationName) }, "upstreams updated");
      } catch (err) {
        log.error({ err }, "applying the upstreams failed");
      }
    }
    if (!sameAddress(prev.metricsBindAddr, next.metricsBindAddr)) await applyMetricsAddr(next.metricsBindAddr);
    settings = next;
  };

  const ready = start();
  ready.catch((err: unknown) => {
    if (stop.signal.aborted) return;
    phase = { t: "failed", error: err instanceof Error ? err.message : String(err) };
  });
  let checklist: Checklist | undefined;
  if (opts.checklistIntervalMs !== undefined && opts.checklistIntervalMs > 0) {
    const intervalMs = opts.checklistIntervalMs;
    void ready.then(
      () => {
        if (stop.signal.aborted) return;
        checklist = startChecklist(
          { source: opts.source, agent: opts.agent, intervalMs, ownPublicListener: () => publicListener?.address() },
          { log, now, agent },
        );
      },
      () => undefined,
    );
  }

  let closing: Promise<0 | 1> | undefined;
  const close = (drainTimeoutMs: number): Promise<0 | 1> =>
    (closing ??= (async () => {
      const deadlineMs = now() + drainTimeoutMs;
      phase = { t: "draining", deadlineMs };
      stop.abort();
      checklist?.close();
      await configIterator.return(undefined).catch(() => undefined);
      await ready.catch(() => undefined);
      const remaining = (): number => Math.max(0, deadlineMs - now());
      let cut = false;
      const reg = registration;
      if (reg !== undefined) await reg.markDraining();
      // 1. Stop accepting inbound; live inbound connections finish while upstream listeners keep serving.
      const pub = publicListener;
      if (pub !== undefined) {
        log.info({ active: pub.activeCount(), drainTimeoutMs }, "public listener stopped accepting; waiting for live connections");
        if (!(await settlesWithin(pub.close(), remaining()))) {
          log.warn({ active: pub.activeCount() }, "drain timeout: cutting live inbound connections");
          pub.destroy();
          cut = true;
        }
      }
      // 2. Then the upstream listeners.
      const ups = upstreams;
      if (ups !== undefined && !(await settlesWithin(ups.close(), remaining()))) {
        log.warn("drain timeout: cutting live upstream connections");
        ups.destroy();
        cut = true;
      }
      if (reg !== undefined) await reg.deregister();
      authz?.close();
      certs?.close();
      await admin.close();
      await agent.close();
      log.info({ cut }, cut ? "stopped; some connections were cut" : "stopped cleanly");
      return cut ? 1 : 0;
    })());

  return {
    ready,
    adminUrl: () => admin.url(),
    adminAddress: () => admin.address(),
    publicAddress: () => publicListener?.address(),
    readiness,
    status,
    reloadToken() {
      const file = opts.agent.tokenFile;
      if (file === undefined) {
        log.warn("SIGHUP: the token did not come from a file (-token-file / CONSUL_HTTP_TOKEN_FILE); nothing to re-read");
        return;
      }
      try {
        agent.setToken(readTokenFile(file));
        log.info({ tokenFile: file }, "SIGHUP: re-read the token file");
      } catch (err) {
        log.error({ err: err instanceof Error ? err.message : String(err) }, "SIGHUP: could not re-read the token file; keeping the old token");
      }
    },
    close,
    destroy() {
      phase = { t: "draining", deadlineMs: now() };
      stop.abort();
      void configIterator.return(undefined).catch(() => undefined);
      publicListener?.destroy();
      upstreams?.destroy();
      registration?.stop();
      authz?.close();
      certs?.close();
      void admin.close();
      void agent.destroy();
    },
  };
}

/** findSidecarFor, retried while the agent is unreachable (a sidecar often starts before its agent). */
async function findSidecarWithRetry(
  agent: AgentClient,
  serviceId: string,
  signal: AbortSignal,
  log: SidecarDeps["log"],
): Promise<AgentService | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await findSidecarFor(agent, serviceId, signal);
    } catch (err) {
      if (signal.aborted) return undefined;
      if (!(err instanceof AgentError) || err.code !== "unreachable") throw err;
      const delayMs = Math.min(250 * 2 ** (attempt - 1), 5_000);
      log.warn({ error: err.message, attempt, retryInMs: delayMs }, "the agent is unreachable; retrying -sidecar-for");
      const slept = await sleep(delayMs, true, { signal }).catch(() => false);
      if (!slept) return undefined;
    }
  }
}

/** True when `p` settles within `ms`; false on timeout (p keeps running). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
