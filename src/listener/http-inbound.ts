// The public listener's HTTP/1.1 mode (protocol "http"): an authorized TLS socket is handed to a
// node:http Server (llhttp: keep-alive, pipelining, chunked and Content-Length framing, 400 for a
// malformed request), each request is checked against the source's L7 intention and forwarded to
// the app over a keep-alive agent on loopback, bodies streamed both ways with backpressure.
// Upgrade (WebSocket) and CONNECT requests go to the app raw: the head is written, then the same
// byte pipe as layer 4 carries the rest. The caller (inbound-connection.ts) has done the TLS
// handshake, the identity check and the layer-4 authorization; a layer-4 deny never reaches here.
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { SpiffeUri } from "../agent/index.js";
import type { Authorizer, L7Source } from "../authz/index.js";
import { permissionVerdict } from "../authz/index.js";
import { errorCloseReason, pipe, type PipeCloseReason } from "../net/index.js";
import type { Logger } from "../ops/index.js";
import type { HttpMetrics } from "./http-metrics.js";
import { dialApp, type AppAddress } from "./dial-app.js";

/** What one HTTP connection's requests share: read once at accept, like every inbound setting. */
export interface HttpConn {
  readonly source: L7Source & { uri: SpiffeUri };
  readonly app: AppAddress;
  readonly localConnectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveMs: number;
  readonly signal: AbortSignal;
  /** Resolves the connection's life with how it ended. */
  readonly done: (r: PipeCloseReason) => void;
}

export interface HttpInboundDeps {
  readonly authz: Authorizer;
  readonly log: Logger;
  readonly metrics: HttpMetrics;
  /** One info line per request. */
  readonly accessLog: boolean;
  readonly listener: string;
}

export interface HttpInbound {
  /** Serves `tls` as HTTP/1.1 until it closes; resolves with how it ended. */
  serve(tls: TLSSocket, conn: Omit<HttpConn, "done">): Promise<PipeCloseReason>;
  /**
   * The listener drains: idle connections are closed now, busy ones after their response (which says
   * `Connection: close`), so a drain does not wait for clients' keep-alive connections to time out.
   */
  drain(): void;
  /** Closes the keep-alive sockets to the app. Live client connections are the caller's to end. */
  close(): void;
}

// node:http through getBuiltinModule, not `import`: an ESM import of node:http reads every export,
// which loads Node's bundled undici (+13 MB RSS; see src/ops/admin-server.ts).
const { Agent, createServer, request: httpRequest } = process.getBuiltinModule("node:http");

/** Envoy's RBAC filter answers a denied request with this body (and 403). */
export const DENIED_BODY = "RBAC: access denied";
/** The app could not be reached, or failed before answering (Envoy says 503 too). */
const UNAVAILABLE_BODY = "app unavailable";

// RFC 9110 §7.6.1: hop-by-hop fields a proxy must not forward, plus those a Connection field names.
// Expect is answered by our own server (100 Continue) and not repeated; Host is kept as sent.
const HOP_BY_HOP = new Set(["connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade", "trailer", "expect"]);

export function createHttpInbound(deps: HttpInboundDeps): HttpInbound {
  const conns = new WeakMap<Socket, HttpConn>();
  /** Sockets handed to pipe() after an upgrade or CONNECT: pipe() reports their end. */
  const raw = new WeakSet<Socket>();
  /** Open HTTP connections and their requests in flight, for drain(). */
  const open = new Map<Socket, { inflight: number }>();
  let draining = false;
  const agent = new Agent({ keepAlive: true, scheduling: "lifo" });
  let server: Server | undefined;

  function ensureServer(): Server {
    if (server !== undefined) return server;
    const s = createServer({
      // Timeouts are the connection's (idle) and the app's, not a request's: a long upload or stream is fine.
      requestTimeout: 0,
      keepAliveTimeout: 0,
      // A request head must arrive within a minute (slowloris), as Node's default says.
      headersTimeout: 60_000,
      noDelay: true,
    });
    s.on("request", (req, res) => onRequest(req, res));
    s.on("upgrade", (req, sock: Socket, head: Buffer) => onRaw(req, sock, head));
    s.on("connect", (req, sock: Socket, head: Buffer) => onRaw(req, sock, head));
    return (server = s);
  }

  /** Counts one request and writes its access-log line (bytesOut: the response body; undefined for a raw stream). */
  function record(c: HttpConn, req: IncomingMessage, status: number, started: number, bytesOut: number | undefined): void {
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.request(req.method ?? "", status, seconds);
    if (!deps.accessLog) return;
    deps.log.info(
      { listener: deps.listener, source: c.source.uri, method: req.method, path: req.url, status, bytesOut, durationMs: Math.round(seconds * 1000) },
      "http request",
    );
  }

  /** The L7 verdict for one request of `c`: its intention's permissions, first match wins (spec §12.3). */
  function allowed(c: HttpConn, req: IncomingMessage): boolean {
    const i = deps.authz.intentionFor(c.source);
    if (i === undefined || i.permissions.length === 0) {
      // Layer 4 decides: the cached verdict (an allow → deny flip revokes the connection anyway).
      return i === undefined ? deps.authz.peek(c.source.uri) === "allow" : i.action === "allow";
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    // No permission matched: the default policy decides (spec §12.3), "deny" while it is not known.
    return (permissionVerdict(i.permissions, { method: req.method ?? "GET", path, headers: req.headers }) ?? deps.authz.l7Default()) === "allow";
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const c = conns.get(req.socket);
    if (c === undefined) return void req.socket.destroy();
    const sock = req.socket;
    const state = open.get(sock);
    if (state !== undefined) {
      state.inflight++;
      res.once("close", () => {
        state.inflight--;
        if (draining && state.inflight === 0) sock.end();
      });
    }
    if (draining) res.shouldKeepAlive = false;
    const started = performance.now();
    let bytesOut = 0;
    const finish = (status: number): void => record(c, req, status, started, bytesOut);
    if (!allowed(c, req)) {
      deps.metrics.denied();
      req.resume(); // read (and drop) the body so that the connection stays usable
      res.writeHead(403, { "content-type": "text/plain", "content-length": Buffer.byteLength(DENIED_BODY) });
      res.end(DENIED_BODY);
      bytesOut = DENIED_BODY.length;
      res.on("finish", () => finish(403));
      return;
    }
    const target = "socketPath" in c.app ? { socketPath: c.app.socketPath } : { host: c.app.host, port: c.app.port };
    const up = httpRequest({
      ...target,
      agent,
      method: req.method,
      path: req.url,
      headers: forwardHeaders(req.rawHeaders),
      setHost: false,
    });
    // pipe(), not stream.pipeline(): pipeline makes an AbortController per call and aborts it at the
    // end, a DOMException (with its stack) per request. Errors are handled here, once per side.
    let answered = false;
    up.on("response", (upRes) => {
      answered = true;
      upRes.on("data", (b: Buffer) => (bytesOut += b.length));
      upRes.on("error", () => res.destroy());
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, forwardHeaders(upRes.rawHeaders));
      upRes.pipe(res);
      res.on("finish", () => finish(upRes.statusCode ?? 502));
    });
    up.on("error", () => {
      if (answered) return void res.destroy();
      // The app could not be reached or failed before answering.
      if (res.headersSent) return void res.destroy();
      res.writeHead(503, { "content-type": "text/plain", "content-length": Buffer.byteLength(UNAVAILABLE_BODY) });
      res.end(UNAVAILABLE_BODY);
      res.on("finish", () => finish(503));
    });
    req.on("error", () => up.destroy());
    req.pipe(up);
    res.on("close", () => {
      if (!res.writableFinished) {
        up.destroy();
        if (!answered) finish(0);
      }
    });
  }

  /** Upgrade and CONNECT: checked like any request, then the app gets the head and the raw stream. */
  function onRaw(req: IncomingMessage, sock: Socket, head: Buffer): void {
    const c = conns.get(sock);
    if (c === undefined) return void sock.destroy();
    const started = performance.now();
    const log = (status: number): void => record(c, req, status, started, undefined);
    if (!allowed(c, req)) {
      deps.metrics.denied();
      log(403);
      sock.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${DENIED_BODY.length}\r\nconnection: close\r\n\r\n${DENIED_BODY}`);
      return;
    }
    raw.add(sock);
    sock.setTimeout(0);
    void (async () => {
      const app = await dialApp({ app: c.app, timeoutMs: c.localConnectTimeoutMs, signal: c.signal, abortReason: () => "shutdown" as const });
      if (!app.ok) {
        log(503);
        raw.delete(sock);
        sock.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
      }
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      app.value.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length > 0) app.value.write(head);
      log(101);
      const r = await pipe(sock as TLSSocket, app.value, { signal: c.signal, idleTimeoutMs: c.idleTimeoutMs, keepAliveMs: c.keepAliveMs });
      app.value.destroy();
      c.done(r.reason);
    })();
  }

  return {
    serve(tls, conn) {
      return new Promise<PipeCloseReason>((resolve) => {
        let settled = false;
        const done = (r: PipeCloseReason): void => {
          if (settled) return;
          settled = true;
          open.delete(tls);
          conn.signal.removeEventListener("abort", onAbort);
          resolve(r);
        };
        const onAbort = (): void => {
          tls.destroy();
          done(conn.signal.reason === "revoked" ? "revoked" : "shutdown");
        };
        conn.signal.addEventListener("abort", onAbort, { once: true });
        let error: NodeJS.ErrnoException | undefined;
        tls.on("error", (err: NodeJS.ErrnoException) => (error ??= err));
        tls.on("close", () => {
          // An upgraded socket's life ends in pipe(), which calls done itself.
          if (raw.has(tls)) return;
          done(error === undefined ? "done" : errorCloseReason(error, "client"));
        });
        // As on the layer-4 path: a client that vanished is found by keepalive (client_timeout).
        if (conn.keepAliveMs > 0) tls.setKeepAlive(true, conn.keepAliveMs);
        if (conn.idleTimeoutMs > 0) {
          tls.setTimeout(conn.idleTimeoutMs, () => {
            tls.destroy();
            done("idle_timeout");
          });
        }
        conns.set(tls, { ...conn, done });
        open.set(tls, { inflight: 0 });
        // Half-close is the HTTP server's to handle: a client's FIN ends the connection after the last answer.
        tls.allowHalfOpen = false;
        ensureServer().emit("connection", tls);
      });
    },
    drain() {
      draining = true;
      for (const [sock, state] of open) if (state.inflight === 0 && !raw.has(sock)) sock.end();
    },
    close() {
      agent.destroy();
      server?.close();
    },
  };
}

/** A flat raw header list with the hop-by-hop fields removed (RFC 9110 §7.6.1). */
function forwardHeaders(raw: string[]): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "connection") continue;
    for (const t of raw[i + 1]!.split(",")) {
      const name = t.trim().toLowerCase();
      if (name !== "") (named ??= new Set()).add(name);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(k) || named?.has(k) === true) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
