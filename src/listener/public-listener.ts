// The public mTLS listener: binds, rotates its TLS context, revokes, rebinds, drains. What happens
// to one accepted connection is inbound-connection.ts, read top to bottom.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Socket } from "node:net";
import { createServer, type Server, type TLSSocket } from "node:tls";
import type { ListenerProtocol } from "../agent/index.js";
import type { Authorizer } from "../authz/index.js";
import { createPeerIdentifier, type CertStore } from "../certs/index.js";
import { ConfigError, formatAddress, isLoopbackHost } from "../net/index.js";
import { bindHttpMetrics, bindListenerMetrics, type Logger, type Metrics } from "../ops/index.js";
import type { AppAddress } from "./dial-app.js";
import {
  LISTENER,
  acceptInbound,
  handshakeFailure,
  interruptConnections,
  revokeSource,
  settleHandshake,
  type InboundContext,
} from "./inbound-connection.js";
import { createHttpInbound } from "./http-inbound.js";
import { serverTlsOptions } from "./tls-options.js";

export interface PublicListenerOptions {
  bind: { host: string; port: number };
  app: AppAddress;
  /** From TCP accept to an allow verdict: TLS handshake, identity check and authorization (spec 6.1). 0: none. */
  handshakeTimeoutMs: number;
  localConnectTimeoutMs: number;
  /** Else a non-loopback app address is a ConfigError at start. */
  allowNonLoopbackApp: boolean;
  idleTimeoutMs?: number;
  keepAliveMs?: number;
  maxConns?: number;
  /** Default "tcp". */
  protocol?: ListenerProtocol;
}

export interface PublicListener {
  address(): { host: string; port: number };
  /** New connections use the new app address and timeouts; live ones are untouched. Throws ConfigError. */
  update(next: { app?: AppAddress; handshakeTimeoutMs?: number; localConnectTimeoutMs?: number; protocol?: ListenerProtocol }): void;
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
  /** One info line per HTTP request (protocol http); default true. */
  accessLog?: boolean;
}

/**
 * Starts the public mTLS listener once the cert store has material, bound to `opts.bind`. Each
 * accepted connection is handshaken, identified and authorized before the app is dialled (spec 9.4,
 * done in the safe order). Rejects with ConfigError for a non-loopback app address (unless allowed)
 * and with the listen error when the address cannot be bound.
 */
export async function startPublicListener(opts: PublicListenerOptions, deps: PublicListenerDeps): Promise<PublicListener> {
  const { certs, authz, log } = deps;
  checkAppAddress(opts.app, opts.allowNonLoopbackApp, log);
  const ctx: InboundContext = {
    authz,
    peers: createPeerIdentifier(),
    log,
    logConnections: deps.logConnections !== false,
    metrics: bindListenerMetrics(deps.metrics, LISTENER),
    http: createHttpInbound({
      authz,
      log,
      metrics: bindHttpMetrics(deps.metrics, LISTENER),
      accessLog: deps.accessLog !== false,
      listener: LISTENER,
    }),
    material: await certs.ready(),
    settings: {
      app: opts.app,
      handshakeTimeoutMs: opts.handshakeTimeoutMs,
      localConnectTimeoutMs: opts.localConnectTimeoutMs,
      idleTimeoutMs: opts.idleTimeoutMs ?? 0,
      keepAliveMs: opts.keepAliveMs ?? 0,
      maxConns: opts.maxConns ?? 0,
      protocol: opts.protocol ?? "tcp",
    },
    conns: new Set(),
    handshaking: new Map(),
    bySource: new Map(),
    drained: undefined,
  };
  // Session tickets live as long as this listener; a new set of roots gets new keys, so a ticket
  // issued under roots that are gone cannot resume past the new chain check.
  let ticketKeys = randomBytes(48);
  let closing: Promise<void> | undefined;

  const onConnection = (raw: Socket): void => acceptInbound(raw, ctx);
  const onSecureConnection = (sock: TLSSocket): void => settleHandshake(sock, sock, ctx);
  const onTlsClientError = (err: NodeJS.ErrnoException, sock: TLSSocket): void => settleHandshake(sock, handshakeFailure(err, sock), ctx);
  const onServerError = (err: Error): void => log.error({ err, listener: LISTENER }, "public listener accept failed");

  function newServer(): Server {
    // Not allowHalfOpen while handshaking: a client's FIN before its handshake ends must close the
    // socket (and report client_reset) instead of leaving it half open until the deadline.
    const server = createServer(serverTlsOptions(ctx.material, ticketKeys));
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
    if (next.rootFingerprints.join() !== ctx.material.rootFingerprints.join()) ticketKeys = randomBytes(48);
    ctx.material = next;
    server.setSecureContext(serverTlsOptions(next, ticketKeys)); // new handshakes only
  });
  const unsubscribeRevoke = authz.onRevoke((src) => revokeSource(src, ctx));

  log.info(
    { listener: LISTENER, address: formatAddress(boundAddress(server, opts.bind)), app: formatAddress(ctx.settings.app), protocol: ctx.settings.protocol },
    "public listener started",
  );
  if (ctx.settings.protocol !== "tcp") logProtocol(ctx.settings.protocol, log);

  function close(): Promise<void> {
    closing ??= (async () => {
      server.close();
      interruptConnections(ctx, "draining", "admitting");
      ctx.http.drain(); // HTTP keep-alive connections close when idle instead of holding the drain
      if (ctx.conns.size > 0) {
        ctx.drained = Promise.withResolvers<void>();
        await ctx.drained.promise;
      }
      unsubscribeCerts();
      unsubscribeRevoke();
    })();
    return closing;
  }

  return {
    address: () => boundAddress(server, opts.bind),
    update(next) {
      if (next.app !== undefined) checkAppAddress(next.app, opts.allowNonLoopbackApp, log);
      const s = ctx.settings;
      ctx.settings = {
        ...s,
        app: next.app ?? s.app,
        handshakeTimeoutMs: next.handshakeTimeoutMs ?? s.handshakeTimeoutMs,
        localConnectTimeoutMs: next.localConnectTimeoutMs ?? s.localConnectTimeoutMs,
        protocol: next.protocol ?? s.protocol,
      };
      if (next.protocol !== undefined && next.protocol !== s.protocol) logProtocol(next.protocol, log);
    },
    async rebind(bind) {
      if (closing !== undefined) return;
      const fresh = newServer();
      await listenOn(fresh, bind); // the old server keeps accepting if this fails
      const old = server;
      server = fresh;
      old.close(); // stops accepting; its live connections are ours and continue
      log.info({ listener: LISTENER, address: formatAddress(boundAddress(fresh, bind)) }, "public listener rebound");
    },
    activeCount: () => ctx.conns.size,
    close,
    destroy() {
      interruptConnections(ctx, "shutdown"); // before close(), which would say "draining"
      void close();
    },
  };
}

/** Says how new connections will be handled under `protocol`. */
function logProtocol(protocol: ListenerProtocol, log: Logger): void {
  if (protocol === "http") log.info({ listener: LISTENER, protocol }, "new connections are served as HTTP/1.1: per-request L7 intentions, metrics and access log");
  else if (protocol === "tcp") log.info({ listener: LISTENER, protocol }, "new connections are proxied at layer 4");
  else log.warn({ listener: LISTENER, protocol }, `protocol ${protocol} is proxied at layer 4 (bytes only); L7 intentions are not enforced and refuse their sources`);
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
  log.warn({ listener: LISTENER, app: formatAddress(app) }, `${risk} (allowed by --allow-non-loopback-app)`);
}

/** The bound address (the real port when bound to port 0), or `fallback` once the server is closed. */
function boundAddress(server: Server, fallback: { host: string; port: number }): { host: string; port: number } {
  const a = server.address();
  return typeof a === "object" && a !== null ? { host: a.address, port: a.port } : fallback;
}
