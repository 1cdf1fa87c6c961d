// One sidecar process, composed in phases: the agent client and the admin server; the proxy
// configuration (agent watch or static flags); identity (cert store, authorizer); serving (upstream
// listeners, then the public listener); announcing (-register); then following the configuration.
// Every started part goes on one PartStack, so teardown is written once (parts.ts); a configuration
// change is a list of actions (config-change.ts). cli.ts owns signals and the exit code.
import {
  AgentError,
  agentServiceWatch,
  createAgentClient,
  findSidecarFor,
  readTokenFile,
  watch,
  proxySettingsFromService,
  type AgentClient,
  type AgentService,
  type ProxySettings,
} from "../agent/index.js";
import { createAuthorizer, type Authorizer } from "../authz/index.js";
import { createCertStore, parseSpiffeId, type CertStore, type TlsMaterial } from "../certs/index.js";
import { startPublicListener, type PublicListener, type PublicListenerOptions } from "../listener/index.js";
import { backoffDelayMs, ConfigError, delay, formatAddress, formatHostPort, selfTestNodeInternals, settlesWithin } from "../net/index.js";
import {
  describeReadiness,
  startAdminServer,
  type AdminLifecycle,
  type AdminServer,
  type Metrics,
  type Readiness,
  type ReadinessWait,
  type SidecarStatus,
} from "../ops/index.js";
import { createUpstreams, type UpstreamsManager } from "../upstream/index.js";
import { startChecklist, type Checklist } from "./checklist.js";
import { applyRegistration, type LiveParts } from "./apply-config.js";
import { sameAddress } from "./config-change.js";
import type { ProxySource, SidecarDeps, SidecarOptions } from "./options.js";
import { DEFAULT_GRACEFUL_SHUTDOWN_PATH, DEFAULT_GRACEFUL_STARTUP_PATH, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_LOCAL_CONNECT_TIMEOUT_MS } from "./options.js";
import { enterDrainingMaintenance, leaveOwnMaintenance } from "./maintenance.js";
import { PartStack, type Part } from "./parts.js";
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
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit, ~24.8 days: "no limit"
// -sidecar-for while the agent is unreachable (a sidecar often starts before its agent).
const FIND_SIDECAR_RETRY = { initialMs: 250, maxMs: 5_000 };

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
  /** Settles when a graceful shutdown is asked for over HTTP (the admin server's shutdown path); the CLI then closes. */
  readonly shutdownRequested: Promise<void>;
}


type Phase = { t: "running" } | { t: "failed"; error: string } | { t: "draining"; deadlineMs: number };

/** What has started so far: /ready and /status describe a sidecar half-way through its start too. */
interface Started {
  proxyId: string | undefined;
  settings?: ProxySettings;
  certs?: CertStore;
  authz?: Authorizer;
  upstreams?: UpstreamsManager;
  publicListener?: PublicListener | undefined;
  registration?: Registration;
  checklist?: Checklist;
}

/**
 * Starts a sidecar: binds the admin server (rejects when it cannot), then starts everything else in
 * the background (`ready`). Never leaves a half-started sidecar: a failed start ends `ready` with the
 * error and close() cleans up whatever did start.
 */
export async function runSidecar(opts: SidecarOptions, deps: SidecarDeps): Promise<Sidecar> {
  const { log, metrics, now } = deps;
  // A Node release that broke an internal the data path uses costs CPU or turns resets into FINs: say so, loudly.
  void selfTestNodeInternals().then((problems) => {
    for (const problem of problems) log.error({ node: process.versions.node }, `node internals changed: ${problem}`);
  });
  const stop = new AbortController();
  const parts = new PartStack();
  const started: Started = { proxyId: opts.source.t === "proxy-id" ? opts.source.proxyId : undefined };
  let phase: Phase = { t: "running" };
  let agentDownSinceMs: number | undefined;
  const shutdownRequest = Promise.withResolvers<void>();
  // Aborted by destroy(): ends the shutdown grace period's wait early.
  const hardStop = new AbortController();
  let shutdownStartedMs: number | undefined;

  // ---- phase 1: the agent client and the admin server ----
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
  parts.add({ name: "agent client", close: () => agent.close(), destroy: () => void agent.destroy() });

  const readiness = (): Readiness => {
    if (phase.t !== "running") return phase;
    const missing: ReadinessWait[] = [];
    if (started.settings === undefined) missing.push("proxy_config");
    if (started.certs?.current() === undefined) missing.push("certificates");
    if (started.settings?.bind !== undefined && started.publicListener === undefined) missing.push("public_listener");
    if (missing.length > 0) return { t: "starting", missing };
    if (agentDownSinceMs !== undefined && now() - agentDownSinceMs >= AGENT_UNREACHABLE_GRACE_MS) {
      return { t: "agent_unreachable", sinceMs: agentDownSinceMs };
    }
    return { t: "ready" };
  };
  const status = (): SidecarStatus => describeStatus(readiness(), started, { opts, agent, admin, now });
  const startSettled = Promise.withResolvers<void>(); // the start succeeded or failed
  const closingStarted = Promise.withResolvers<void>();
  const lifecycle = lifecycleEndpoints(opts, {
    startGraceEndsMs: now() + (opts.startupGracePeriodMs ?? 0),
    now,
    settled: Promise.race([startSettled.promise, closingStarted.promise]),
    requestShutdown: () => shutdownRequest.resolve(),
  });
  const adminOptions = (bind: { host: string; port: number }) => ({ bind, metrics, readiness, status, lifecycle });

  let admin: AdminServer;
  try {
    admin = await startAdminServer(adminOptions(opts.metricsAddr), { log, now });
  } catch (err) {
    parts.destroy();
    throw new ConfigError("metrics-addr", `cannot listen on ${formatHostPort(opts.metricsAddr.host, opts.metricsAddr.port)}: ${(err as Error).message}; pick a free address or port 0`);
  }
  parts.add({ name: "admin server", close: () => admin.close(), destroy: () => void admin.close() });

  // Moves the admin server (Config.metrics_bind_addr), unless -metrics-addr was given explicitly.
  const moveAdmin = async (addr: { host: string; port: number } | undefined): Promise<void> => {
    if (addr === undefined || opts.metricsAddrExplicit || sameAddress(addr, admin.address())) return;
    try {
      const next = await startAdminServer(adminOptions(addr), { log, now });
      const old = admin;
      admin = next;
      await old.close();
      log.info({ admin: admin.url() }, `admin server moved to ${admin.url()} (Config.metrics_bind_addr)`);
    } catch (err) {
      log.error({ err, metricsBindAddr: addr }, "cannot bind Config.metrics_bind_addr; the admin server stays where it is");
    }
  };

  // ---- phase 2: the proxy configuration ----
  const configs = proxyConfigs(agent, opts.source, {
    signal: stop.signal,
    log,
    onProxyId: (id) => (started.proxyId = id),
  });

  // ---- phase 3: identity ----
  const startIdentity = async (service: string): Promise<{ certs: CertStore; authz: Authorizer; material: TlsMaterial }> => {
    const certs = createCertStore(agent, { service }, {
      log: log.child({ component: "certs" }),
      now,
      onRejected: (reason) => metrics.certRejected.labels(reason).inc(),
    });
    started.certs = certs;
    parts.add({ name: "cert store", close: () => certs.close(), destroy: () => certs.close() });
    certs.subscribe(certificateMetrics(metrics));
    const authz = createAuthorizer(agent, { log: log.child({ component: "authz" }), metrics, now }, {
      target: service,
      maxStaleMs: opts.authzMaxStaleMs,
      revokeLive: opts.revokeLive,
    });
    started.authz = authz;
    parts.add({ name: "authorizer", close: () => authz.close(), destroy: () => authz.close() });
    return { certs, authz, material: await certs.ready(stop.signal) };
  };

  // ---- phase 4: serving ----
  const openPublicListener = (s: ProxySettings, bind: { host: string; port: number }, certs: CertStore, authz: Authorizer): Promise<PublicListener> =>
    startPublicListener(publicListenerOptions(s, bind, opts), {
      certs,
      authz,
      log: log.child({ listener: "public" }),
      metrics,
      logConnections: opts.logConnections,
      accessLog: opts.accessLog !== false,
    });

  const start = async (): Promise<void> => {
    const first = staticSettings(opts) ?? (await firstOf(configs));
    started.settings = first;
    await moveAdmin(first.metricsBindAddr);
    const { certs, authz, material } = await startIdentity(first.service);
    const leafId = parseSpiffeId(material.serviceUri);
    const localDatacenter =
      first.datacenter ?? opts.agent.datacenter ?? (leafId.ok && "datacenter" in leafId.value ? leafId.value.datacenter : "dc1");

    const upstreams = createUpstreams({
      agent,
      certs,
      log: log.child({ component: "upstream" }),
      metrics,
      localDatacenter,
      logConnections: opts.logConnections,
      idleTimeoutMs: opts.idleTimeoutMs ?? 0,
      keepAliveMs: opts.tcpKeepAliveMs ?? 0, maxConns: opts.maxConns ?? 0,
      accessLog: opts.accessLog !== false,
    });
    started.upstreams = upstreams;
    parts.add(upstreamListenersPart(upstreams, { graceLeftMs: () => (shutdownStartedMs ?? now()) + (opts.shutdownGracePeriodMs ?? 0) - now(), signal: hardStop.signal }, log));
    await upstreams.apply(first.upstreams);
    if (stop.signal.aborted) return;
    parts.add(publicListenerPart(() => started.publicListener, log));
    if (first.bind !== undefined) started.publicListener = await openPublicListener(first, first.bind, certs, authz);
    if (stop.signal.aborted) return;

    // ---- phase 5: announcing ----
    const proxyId = started.proxyId;
    if (proxyId !== undefined) {
      void leaveOwnMaintenance(agent, proxyId, log);
      parts.add({ name: "maintenance mode", leave: () => enterDrainingMaintenance(agent, proxyId, log), destroy: () => undefined });
    }
    if (opts.source.t === "static" && opts.source.register !== undefined && started.publicListener !== undefined) {
      const registration = await startRegistration(agent, { service: first.service, idSuffix: opts.source.register.idSuffix, listen: started.publicListener.address() }, { log });
      started.registration = registration;
      parts.add({ name: "registration", leave: () => registration.markDraining(), close: () => registration.deregister(), destroy: () => registration.stop() });
    }
    log.info({ service: first.service, identity: material.serviceUri, leafSerial: material.leafSerial, upstreams: first.upstreams.length }, "sidecar started");
    void followConfig(certs, authz, upstreams);
  };

  // ---- then: later registrations apply live, one at a time (spec §9.3 does not; we do) ----
  const followConfig = async (certs: CertStore, authz: Authorizer, upstreams: UpstreamsManager): Promise<void> => {
    const live: LiveParts = {
      log,
      upstreams,
      moveAdmin,
      openPublicListener: (s, bind) => openPublicListener(s, bind, certs, authz),
      // Its drain starts now; the sidecar's own drain waits for it, and a destroy cuts what is left.
      retirePublicListener: (l) => {
        const closed = l.close();
        parts.add({ name: "stopped public listener", drain: () => closed, destroy: () => l.destroy() });
      },
      get publicListener() {
        return started.publicListener;
      },
      set publicListener(l) {
        started.publicListener = l;
      },
    };
    try {
      for (;;) {
        const r = await configs.next();
        if (r.done || stop.signal.aborted) return;
        started.settings = await applyRegistration(started.settings!, r.value, live);
      }
    } catch (err) {
      if (!stop.signal.aborted) log.error({ err }, "following the proxy configuration failed");
    }
  };

  const ready = start();
  ready.then(() => startSettled.resolve(), () => startSettled.resolve());
  ready.catch((err: unknown) => {
    if (stop.signal.aborted) return;
    phase = { t: "failed", error: err instanceof Error ? err.message : String(err) };
  });
  if (opts.checklistIntervalMs !== undefined && opts.checklistIntervalMs > 0) {
    const intervalMs = opts.checklistIntervalMs;
    void ready.then(
      () => {
        if (stop.signal.aborted) return;
        const checklist = startChecklist(
          { source: opts.source, agent: opts.agent, intervalMs, ownPublicListener: () => started.publicListener?.address() },
          { log, now, agent },
        );
        started.checklist = checklist;
        parts.add({ name: "checklist", destroy: () => checklist.close() });
      },
      () => undefined,
    );
  }

  /** Stops the start and the configuration watch; whatever started is then on `parts`. */
  const stopStarting = async (deadlineMs: number): Promise<void> => {
    phase = { t: "draining", deadlineMs };
    shutdownStartedMs ??= now();
    closingStarted.resolve();
    stop.abort();
    await configs.return(undefined).catch(() => undefined);
  };

  let closing: Promise<0 | 1> | undefined;
  const close = (drainTimeoutMs: number): Promise<0 | 1> =>
    (closing ??= (async () => {
      const deadlineMs = now() + drainTimeoutMs;
      await stopStarting(deadlineMs);
      await ready.catch(() => undefined);
      const clean = await parts.close(
        () => Math.max(0, deadlineMs - now()),
        (part) => log.warn({ part: part.name }, `drain timeout: cutting the live connections of the ${part.name}`),
      );
      log.info({ cut: !clean }, clean ? "stopped cleanly" : "stopped; some connections were cut");
      return clean ? 0 : 1;
    })());

  return {
    ready,
    adminUrl: () => admin.url(),
    adminAddress: () => admin.address(),
    publicAddress: () => started.publicListener?.address(),
    readiness,
    status,
    reloadToken: () => reloadToken(agent, opts.agent.tokenFile, log),
    close,
    destroy() {
      hardStop.abort();
      void stopStarting(now());
      parts.destroy();
    },
    shutdownRequested: shutdownRequest.promise,
  };
}

/** The upstream listeners as a part: they keep accepting for the shutdown grace period, then drain. */
function upstreamListenersPart(upstreams: UpstreamsManager, grace: { graceLeftMs(): number; signal: AbortSignal }, log: SidecarDeps["log"]): Part {
  return {
    name: "upstream listeners",
    // The app may still be finishing its own shutdown and need its upstreams.
    async linger() {
      const graceLeftMs = grace.graceLeftMs();
      if (graceLeftMs <= 0 || upstreams.status().length === 0) return; // nothing the app could still need
      log.info({ graceLeftMs }, "upstream listeners keep accepting for the shutdown grace period");
      await delay(graceLeftMs, grace.signal);
    },
    drain: () => upstreams.close(),
    destroy: () => upstreams.destroy(),
  };
}

/** The public listener as one part, whichever listener runs when the drain comes (a registration change may replace or stop it). */
function publicListenerPart(current: () => PublicListener | undefined, log: SidecarDeps["log"]): Part {
  return {
    name: "public listener",
    drain() {
      const pub = current();
      if (pub === undefined) return Promise.resolve();
      log.info({ active: pub.activeCount() }, "public listener stopped accepting; waiting for live connections");
      return pub.close();
    },
    destroy: () => current()?.destroy(),
  };
}

/** The admin server's lifecycle endpoints (consul-dataplane's paths and grace period semantics). */
function lifecycleEndpoints(
  opts: SidecarOptions,
  c: { startGraceEndsMs: number; now: () => number; settled: Promise<void>; requestShutdown: () => void },
): AdminLifecycle {
  return {
    shutdownPath: opts.gracefulShutdownPath ?? DEFAULT_GRACEFUL_SHUTDOWN_PATH,
    startupPath: opts.gracefulStartupPath ?? DEFAULT_GRACEFUL_STARTUP_PATH,
    requestShutdown: c.requestShutdown,
    async untilStarted(signal) {
      const limited = (opts.startupGracePeriodMs ?? 0) > 0;
      const budgetMs = limited ? Math.max(0, c.startGraceEndsMs - c.now()) : MAX_TIMER_MS;
      if (await settlesWithin(c.settled, budgetMs, signal)) return "settled";
      return signal.aborted ? "aborted" : "grace_over";
    },
  };
}

/** The settings of static mode (flags), or undefined in agent mode. */
function staticSettings(opts: SidecarOptions): ProxySettings | undefined {
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
    protocol: "tcp",
    upstreams: s.upstreams,
    metricsBindAddr: undefined,
  };
}

async function firstOf(configs: AsyncGenerator<ProxySettings>): Promise<ProxySettings> {
  const r = await configs.next();
  if (r.done) throw new AgentError("aborted", "stopped before the proxy configuration arrived");
  return r.value;
}

/**
 * Agent mode's configuration: the proxy registration, followed live with a hash-blocking watch
 * (spec §9.2). A registration the parser refuses is logged and skipped. Static mode yields nothing.
 */
async function* proxyConfigs(
  agent: AgentClient,
  source: ProxySource,
  o: { signal: AbortSignal; log: SidecarDeps["log"]; onProxyId: (id: string) => void },
): AsyncGenerator<ProxySettings> {
  if (source.t === "static") return;
  let proxyId: string;
  if (source.t === "sidecar-for") {
    const svc = await findSidecarWithRetry(agent, source.serviceId, o.signal, o.log);
    if (svc === undefined) return;
    proxyId = svc.id;
    o.onProxyId(proxyId);
    o.log.info({ proxyId, sidecarFor: source.serviceId }, `running as ${svc.id}, the sidecar of ${source.serviceId}`);
  } else {
    proxyId = source.proxyId;
  }
  const changes = watch(agent, agentServiceWatch(proxyId), {
    signal: o.signal,
    onError: (err: AgentError, failures: number) => {
      o.log.warn({ code: err.code, status: err.status, failures, error: err.message, proxyId }, "proxy configuration watch failed; retrying");
    },
  });
  for await (const svc of changes) {
    try {
      yield proxySettingsFromService(svc);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      o.log.error({ field: err.field, proxyId }, `ignored a proxy registration update: ${err.message}`);
    }
  }
}

/** findSidecarFor, retried with back-off while the agent is unreachable. */
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
      const delayMs = Math.round(backoffDelayMs(attempt, FIND_SIDECAR_RETRY));
      log.warn({ error: err.message, attempt, retryInMs: delayMs }, "the agent is unreachable; retrying -sidecar-for");
      if (!(await delay(delayMs, signal))) return undefined;
    }
  }
}

function publicListenerOptions(s: ProxySettings, bind: { host: string; port: number }, opts: SidecarOptions): PublicListenerOptions {
  return {
    bind,
    app: s.app!, // proxySettingsFromService refuses a bind without an app; static flags come in pairs
    handshakeTimeoutMs: s.handshakeTimeoutMs,
    localConnectTimeoutMs: s.localConnectTimeoutMs,
    protocol: s.protocol,
    allowNonLoopbackApp: opts.allowNonLoopbackApp,
    idleTimeoutMs: opts.idleTimeoutMs ?? 0,
    keepAliveMs: opts.tcpKeepAliveMs ?? 0,
    ...(opts.maxConns !== undefined ? { maxConns: opts.maxConns } : {}),
  };
}

/** Certificate metrics: expiry gauges, and rotations after the first load. */
function certificateMetrics(metrics: Metrics): (m: TlsMaterial) => void {
  let material: TlsMaterial | undefined;
  return (m) => {
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
}

function describeStatus(
  r: Readiness,
  started: Started,
  c: { opts: SidecarOptions; agent: AgentClient; admin: AdminServer; now: () => number },
): SidecarStatus {
  const m = started.certs?.current();
  const lastContact = c.agent.lastContactMs();
  const { settings, publicListener, registration } = started;
  return {
    ready: r.t === "ready",
    readiness: describeReadiness(r, c.now()),
    state: r.t,
    mode: c.opts.source.t,
    proxyId: registration?.id ?? started.proxyId,
    service: settings?.service ?? (c.opts.source.t === "static" ? c.opts.source.service : undefined),
    identity: m && { serviceUri: m.serviceUri, trustDomain: m.trustDomain },
    leaf: m && { serial: m.leafSerial, notAfter: m.leafNotAfter.toISOString() },
    roots: m && { fingerprints: m.rootFingerprints },
    listeners: {
      admin: formatAddress(c.admin.address()),
      public:
        publicListener && settings?.app
          ? { address: formatAddress(publicListener.address()), activeConnections: publicListener.activeCount(), app: formatAddress(settings.app) }
          : undefined,
    },
    upstreams: started.upstreams?.status() ?? [],
    authz: started.authz && { cacheEntries: started.authz.size() },
    agent: { origin: c.agent.origin, lastContact: lastContact === undefined ? undefined : new Date(lastContact).toISOString() },
    registration: registration && { id: registration.id, checkId: registration.checkId },
    checklist: started.checklist?.latest(),
  };
}

/** SIGHUP: re-reads the token file, if the token came from one, and keeps the old token on failure. */
function reloadToken(agent: AgentClient, file: string | undefined, log: SidecarDeps["log"]): void {
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
}
