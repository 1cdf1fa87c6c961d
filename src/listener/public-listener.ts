import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Authorizer } from "../authz/index.js";
import { createPeerIdentifier, type CertStore, type PeerIdentity, type PeerRejectReason, type TlsMaterial } from "../certs/index.js";
import { ConfigError, isLoopbackHost, pipe, rawSocketOf, type PipeCloseReason } from "../net/index.js";
import type { Logger, Metrics } from "../ops/index.js";
import { dialApp, type AppAddress } from "./dial-app.js";
import { serverTlsOptions } from "./tls-options.js";

/** Why an inbound connection was refused before any byte reached the app. */
export type InboundRejectReason =
  | PeerRejectReason
  | "denied"
  | "authz_unavailable"
  | "handshake_timeout"
  | "tls_error"
  | "app_unreachable"
  | "max_conns"
  | "draining";

/**
 * Why an inbound connection ended: a rejection, how the pipe ended, "client_reset" for a client that
 * left before its handshake finished (a TCP health check, say), or "internal_error" for a bug.
 */
export type InboundCloseReason = InboundRejectReason | PipeCloseReason | "internal_error";

export interface PublicListenerOptions {
  bind: { host: string; port: number };
  app: AppAddress;
  /** From TCP accept to an allow verdict: TLS handshake, identity check and authorization (spec 6.1). 0: none. */
  handshakeTimeoutMs: number;
  localConnectTimeoutMs: number;
  /** Else a non-loopback app address is a ConfigError at start. */
  allowNonLoopbackApp: boolean;
  idleTimeoutMs?: number;
  maxConns?: number;
}

export interface PublicListener {
  address(): { host: string; port: number };
  /** New connections use the new app address and timeouts; live ones are untouched. Throws ConfigError. */
  update(next: { app?: AppAddress; handshakeTimeoutMs?: number; localConnectTimeoutMs?: number }): void;
  /** Binds the new address first, then stops the old one accepting; live connections are untouched. */
  rebind(bind: { host: string; port: number }): Promise<void>;
  activeCount(): number;
  /** Stops accepting, refuses connections not yet at the app ("draining"); resolves when the rest ended. */
  close(): Promise<void>;
  /** Cuts every live connection now ("shutdown"). */
  destroy(): void;
}

export interface PublicListenerDeps {
  certs: CertStore;
  authz: Authorizer;
  log: Logger;
  metrics: Metrics;
  /** One info line per connection; default true. */
  logConnections?: boolean;
}

const LISTENER = "public";
// Why a connection is interrupted from outside its own flow.
type StopReason = "handshake_timeout" | "draining" | "revoked" | "shutdown";
type HandshakeOutcome = TLSSocket | "tls_error" | "client_reset" | "handshake_timeout";
type SourceUri = PeerIdentity["uri"];

interface Conn {
  readonly raw: Socket;
  readonly peer: string;
  readonly acceptedAt: number;
  readonly stop: AbortController;
  /** Settles when `stop` aborts, with its reason. */
  readonly interrupted: Promise<StopReason>;
  /** Settled by the server's secureConnection / tlsClientError events. */
  readonly handshake: PromiseWithResolvers<HandshakeOutcome>;
  /** "admitting" until the app is being dialled: close() refuses those, lets the others finish. */
  stage: "admitting" | "app";
  deadline: NodeJS.Timeout | undefined;
  tls: TLSSocket | undefined;
  app: Socket | undefined;
  source: SourceUri | undefined;
  bytesIn: number;
  bytesOut: number;
}

interface Settings {
  app: AppAddress;
  handshakeTimeoutMs: number;
  localConnectTimeoutMs: number;
  idleTimeoutMs: number;
  maxConns: number;
}

const REJECT_REASONS: ReadonlySet<string> = new Set<string>([
  "no_client_cert", "cert_expired", "bad_chain", "no_spiffe_id", "wrong_trust_domain", "not_a_service",
  "denied", "authz_unavailable", "handshake_timeout", "tls_error", "app_unreachable", "max_conns", "draining",
]);

const ignore = (): void => {};

// Refusals of a peer whose identity verified. OpenSSL queues its TLS 1.3 session tickets with the
// handshake's last flight and Node writes them after 'secureConnection' returns; a destroy in that
// same turn drops them. A refused peer retries (clients do, all through a deny), and without a
// ticket every retry is a full handshake: two signatures, a chain verification, and ~10 KB that
// Node never frees once the peer certificate was read (bench/micro/peer-cert-retention.bench.ts). A
// resumed session is identified and authorized like any other, so the ticket admits nothing.
// Both come before the app is dialled, so there is no app socket to close with them.
const TICKETED_REFUSALS: ReadonlySet<string> = new Set<string>(["denied", "authz_unavailable"]);
function closeRefused(tls: TLSSocket, raw: Socket): void {
  tls.destroy();
  raw.destroy();
}

/**
 * Starts the public mTLS listener once the cert store has material, bound to `opts.bind`. Each
 * accepted connection is handshaken, identified and authorized before the app is dialled (spec 9.4,
 * done in the safe order). Rejects with ConfigError for a non-loopback app address (unless allowed)
 * and with the listen error when the address cannot be bound.
 */
export async function startPublicListener(opts: PublicListenerOptions, deps: PublicListenerDeps): Promise<PublicListener> {
  const { certs, authz, log } = deps;
  const logConnections = deps.logConnections !== false;
  checkAppAddress(opts.app, opts.allowNonLoopbackApp, log);
  let settings: Settings = {
    app: opts.app,
    handshakeTimeoutMs: opts.handshakeTimeoutMs,
    localConnectTimeoutMs: opts.localConnectTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs ?? 0,
    maxConns: opts.maxConns ?? 0,
  };

  let material: TlsMaterial = await certs.ready();
  // Session tickets live as long as this listener; a new set of roots gets new keys, so a ticket
  // issued under roots that are gone cannot resume past the new chain check.
  let ticketKeys = randomBytes(48);
  const peers = createPeerIdentifier();

  const m = deps.metrics;
  const accepted = m.connectionsAccepted.labels(LISTENER);
  const active = m.connectionsActive.labels(LISTENER);
  const received = m.receivedBytes.labels(LISTENER);
  const sent = m.sentBytes.labels(LISTENER);
  const handshakeSeconds = m.handshakeDuration.labels(LISTENER);
  const closedBy = new Map<string, { inc(): void }>();
  const rejectedBy = new Map<string, { inc(): void }>();
  const closedCounter = (r: string) => mapGet(closedBy, r, () => m.connectionsClosed.labels(LISTENER, r));
  const rejectedCounter = (r: string) => mapGet(rejectedBy, r, () => m.connectionsRejected.labels(LISTENER, r));

  const conns = new Set<Conn>();
  const handshaking = new Map<Socket, Conn>(); // raw socket → conn, until its handshake settles
  const bySource = new Map<SourceUri, Set<Conn>>(); // allowed conns, for revocation
  let drained: PromiseWithResolvers<void> | undefined;
  let state: { t: "open" } | { t: "closing"; done: Promise<void> } = { t: "open" };

  // ---- one connection, top to bottom ----
  async function serveInbound(c: Conn, s: Settings): Promise<InboundCloseReason> {
    const hs = await Promise.race([c.handshake.promise, c.interrupted]);
    if (typeof hs === "string") return hs;
    const sock = (c.tls = hs);
    sock.on("error", ignore);
    sock.setNoDelay(true);
    handshakeSeconds.observe((performance.now() - c.acceptedAt) / 1000);

    const peer = peers.identify(sock, material.trustDomain); // sync, cached per certificate
    if (!peer.ok) return peer.reason;
    const src = (c.source = peer.value.uri);
    const verdict =
      authz.peek(src) ??
      (await Promise.race([authz.decide(src, peer.value.serial).catch(() => "authz_unavailable" as const), c.interrupted]));
    if (verdict !== "allow") return verdict;
    clearTimeout(c.deadline);
    track(c, src);

    c.stage = "app"; // the app is touched only now
    const app = await dialApp(s.app, s.localConnectTimeoutMs, c.stop.signal, (sig) => sig.reason as StopReason);
    if (!app.ok) return app.reason;
    c.app = app.value;
    app.value.on("error", ignore);
    const r = await pipe(sock, app.value, { signal: c.stop.signal, idleTimeoutMs: s.idleTimeoutMs });
    c.bytesIn = r.bytesFromClient;
    c.bytesOut = r.bytesFromServer;
    return r.reason;
  }

  function onConnection(raw: Socket): void {
    raw.on("error", ignore);
    const s = settings; // read once: update() applies to connections accepted after it
    const stop = new AbortController();
    const c: Conn = {
      raw,
      peer: `${raw.remoteAddress}:${raw.remotePort}`,
      acceptedAt: performance.now(),
      stop,
      interrupted: new Promise((resolve) => stop.signal.addEventListener("abort", () => resolve(stop.signal.reason as StopReason), { once: true })),
      handshake: Promise.withResolvers<HandshakeOutcome>(),
      stage: "admitting",
      deadline: undefined,
      tls: undefined,
      app: undefined,
      source: undefined,
      bytesIn: 0,
      bytesOut: 0,
    };
    accepted.inc();
    active.inc();
    conns.add(c);
    if (s.maxConns > 0 && conns.size > s.maxConns) return finish(c, "max_conns");
    handshaking.set(raw, c);
    if (s.handshakeTimeoutMs > 0) c.deadline = setTimeout(() => stop.abort("handshake_timeout"), s.handshakeTimeoutMs);
    serveInbound(c, s).then(
      (reason) => finish(c, reason),
      (err: unknown) => {
        log.error({ err, listener: LISTENER, peer: c.peer }, "inbound connection failed unexpectedly");
        finish(c, "internal_error");
      },
    );
  }

  // The raw socket that 'connection' saw (Node's tls.Server wraps it in place) is how the deadline
  // started at TCP accept reaches the handshake's outcome.
  function settleHandshake(sock: TLSSocket, outcome: HandshakeOutcome): void {
    const raw = rawSocketOf(sock);
    const c = raw === undefined ? undefined : handshaking.get(raw);
    if (c === undefined) return void sock.destroy(); // already finished (timeout, max_conns, shutdown)
    handshaking.delete(c.raw);
    if (typeof outcome === "string") sock.destroy();
    // Handshaken: half-close is forwarded from now on (pipe); set before any 'end' can be emitted.
    else sock.allowHalfOpen = true;
    c.handshake.resolve(outcome);
  }
  const onSecureConnection = (sock: TLSSocket): void => settleHandshake(sock, sock);
  const onTlsClientError = (err: NodeJS.ErrnoException, sock: TLSSocket): void => {
    const outcome =
      err.code === "ERR_TLS_HANDSHAKE_TIMEOUT" ? "handshake_timeout" : err.code === "ECONNRESET" ? "client_reset" : "tls_error";
    settleHandshake(sock, outcome);
  };
  const onServerError = (err: Error): void => log.error({ err, listener: LISTENER }, "public listener accept failed");

  function finish(c: Conn, reason: InboundCloseReason): void {
    clearTimeout(c.deadline);
    handshaking.delete(c.raw);
    untrack(c);
    if (c.tls !== undefined && TICKETED_REFUSALS.has(reason)) setImmediate(closeRefused, c.tls, c.raw);
    else {
      c.tls?.destroy();
      c.app?.destroy();
      c.raw.destroy();
    }
    conns.delete(c);
    // One synchronous block, so a scrape always sees accepted = closed + active.
    active.dec();
    closedCounter(reason).inc();
    if (REJECT_REASONS.has(reason)) rejectedCounter(reason).inc();
    if (reason === "revoked") m.connectionsRevoked.inc();
    if (c.bytesIn > 0) received.inc(c.bytesIn);
    if (c.bytesOut > 0) sent.inc(c.bytesOut);
    if (logConnections) {
      log.info(
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
    if (conns.size === 0 && drained !== undefined) drained.resolve();
  }

  function track(c: Conn, src: SourceUri): void {
    let set = bySource.get(src);
    if (set === undefined) bySource.set(src, (set = new Set()));
    set.add(c);
  }
  function untrack(c: Conn): void {
    if (c.source === undefined) return;
    const set = bySource.get(c.source);
    if (set === undefined) return;
    set.delete(c);
    if (set.size === 0) bySource.delete(c.source);
  }

  // ---- servers, rotation, revocation ----
  function newServer(): Server {
    // Not allowHalfOpen while handshaking: a client's FIN before its handshake ends must close the
    // socket (and report client_reset) instead of leaving it half open until the deadline.
    const server = createServer(serverTlsOptions(material, ticketKeys));
    server.on("connection", onConnection);
    server.on("secureConnection", onSecureConnection);
    server.on("tlsClientError", onTlsClientError);
    return server;
  }
  async function listenOn(server: Server, bind: { host: string; port: number }): Promise<void> {
    server.listen(bind.port, bind.host);
    try {
      await once(server, "listening"); // a listen error (EADDRINUSE, …) rejects
    } catch (err) {
      server.close();
      throw err;
    }
    server.on("error", onServerError); // from now on only accept errors (EMFILE): log, keep serving
  }

  let server = newServer();
  await listenOn(server, opts.bind);

  const unsubscribeCerts = certs.subscribe((next) => {
    if (next.rootFingerprints.join() !== material.rootFingerprints.join()) ticketKeys = randomBytes(48);
    material = next;
    server.setSecureContext(serverTlsOptions(next, ticketKeys)); // new handshakes only
  });
  const unsubscribeRevoke = authz.onRevoke((src) => {
    const set = bySource.get(src);
    if (set === undefined) return;
    for (const c of [...set]) c.stop.abort("revoked");
  });
  const release = (): void => {
    unsubscribeCerts();
    unsubscribeRevoke();
  };

  log.info({ listener: LISTENER, address: describeBound(server, opts.bind), app: describeApp(settings.app) }, "public listener started");

  function close(): Promise<void> {
    if (state.t === "closing") return state.done;
    server.close();
    const done = (async () => {
      for (const c of conns) if (c.stage === "admitting") c.stop.abort("draining");
      if (conns.size > 0) {
        drained = Promise.withResolvers<void>();
        await drained.promise;
      }
      release();
    })();
    state = { t: "closing", done };
    return done;
  }

  return {
    address() {
      const a = server.address();
      return typeof a === "object" && a !== null ? { host: a.address, port: a.port } : { host: opts.bind.host, port: opts.bind.port };
    },
    update(next) {
      if (next.app !== undefined) checkAppAddress(next.app, opts.allowNonLoopbackApp, log);
      settings = {
        ...settings,
        app: next.app ?? settings.app,
        handshakeTimeoutMs: next.handshakeTimeoutMs ?? settings.handshakeTimeoutMs,
        localConnectTimeoutMs: next.localConnectTimeoutMs ?? settings.localConnectTimeoutMs,
      };
    },
    async rebind(bind) {
      if (state.t !== "open") return;
      const fresh = newServer();
      await listenOn(fresh, bind); // the old server keeps accepting if this fails
      const old = server;
      server = fresh;
      old.close(); // stops accepting; its live connections are ours and continue
      log.info({ listener: LISTENER, address: describeBound(fresh, bind) }, "public listener rebound");
    },
    activeCount: () => conns.size,
    close,
    destroy() {
      for (const c of conns) c.stop.abort("shutdown"); // before close(), which would say "draining"
      void close();
    },
  };
}

/** Throws ConfigError for a TCP app address off loopback unless allowed; then it only warns. */
function checkAppAddress(app: AppAddress, allowNonLoopbackApp: boolean, log: Logger): void {
  if ("socketPath" in app || isLoopbackHost(app.host)) return;
  const risk =
    `the local app address ${app.host}:${app.port} is not a loopback address: anyone who can reach it on the ` +
    `network can bypass mTLS and intentions by connecting to the app directly`;
  if (!allowNonLoopbackApp) {
    throw new ConfigError(
      "local_service_address",
      `${risk}. Bind the app to 127.0.0.1 (or ::1, or a unix socket), or pass --allow-non-loopback-app to accept the risk`,
    );
  }
  log.warn({ listener: LISTENER, app: describeApp(app) }, `${risk} (allowed by --allow-non-loopback-app)`);
}

function describeApp(app: AppAddress): string {
  return "socketPath" in app ? `unix://${app.socketPath}` : `${app.host}:${app.port}`;
}

function mapGet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) map.set(key, (v = make()));
  return v;
}

/** "host:port" of a bound server, for log lines. */
function describeBound(server: Server, fallback: { host: string; port: number }): string {
  const a = server.address();
  const { host, port } = typeof a === "object" && a !== null ? { host: a.address, port: a.port } : fallback;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
