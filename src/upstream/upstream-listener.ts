// One outbound listener: a plain local socket whose connections are carried over mTLS to a healthy
// instance of the upstream. A connection's life is serveUpstream(), read top to bottom (STYLE §3).
import { unlinkSync } from "node:fs";
import { chmod, lstat, unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { AgentClient } from "../agent/index.js";
import type { CertStore } from "../certs/index.js";
import {
  fail,
  formatAddress,
  formatHostPort,
  pipe,
  settlesWithin,
  createHttpStreamSet,
  streamHttp,
  type HttpStreamSet,
  type PipeResult,
  type Result,
  type UpstreamCloseReason,
  type UpstreamRejectReason,
} from "../net/index.js";
import { bindHttpMetrics, bindListenerMetrics, recordHttpExchange, type HttpMetrics, type ListenerMetrics, type Logger, type Metrics } from "../ops/index.js";
import { dialInstance, type ClientTls, type ClientTlsContext } from "./client-tls.js";
import { startDiscovery, type Discovery } from "./discovery.js";
import { createInstanceSet, type Instance, type InstanceSet } from "./instance-set.js";
import type { UpstreamSpec } from "./upstream-config.js";

/** Everything about one upstream's destination that a connection needs; replaced when the destination changes. */
export interface Route {
  /** Mutable: a change of timeout or socket mode only swaps the spec. */
  spec: UpstreamSpec;
  readonly instances: InstanceSet;
  readonly discovery: Discovery;
  readonly metrics: ListenerMetrics;
  /** Per-request metrics, for connections accepted while the protocol is http. */
  readonly http: HttpMetrics;
}

export interface RouteDeps {
  agent: AgentClient;
  log: Logger;
  metrics: Metrics;
  now: () => number;
  localDatacenter: string;
  random?: () => number;
}

/** Creates the route for `spec` and starts its discovery; close it with closeRoute. */
export function createRoute(spec: UpstreamSpec, deps: RouteDeps): Route {
  const u = spec.upstream;
  const label = spec.listenerLabel;
  const instances = createInstanceSet(
    u.destinationName,
    {
      namespace: u.destinationNamespace === "" ? "default" : u.destinationNamespace,
      datacenter: u.datacenter !== "" ? u.datacenter : deps.localDatacenter,
    },
    { metrics: deps.metrics, now: deps.now, ...(deps.random ? { random: deps.random } : {}) },
  );
  return {
    spec,
    instances,
    discovery: startDiscovery(spec, instances, { agent: deps.agent, log: deps.log, now: deps.now }),
    metrics: bindListenerMetrics(deps.metrics, label),
    http: bindHttpMetrics(deps.metrics, label),
  };
}

/** Stops a route's discovery. Connections already using it carry on. */
export function closeRoute(route: Route): void {
  route.discovery.close();
}

/** What the caller logs and counts once a connection ends. Filled in by serveUpstream. */
interface ConnRecord {
  startMs: number;
  /** Read at accept: a destroyed socket no longer knows its peer. */
  client: string;
  instance: string;
  detail: string;
  proxied: boolean;
  bytesFromClient: number;
  bytesFromServer: number;
}

interface ConnCtx {
  certs: CertStore;
  tls: ClientTls;
  /** Aborts every connection of this listener (destroy). */
  shutdown: AbortSignal;
  metrics: Metrics;
  pipe: { idleTimeoutMs: number; keepAliveMs: number };
  /** One log line per HTTP request (protocol http). */
  accessLog: boolean;
  log: Logger;
  /** Live HTTP connections, drained when the listener closes. */
  http: HttpStreamSet;
}

type Connected = { sock: TLSSocket; inst: Instance };

/**
 * One client connection, top to bottom: connect (certs, discovery, dials with failover), then
 * pipe. Returns why it ended; never rejects.
 */
async function serveUpstream(client: Socket, route: Route, ctx: ConnCtx, rec: ConnRecord): Promise<UpstreamCloseReason> {
  const up = await connectUpstream(client, route, ctx, rec);
  if (!up.ok) return up.reason;
  const { sock, inst } = up.value;
  rec.instance = inst.address;
  rec.proxied = true;
  inst.active++;
  // The protocol is read at accept, as every setting of a connection: a change applies to new ones.
  const http = route.spec.protocol === "http" ? serveHttp(client, sock, route, inst, ctx) : undefined;
  const r = await (http ?? pipe(client, sock, { signal: ctx.shutdown, ...ctx.pipe }));
  inst.active--;
  rec.bytesFromClient = r.bytesFromClient;
  rec.bytesFromServer = r.bytesFromServer;
  return r.reason;
}

/** Proxies the connection's HTTP/1.1 requests, counted per request; undefined when this Node cannot parse them. */
function serveHttp(client: Socket, sock: TLSSocket, route: Route, inst: Instance, ctx: ConnCtx): Promise<PipeResult> | undefined {
  const label = route.spec.listenerLabel;
  const stream = streamHttp(client, {
    server: sock,
    onExchange: recordHttpExchange({ metrics: route.http, log: ctx.log, accessLog: ctx.accessLog, fields: { listener: label, instance: inst.address } }),
    signal: ctx.shutdown,
    ...ctx.pipe,
  });
  return stream === undefined ? undefined : ctx.http.track(stream);
}

/**
 * The connect phase, bounded by connect_timeout_ms from accept: our certs (spec §9.8, issue 12286:
 * wait rather than fail), the first discovery result, then dials until one completes mTLS with the
 * expected identity. Aborted when the client goes away or the listener is destroyed.
 */
async function connectUpstream(client: Socket, route: Route, ctx: ConnCtx, rec: ConnRecord): Promise<Result<Connected, UpstreamRejectReason>> {
  const deadlineMs = rec.startMs + route.spec.connectTimeoutMs;
  const stop = new AbortController();
  const onClientClose = (): void => stop.abort("client_gone");
  const onShutdown = (): void => stop.abort("shutdown");
  client.once("close", onClientClose);
  ctx.shutdown.addEventListener("abort", onShutdown, { once: true });
  if (ctx.shutdown.aborted) onShutdown();
  try {
    const tls = ctx.tls.current() ?? (await waitForCerts(ctx, stop.signal, deadlineMs - performance.now()));
    if (tls === undefined) return fail(stop.signal.aborted ? abortReason(stop.signal) : "certs_not_ready");
    if (route.discovery.state() === "pending") {
      const known = await settlesWithin(route.discovery.firstResult, deadlineMs - performance.now(), stop.signal);
      if (!known) return fail(stop.signal.aborted ? abortReason(stop.signal) : "discovery_unavailable");
    }
    return await dialWithFailover(route, tls, stop.signal, deadlineMs, rec, ctx.metrics);
  } finally {
    client.off("close", onClientClose);
    ctx.shutdown.removeEventListener("abort", onShutdown);
  }
}

/**
 * Dials candidates until one succeeds. Each attempt gets half the remaining budget while other
 * candidates remain (a black-holed instance must not eat it all), else all of it. A failure counts
 * against the instance (ejection) and asks discovery for a refresh.
 */
async function dialWithFailover(
  route: Route,
  tls: ClientTlsContext,
  signal: AbortSignal,
  deadlineMs: number,
  rec: ConnRecord,
  metrics: Metrics,
): Promise<Result<Connected, UpstreamRejectReason>> {
  const tried: Instance[] = [];
  let last: UpstreamRejectReason = "no_healthy_instances";
  for (;;) {
    const inst = route.instances.pick(tried);
    if (inst === undefined) return fail(last);
    const remainingMs = deadlineMs - performance.now();
    if (remainingMs < 1) return fail("connect_timeout");
    tried.push(inst);
    const othersLeft = route.instances.size() > tried.length;
    const attempt = await dialInstance(inst, tls, {
      timeoutMs: Math.ceil(othersLeft ? remainingMs / 2 : remainingMs),
      signal,
      onHandshake: (s) => route.metrics.handshake.observe(s),
    });
    if (attempt.ok) {
      route.instances.recordSuccess(inst);
      return { ok: true, value: { sock: attempt.value, inst } };
    }
    if (signal.aborted) return fail(abortReason(signal)); // not the instance's fault
    last = attempt.reason;
    rec.instance = inst.address;
    rec.detail = attempt.detail;
    metrics.upstreamDialFailures.labels(route.spec.upstream.destinationName, inst.address, last).inc();
    route.instances.recordFailure(inst);
    route.discovery.refresh();
  }
}

async function waitForCerts(ctx: ConnCtx, signal: AbortSignal, ms: number): Promise<ClientTlsContext | undefined> {
  if (ms < 1 || signal.aborted) return undefined;
  try {
    await ctx.certs.ready(AbortSignal.any([signal, AbortSignal.timeout(Math.ceil(ms))]));
  } catch {
    return undefined;
  }
  return ctx.tls.current();
}

function abortReason(signal: AbortSignal): "client_gone" | "shutdown" {
  return signal.reason === "client_gone" ? "client_gone" : "shutdown";
}

function ignore(): void {}

// ---------------------------------------------------------------------------------------------

export interface UpstreamListenerDeps {
  certs: CertStore;
  tls: ClientTls;
  log: Logger;
  metrics: Metrics;
  logConnections: boolean;
  /** For every proxied connection of the listener. */
  pipe: { idleTimeoutMs: number; keepAliveMs: number };
  /** Live connections this listener carries at most; one more is refused with max_conns. 0: no limit. */
  maxConns: number;
  /** One log line per HTTP request on connections accepted while the protocol is http. */
  accessLog: boolean;
}

/** A bound upstream listener. Its route (destination) can be swapped without touching the socket. */
export interface UpstreamListener {
  readonly bindKey: string;
  /** Connections accepted from now on use this route. */
  route: Route;
  /** "127.0.0.1:9191" or "unix:/path", with the real port when bound to port 0. */
  address(): string;
  /** The bound TCP port (0 for a unix socket). */
  port(): number;
  activeCount(): number;
  /** Re-applies the socket mode after a spec change (unix sockets only). */
  applySocketMode(): Promise<void>;
  /** Stops accepting; resolves when live connections have ended. Idempotent. */
  close(): Promise<void>;
  /** Ends every live connection now. */
  destroy(): void;
}

/**
 * Binds the listener for `route` (TCP, or a unix socket chmod-ed to LocalBindSocketMode; a stale
 * socket file is replaced). Rejects with the bind error (EADDRINUSE, EACCES, …).
 */
export async function startUpstreamListener(route: Route, deps: UpstreamListenerDeps): Promise<UpstreamListener> {
  const bind = route.spec.bind;
  const shutdown = new AbortController();
  const ctx: ConnCtx = {
    certs: deps.certs,
    tls: deps.tls,
    shutdown: shutdown.signal,
    metrics: deps.metrics,
    pipe: deps.pipe,
    accessLog: deps.accessLog,
    log: deps.log,
    http: createHttpStreamSet(),
  };
  let live = 0;
  let closing: Promise<void> | undefined;
  let onIdle: (() => void) | undefined;

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true });
  const self: UpstreamListener = {
    bindKey: route.spec.bindKey,
    route,
    address() {
      return formatAddress(bind.kind === "unix" ? { socketPath: bind.path } : { host: bind.host, port: self.port() });
    },
    port() {
      const a = server.address();
      return a !== null && typeof a === "object" ? a.port : 0;
    },
    activeCount: () => live,
    async applySocketMode() {
      const b = self.route.spec.bind;
      if (b.kind === "unix" && b.mode !== undefined) await chmod(b.path, b.mode);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close();
        ctx.http.drain(); // keep-alive connections close when idle instead of holding the close
        if (bind.kind === "unix") unlinkQuietly(bind.path); // new clients get ENOENT, not a dead socket
        if (live === 0) return resolve();
        onIdle = resolve;
      });
      return closing;
    },
    destroy() {
      void self.close();
      shutdown.abort("shutdown");
    },
  };

  const finishConnection = (client: Socket, r: Route, rec: ConnRecord, reason: UpstreamCloseReason): void => {
    if (!client.destroyed) client.destroy(); // refused: closed at once, never left hanging
    r.metrics.closed(reason, { reachedDestination: rec.proxied, bytesIn: rec.bytesFromClient, bytesOut: rec.bytesFromServer });
    const line = {
      listener: r.spec.listenerLabel,
      client: rec.client,
      instance: rec.instance || undefined,
      durationMs: Math.round(performance.now() - rec.startMs),
      bytesFromClient: rec.bytesFromClient,
      bytesFromServer: rec.bytesFromServer,
      reason,
      detail: rec.detail || undefined,
    };
    // Refusals are always worth a line; proxied connections only when connection logging is on.
    if (!rec.proxied) deps.log.warn(line, "upstream connection refused");
    else if (deps.logConnections) deps.log.info(line, "upstream connection closed");
    if (--live === 0 && onIdle) onIdle();
  };

  server.on("connection", (client: Socket) => {
    const r = self.route;
    client.on("error", ignore); // permanent: pipe reports errors; a late one must not crash us
    live++;
    r.metrics.accepted.inc();
    r.metrics.active.inc();
    const rec: ConnRecord = {
      startMs: performance.now(),
      client: client.remoteAddress === undefined ? "local" : formatHostPort(client.remoteAddress, client.remotePort ?? 0),
      instance: "", detail: "", proxied: false, bytesFromClient: 0, bytesFromServer: 0 };
    // Refused before any dial: the limit bounds what one app can hold open through this listener.
    if (deps.maxConns > 0 && live > deps.maxConns) return finishConnection(client, r, rec, "max_conns");
    serveUpstream(client, r, ctx, rec).then(
      (reason) => finishConnection(client, r, rec, reason),
      (err: unknown) => {
        deps.log.error({ err, listener: r.spec.listenerLabel }, "upstream connection failed unexpectedly");
        finishConnection(client, r, rec, "internal_error");
      },
    );
  });

  if (bind.kind === "unix") await removeStaleSocket(bind.path);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const opts = bind.kind === "tcp" ? { host: bind.host, port: bind.port } : { path: bind.path };
    server.listen(opts, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => deps.log.error({ err, listener: route.spec.listenerLabel }, "upstream listener error"));
  try {
    await self.applySocketMode();
  } catch (err) {
    await self.close();
    throw err;
  }
  return self;
}

/** A socket file left by a previous process would make listen() fail with EADDRINUSE. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch {
    // absent, or not ours to remove: listen() reports the real problem
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path); // sync: a later listener on the same path must not lose its socket to us
  } catch {
    // already gone
  }
}
