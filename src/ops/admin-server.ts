// The sidecar's one admin HTTP server: /metrics (Prometheus), /live, /ready, /status, and the
// lifecycle endpoints an orchestrator's hooks call (/graceful_startup, /graceful_shutdown).
// It never proxies traffic and holds no secrets; it defaults to loopback (the CLI decides).
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { formatHostPort } from "../net/index.js";
import { describeReadiness, type Readiness, type SidecarStatus } from "./status.js";

// node:http through getBuiltinModule, not `import`: an ESM import of node:http reads every export
// for its module namespace, and http.WebSocket (and friends) is a getter that loads Node's bundled
// undici, 75 built-in modules a sidecar never runs (+13 MB of RSS and ~85 ms in a bare process).
const { createServer } = process.getBuiltinModule("node:http");

/** What /metrics serves: the exposition text, made at each scrape, and its content type (createMetrics() is one). */
export interface MetricsSource {
  readonly contentType: string;
  scrape(): Promise<string>;
}

export interface AdminServerOptions {
  bind: { host: string; port: number };
  metrics: MetricsSource;
  readiness(): Readiness;
  status(): SidecarStatus;
  lifecycle?: AdminLifecycle;
}

/** What the lifecycle endpoints do; paths as consul-dataplane's -graceful-shutdown-path / -graceful-startup-path. */
export interface AdminLifecycle {
  shutdownPath: string;
  startupPath: string;
  /** Begins the graceful shutdown, as SIGTERM does. Idempotent. */
  requestShutdown(): void;
  /**
   * Resolves "settled" once the start has succeeded or failed (or a shutdown began), "grace_over" when
   * the startup grace period ran out first, "aborted" when `signal` (the caller went away) aborts first.
   */
  untilStarted(signal: AbortSignal): Promise<"settled" | "grace_over" | "aborted">;
}

// A GET too: a Kubernetes preStop httpGet hook can only send GET (consul-dataplane takes any method).
const SHUTDOWN_METHODS = new Set(["GET", "PUT", "POST"]);

export interface AdminServer {
  /** The bound address (the real port when bound to port 0). */
  address(): { host: string; port: number };
  /** "http://host:port" of the bound address. */
  url(): string;
  /** Stops accepting and ends keep-alive connections (scrapes are short). Idempotent. */
  close(): Promise<void>;
}

export interface AdminServerDeps {
  log: Logger;
  now: () => number;
}

/** Binds the admin server; rejects (EADDRINUSE, EACCES…) when the address cannot be bound. */
export async function startAdminServer(opts: AdminServerOptions, deps: AdminServerDeps): Promise<AdminServer> {
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    void handle(req, res, opts, deps).catch((err: unknown) => {
      deps.log.error({ err, path: req.url }, "admin request failed");
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    });
  });
  await listen(server, opts.bind);
  const info = server.address() as AddressInfo;
  const bound = { host: info.address, port: info.port };
  let closing: Promise<void> | undefined;
  return {
    address: () => bound,
    url: () => `http://${formatHostPort(bound.host, bound.port)}`,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: AdminServerOptions, deps: AdminServerDeps): Promise<void> {
  const path = (req.url ?? "/").split("?", 1)[0];
  const lifecycle = opts.lifecycle;
  if (lifecycle !== undefined && path === lifecycle.shutdownPath) {
    if (!SHUTDOWN_METHODS.has(req.method ?? "")) {
      res.setHeader("Allow", "GET, PUT, POST");
      return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
    }
    deps.log.info({ path, method: req.method }, "graceful shutdown requested over HTTP");
    lifecycle.requestShutdown();
    return send(res, 200, "text/plain; charset=utf-8", "shutting down gracefully\n");
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
  }
  switch (path) {
    case "/metrics": {
      const body = await opts.metrics.scrape();
      return send(res, 200, opts.metrics.contentType, body);
    }
    case "/live":
      return send(res, 200, "text/plain; charset=utf-8", "ok\n");
    case "/ready": {
      const r = opts.readiness();
      return send(res, r.t === "ready" ? 200 : 503, "text/plain; charset=utf-8", `${describeReadiness(r, deps.now())}\n`);
    }
    case "/status":
      return send(res, 200, "application/json", `${JSON.stringify(opts.status(), null, 2)}\n`);
    case lifecycle?.startupPath:
      return answerStartup(req, res, lifecycle!, opts, deps);
    default:
      return send(res, 404, "text/plain; charset=utf-8", "not found: try /metrics, /ready, /live or /status\n");
  }
}

/** Holds a post-start hook until the sidecar is ready: 200 when it is, 503 when it will not be. */
async function answerStartup(req: IncomingMessage, res: ServerResponse, lifecycle: AdminLifecycle, opts: AdminServerOptions, deps: AdminServerDeps): Promise<void> {
  const gone = new AbortController();
  res.once("close", () => gone.abort());
  const outcome = await lifecycle.untilStarted(gone.signal);
  if (outcome === "aborted") return;
  const r = opts.readiness();
  const text = describeReadiness(r, deps.now());
  if (r.t === "ready") return send(res, 200, "text/plain; charset=utf-8", `${text}\n`);
  // As consul-dataplane: once the startup grace period is over the app is not held any longer.
  if (outcome === "grace_over") return send(res, 200, "text/plain; charset=utf-8", `not ready after the startup grace period (${text}); not holding the app any longer\n`);
  return send(res, 503, "text/plain; charset=utf-8", `${text}\n`);
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function listen(server: Server, bind: { host: string; port: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen({ host: bind.host, port: bind.port }, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
