// One inbound connection's life, read top to bottom in security order (STYLE §3): accept →
// handshake under the deadline → identify → authorize → dial the app → pipe → finish. Each step is
// a module-level function returning a typed reason, as on the upstream side. The listener
// (public-listener.ts) owns the servers and hands every accepted socket to acceptInbound().
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Authorizer } from "../authz/index.js";
import type { ListenerProtocol } from "../agent/index.js";
import type { PeerIdentifier, PeerIdentity, TlsMaterial } from "../certs/index.js";
import { formatHostPort, rawSocketOf, pipe, type InboundCloseReason, type PipeResult, type Result } from "../net/index.js";
import type { ListenerMetrics, Logger } from "../ops/index.js";
import { dialApp, type AppAddress } from "./dial-app.js";
import type { HttpInbound } from "./http-inbound.js";

export const LISTENER = "public";

/** Read by a connection once, at accept: a change applies to connections accepted after it. */
export interface InboundSettings {
  app: AppAddress;
  /** From TCP accept to an allow verdict: TLS handshake, identity check and authorization (spec 6.1). 0: none. */
  handshakeTimeoutMs: number;
  localConnectTimeoutMs: number;
  /** 0: none. */
  idleTimeoutMs: number;
  /** TCP keepalive's first probe after this much silence; 0: off. */
  keepAliveMs: number;
  /** 0: no limit. */
  maxConns: number;
  /** "http": requests are parsed, checked against L7 intentions and counted; else bytes are piped. */
  protocol: ListenerProtocol;
}

/** What every connection of one listener shares; the listener owns it and changes it between connections. */
export interface InboundContext {
  readonly authz: Authorizer;
  readonly peers: PeerIdentifier;
  readonly log: Logger;
  readonly logConnections: boolean;
  readonly metrics: ListenerMetrics;
  /** The HTTP mode's server and app agent, for connections accepted while the protocol is http. */
  readonly http: HttpInbound;
  /** The material new handshakes use: a peer must be of its trust domain. */
  material: TlsMaterial;
  settings: InboundSettings;
  readonly conns: Set<InboundConn>;
  /** Raw socket → connection, until its handshake settles (see settleHandshake). */
  readonly handshaking: Map<Socket, InboundConn>;
  /** Allowed connections by source, for revocation. */
  readonly bySource: Map<SourceUri, Set<InboundConn>>;
  /** Set while the listener drains; resolved by the last connection to finish. */
  drained: PromiseWithResolvers<void> | undefined;
}

/** Why a connection is interrupted from outside its own flow. */
export type StopReason = "handshake_timeout" | "draining" | "revoked" | "shutdown";
/** Settled by the server's secureConnection / tlsClientError events. */
export type HandshakeOutcome = TLSSocket | "tls_error" | "client_reset" | "handshake_timeout";
type SourceUri = PeerIdentity["uri"];

export interface InboundConn {
  readonly raw: Socket;
  readonly peer: string;
  readonly acceptedAt: number;
  readonly stop: AbortController;
  /** Settles when `stop` aborts, with its reason. */
  readonly interrupted: Promise<StopReason>;
  readonly handshake: PromiseWithResolvers<HandshakeOutcome>;
  /** "admitting" until the app is being dialled: a draining listener refuses those, lets the others finish. */
  stage: "admitting" | "app";
  deadline: NodeJS.Timeout | undefined;
  tls: TLSSocket | undefined;
  app: Socket | undefined;
  /** Served as HTTP: requests reached (or were refused by) the app one by one. */
  http: boolean;
  source: SourceUri | undefined;
  bytesIn: number;
  bytesOut: number;
}

const ignore = (): void => {};

/** Takes a TCP connection the server accepted: counts it, arms its deadline, and serves it to its end. */
export function acceptInbound(raw: Socket, ctx: InboundContext): void {
  raw.on("error", ignore);
  const s = ctx.settings; // read once: an update applies to connections accepted after it
  const stop = new AbortController();
  const c: InboundConn = {
    raw,
    peer: formatHostPort(raw.remoteAddress ?? "?", raw.remotePort ?? 0), // [::1]:port, as the upstream log writes it
    acceptedAt: performance.now(),
    stop,
    interrupted: new Promise((resolve) => stop.signal.addEventListener("abort", () => resolve(stop.signal.reason as StopReason), { once: true })),
    handshake: Promise.withResolvers<HandshakeOutcome>(),
    stage: "admitting",
    deadline: undefined,
    tls: undefined,
    app: undefined,
    http: false,
    source: undefined,
    bytesIn: 0,
    bytesOut: 0,
  };
  ctx.metrics.accepted.inc();
  ctx.metrics.active.inc();
  ctx.conns.add(c);
  if (s.maxConns > 0 && ctx.conns.size > s.maxConns) return finishInbound(c, "max_conns", ctx);
  ctx.handshaking.set(raw, c);
  if (s.handshakeTimeoutMs > 0) c.deadline = setTimeout(() => stop.abort("handshake_timeout"), s.handshakeTimeoutMs);
  serveInbound(c, s, ctx).then(
    (reason) => finishInbound(c, reason, ctx),
    (err: unknown) => {
      ctx.log.error({ err, listener: LISTENER, peer: c.peer }, "inbound connection failed unexpectedly");
      finishInbound(c, "internal_error", ctx);
    },
  );
}

/** One connection, top to bottom; returns why it ended. The app is touched only after an allow. */
async function serveInbound(c: InboundConn, s: InboundSettings, ctx: InboundContext): Promise<InboundCloseReason> {
  const hs = await handshaken(c, ctx);
  if (!hs.ok) return hs.reason;
  const peer = ctx.peers.identify(hs.value, ctx.material.trustDomain); // sync, cached per certificate
  if (!peer.ok) return peer.reason;
  c.source = peer.value.uri;
  const verdict = ctx.authz.peek(peer.value.uri) ?? (await decide(c, peer.value, ctx)); // a cached verdict costs no await
  // An L7 intention is a layer-4 deny (authorize says so, spec §12.3); in HTTP mode it admits the
  // connection and decides per request.
  if (verdict !== "allow" && !(verdict === "denied" && s.protocol === "http" && hasL7Intention(peer.value, ctx))) return verdict;
  clearTimeout(c.deadline);
  trackSource(c, ctx);
  c.stage = "app";
  const id = peer.value.id;
  const http = s.protocol === "http" ? ctx.http.serve(hs.value, {
    source: { uri: peer.value.uri, namespace: id.namespace, service: id.service },
    app: s.app,
    localConnectTimeoutMs: s.localConnectTimeoutMs,
    idleTimeoutMs: s.idleTimeoutMs,
    keepAliveMs: s.keepAliveMs,
    signal: c.stop.signal,
  }) : undefined;
  let r: PipeResult;
  if (http !== undefined) {
    c.http = true;
    r = await http;
  } else {
    if (verdict !== "allow") return verdict; // admitted for its L7 intention, which layer 4 cannot enforce
    const app = await dialApp({ app: s.app, timeoutMs: s.localConnectTimeoutMs, signal: c.stop.signal, abortReason: (sig) => sig.reason as StopReason });
    if (!app.ok) return app.reason;
    c.app = app.value;
    app.value.on("error", ignore);
    r = await pipe(hs.value, app.value, { signal: c.stop.signal, idleTimeoutMs: s.idleTimeoutMs, keepAliveMs: s.keepAliveMs });
  }
  c.bytesIn = r.bytesFromClient;
  c.bytesOut = r.bytesFromServer;
  return r.reason;
}

function hasL7Intention(peer: PeerIdentity, ctx: InboundContext): boolean {
  const i = ctx.authz.intentionFor({ namespace: peer.id.namespace, service: peer.id.service });
  return i !== undefined && i.permissions.length > 0;
}

/** The TLS handshake's outcome, or the interruption (deadline, drain, shutdown) that came first. */
async function handshaken(c: InboundConn, ctx: InboundContext): Promise<Result<TLSSocket, Exclude<HandshakeOutcome, TLSSocket> | StopReason>> {
  const hs = await Promise.race([c.handshake.promise, c.interrupted]);
  if (typeof hs === "string") return { ok: false, reason: hs };
  c.tls = hs;
  hs.on("error", ignore);
  hs.setNoDelay(true);
  ctx.metrics.handshake.observe((performance.now() - c.acceptedAt) / 1000);
  return { ok: true, value: hs };
}

/** The authorizer's verdict for a source not in its cache, or the interruption (deadline, revocation) that came first. */
function decide(c: InboundConn, peer: PeerIdentity, ctx: InboundContext): Promise<"allow" | "denied" | "authz_unavailable" | StopReason> {
  return Promise.race([ctx.authz.decide(peer.uri, peer.serial).catch(() => "authz_unavailable" as const), c.interrupted]);
}

/**
 * Hands a handshake's outcome to its connection. The raw socket that 'connection' saw (Node's
 * tls.Server wraps it in place) is how the deadline started at TCP accept reaches the handshake.
 */
export function settleHandshake(sock: TLSSocket, outcome: HandshakeOutcome, ctx: InboundContext): void {
  const raw = rawSocketOf(sock);
  const c = raw === undefined ? undefined : ctx.handshaking.get(raw);
  if (c === undefined) return void sock.destroy(); // already finished (timeout, max_conns, shutdown)
  ctx.handshaking.delete(c.raw);
  if (typeof outcome === "string") sock.destroy();
  // Handshaken: half-close is forwarded from now on (pipe); set before any 'end' can be emitted.
  else sock.allowHalfOpen = true;
  c.handshake.resolve(outcome);
}

/**
 * What a tlsClientError on `sock` means for the connection. Node reports a FIN before the handshake
 * ends as ECONNRESET too ("socket hang up", no syscall): a peer that left that way after sending
 * bytes sent an incomplete or non-TLS handshake (tls_error); one that sent nothing, or really reset,
 * left (client_reset: a TCP health check, say).
 */
export function handshakeFailure(err: NodeJS.ErrnoException, sock: TLSSocket): Exclude<HandshakeOutcome, TLSSocket> {
  if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") return "handshake_timeout";
  if (err.code !== "ECONNRESET") return "tls_error";
  const spoke = (rawSocketOf(sock)?.bytesRead ?? 0) > 0;
  return spoke && err.syscall === undefined ? "tls_error" : "client_reset";
}

// Refusals of a peer whose identity verified. OpenSSL queues its TLS 1.3 session tickets with the
// handshake's last flight and Node writes them after 'secureConnection' returns; a destroy in that
// same turn drops them. A refused peer retries (clients do, all through a deny), and without a
// ticket every retry is a full handshake: two signatures, a chain verification, and ~10 KB that
// Node never frees once the peer certificate was read (bench/micro/peer-cert-retention.bench.ts). A
// resumed session is identified and authorized like any other, so the ticket admits nothing.
// Both come before the app is dialled, so there is no app socket to close with them.
const TICKETED_REFUSALS: ReadonlySet<InboundCloseReason> = new Set<InboundCloseReason>(["denied", "authz_unavailable"]);
function closeRefused(tls: TLSSocket, raw: Socket): void {
  tls.destroy();
  raw.destroy();
}

/** Closes a connection's sockets, counts and logs its end, and tells a draining listener when it was the last. */
function finishInbound(c: InboundConn, reason: InboundCloseReason, ctx: InboundContext): void {
  clearTimeout(c.deadline);
  ctx.handshaking.delete(c.raw);
  untrackSource(c, ctx);
  if (c.tls !== undefined && TICKETED_REFUSALS.has(reason)) setImmediate(closeRefused, c.tls, c.raw);
  else {
    c.tls?.destroy();
    c.app?.destroy();
    c.raw.destroy();
  }
  ctx.conns.delete(c);
  ctx.metrics.closed(reason, { reachedDestination: c.app !== undefined || c.http, bytesIn: c.bytesIn, bytesOut: c.bytesOut });
  if (ctx.logConnections) {
    ctx.log.info(
      {
        listener: LISTENER,
        peer: c.peer,
        source: c.source,
        durationMs: Math.round(performance.now() - c.acceptedAt),
        bytesIn: c.bytesIn,
        bytesOut: c.bytesOut,
        reason,
      },
      "inbound connection closed",
    );
  }
  if (ctx.conns.size === 0 && ctx.drained !== undefined) ctx.drained.resolve();
}

function trackSource(c: InboundConn, ctx: InboundContext): void {
  const src = c.source!;
  let set = ctx.bySource.get(src);
  if (set === undefined) ctx.bySource.set(src, (set = new Set()));
  set.add(c);
}

function untrackSource(c: InboundConn, ctx: InboundContext): void {
  if (c.source === undefined) return;
  const set = ctx.bySource.get(c.source);
  if (set === undefined) return;
  set.delete(c);
  if (set.size === 0) ctx.bySource.delete(c.source);
}

/** Interrupts every allowed connection of `src` (an intention now denies it). */
export function revokeSource(src: SourceUri, ctx: InboundContext): void {
  const set = ctx.bySource.get(src);
  if (set === undefined) return;
  for (const c of [...set]) c.stop.abort("revoked");
}

/** Interrupts the connections of `stage` (all of them when undefined) with `reason`. */
export function interruptConnections(ctx: InboundContext, reason: StopReason, stage?: InboundConn["stage"]): void {
  for (const c of ctx.conns) if (stage === undefined || c.stage === stage) c.stop.abort(reason);
}
