// The sidecar's one admin HTTP server: /metrics (Prometheus), /live, /ready and /status.
// It never proxies traffic and holds no secrets; it defaults to loopback (the CLI decides).
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import { formatHostPort } from "../net/index.js";
import { describeReadiness, type Readiness, type SidecarStatus } from "./status.js";

// node:http through getBuiltinModule, not `import`: an ESM import of node:http reads every export
// for its module namespace, and http.WebSocket (and friends) is a getter that loads Node's bundled
// undici, 75 built-in modules a sidecar never runs (+13 MB of RSS and ~85 ms in a bare process).
const { createServer } = process.getBuiltinModule("node:http");

export interface AdminServerOptions {
  bind: { host: string; port: number };
  registry: Registry;
  readiness(): Readiness;
  status(): SidecarStatus;
}

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
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
  }
  switch (path) {
    case "/metrics": {
      const body = await opts.registry.metrics();
      return send(res, 200, opts.registry.contentType, body);
    }
    case "/live":
      return send(res, 200, "text/plain; charset=utf-8", "ok\n");
    case "/ready": {
      const r = opts.readiness();
      return send(res, r.t === "ready" ? 200 : 503, "text/plain; charset=utf-8", `${describeReadiness(r, deps.now())}\n`);
    }
    case "/status":
      return send(res, 200, "application/json", `${JSON.stringify(opts.status(), null, 2)}\n`);
    default:
      return send(res, 404, "text/plain; charset=utf-8", "not found: try /metrics, /ready, /live or /status\n");
  }
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
