// The robustness rig: the real dev agent behind a fault-injecting HTTP stand-in, and the real cert
// store, authorizer and public listener composed on top of it (as test/listener/dev-agent.test.ts
// does), plus helpers for hostile raw peers. Everything binds port 0 and is torn down by t.after.
import assert from "node:assert/strict";
import { once } from "node:events";
import { readdirSync } from "node:fs";
import http from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { TestContext } from "node:test";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { createAgentClient, parseCaRoots, parseLeafCert, type AgentClient, type AgentConfig, type LeafCert } from "../../src/agent/index.js";
import { createAuthorizer, type Authorizer } from "../../src/authz/index.js";
import { createCertStore, type CertStore, type MaterialRejectReason } from "../../src/certs/index.js";
import { startDevAgent, type DevAgent } from "../../src/dev-agent/index.js";
import { startPublicListener, type PublicListener } from "../../src/listener/index.js";
import type { Metrics } from "../../src/ops/index.js";
import { captureLog, imbalance, metricValue, startApp, testMetrics, type TestApp } from "../listener/harness.js";

export { captureLog, closed, closedWith, dial, echo, roundTrip, startApp, metricValue } from "../listener/harness.js";

/** What the stand-in does with one request instead of forwarding it to the dev agent. */
export type FaultAction =
  | { t: "status"; status: number; body?: string }
  | { t: "json"; body: string | Buffer; status?: number } // raw text sent as application/json
  | { t: "truncate"; declaredBytes: number; body: string } // Content-Length larger than what is sent, then a reset
  | { t: "delay"; ms: number } // forwarded, but answered only after ms
  | { t: "hang" }; // never answered (until the client gives up)

export interface FaultRequest {
  method: string;
  path: string;
  query: URLSearchParams;
}

/**
 * An HTTP stand-in in front of the dev agent. `set(fn)` installs a fault rule; requests already
 * forwarded and waiting (blocking watches) are re-judged at once, so a fault reaches a watch now.
 */
export interface FaultProxy {
  address: string;
  port: number;
  set(rule: ((r: FaultRequest) => FaultAction | undefined) | undefined): void;
  /** Requests seen, per "METHOD /path". */
  seen: Map<string, number>;
  /** Resolves when a request matching `pred` arrives after this call. */
  next(pred: (r: FaultRequest) => boolean): Promise<FaultRequest>;
  close(): Promise<void>;
}

export async function startFaultProxy(t: TestContext, upstream: { host: string; port: number }): Promise<FaultProxy> {
  let rule: ((r: FaultRequest) => FaultAction | undefined) | undefined;
  const inflight = new Set<{ req: FaultRequest; res: http.ServerResponse; abort: () => void }>();
  const waiters = new Set<{ pred: (r: FaultRequest) => boolean; resolve: (r: FaultRequest) => void }>();
  const seen = new Map<string, number>();

  const apply = (action: FaultAction, req: FaultRequest, res: http.ServerResponse, body: Buffer): void => {
    switch (action.t) {
      case "status":
        res.writeHead(action.status, { "content-type": "text/plain" }).end(action.body ?? "injected failure");
        return;
      case "json":
        res.writeHead(action.status ?? 200, { "content-type": "application/json", "x-consul-index": "999999" }).end(action.body);
        return;
      case "truncate":
        res.writeHead(200, { "content-type": "application/json", "content-length": String(action.declaredBytes), "x-consul-index": "999999" });
        res.write(action.body, () => res.socket?.resetAndDestroy());
        return;
      case "delay":
        setTimeout(() => forward(req, res, body), action.ms).unref();
        return;
      case "hang":
        return; // the client's own timeout or abort ends it
    }
  };

  const forward = (req: FaultRequest, res: http.ServerResponse, body: Buffer, headers: http.IncomingHttpHeaders = {}): void => {
    const up = http.request(
      { host: upstream.host, port: upstream.port, method: req.method, path: `${req.path}?${req.query}`, headers: { ...headers, host: `${upstream.host}:${upstream.port}` } },
      (upRes) => {
        inflight.delete(entry);
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    const entry = { req, res, abort: () => up.destroy() };
    inflight.add(entry);
    up.on("error", () => {
      inflight.delete(entry);
      if (!res.headersSent) res.destroy();
    });
    res.on("close", () => {
      inflight.delete(entry);
      up.destroy();
    });
    up.end(body);
  };

  const server = http.createServer((inc, res) => {
    const chunks: Buffer[] = [];
    inc.on("data", (c: Buffer) => chunks.push(c));
    inc.on("end", () => {
      const url = new URL(inc.url ?? "/", "http://x");
      const req: FaultRequest = { method: inc.method ?? "GET", path: url.pathname, query: url.searchParams };
      const key = `${req.method} ${req.path}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      for (const w of [...waiters]) if (w.pred(req)) (waiters.delete(w), w.resolve(req));
      const body = Buffer.concat(chunks);
      const action = rule?.(req);
      if (action !== undefined) return apply(action, req, res, body);
      forward(req, res, body, inc.headers);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const close = async (): Promise<void> => {
    for (const e of inflight) e.abort();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  return {
    address: `127.0.0.1:${port}`,
    port,
    seen,
    set(next) {
      rule = next;
      if (next === undefined) return;
      for (const e of [...inflight]) {
        const action = next(e.req);
        if (action === undefined || action.t === "delay") continue;
        inflight.delete(e);
        e.abort();
        if (!e.res.headersSent) apply(action, e.req, e.res, Buffer.alloc(0));
      }
    },
    next(pred) {
      return new Promise((resolve) => waiters.add({ pred, resolve }));
    },
    close,
  };
}

export interface RigOptions {
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxConns?: number;
  logConnections?: boolean;
  app?: TestApp;
  /** Client-side timeout of the agent client (default 30 s). */
  requestTimeoutMs?: number;
}

export interface Rig {
  dev: DevAgent;
  proxy: FaultProxy;
  agent: AgentClient;
  certs: CertStore;
  authz: Authorizer;
  listener: PublicListener;
  port: number;
  app: TestApp;
  metrics: Metrics;
  cap: ReturnType<typeof captureLog>;
  /** Reasons the cert store refused an update, in order. */
  rejected: MaterialRejectReason[];
  /** A leaf for `service` from the dev agent (directly, not through the stand-in). */
  client(service: string): Promise<{ certPem: string; keyPem: string; uri: string; leaf: LeafCert }>;
  rootPems(): Promise<string[]>;
  setIntention(source: string, action: "allow" | "deny"): Promise<void>;
  closedCount(reason: string): Promise<number>;
}

/** Dev agent → fault stand-in → agent client → cert store + authorizer → public listener → echo app. */
export async function startRig(t: TestContext, opts: RigOptions = {}): Promise<Rig> {
  const dev = await startDevAgent();
  const [host, port] = dev.address.split(":");
  const proxy = await startFaultProxy(t, { host: host!, port: Number(port) });
  const cap = captureLog();
  const cfg = (p: number): AgentConfig => ({ address: { scheme: "http", host: "127.0.0.1", port: p, pathPrefix: "" }, tls: { verify: true }, token: dev.managementToken });
  const agent = createAgentClient(cfg(proxy.port), { log: cap.log }, opts.requestTimeoutMs === undefined ? undefined : { requestTimeoutMs: opts.requestTimeoutMs });
  const direct = createAgentClient(cfg(Number(port)), { log: cap.log });
  const rejected: MaterialRejectReason[] = [];
  const certs = createCertStore(agent, { service: "api" }, { log: cap.log, now: Date.now, onRejected: (r) => rejected.push(r) });
  const authz = createAuthorizer(agent, { log: cap.log, now: Date.now }, { target: "api", maxStaleMs: 60_000, revokeLive: true });
  const app = opts.app ?? (await startApp());
  const metrics = testMetrics();
  const listener = await startPublicListener(
    {
      bind: { host: "127.0.0.1", port: 0 },
      app: { host: "127.0.0.1", port: app.port },
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
      localConnectTimeoutMs: 1000,
      allowNonLoopbackApp: false,
      ...(opts.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: opts.idleTimeoutMs }),
      ...(opts.maxConns === undefined ? {} : { maxConns: opts.maxConns }),
    },
    { certs, authz, log: cap.log, metrics, logConnections: opts.logConnections ?? true },
  );
  t.after(async () => {
    listener.destroy();
    await listener.close();
    authz.close();
    certs.close();
    await agent.close();
    await direct.close();
    await app.close();
    await proxy.close();
    await dev.stop();
    assert.equal(await imbalance(metrics), 0, "accepted = closed + active");
  });
  const get = async (path: string): Promise<unknown> => (await direct.request({ method: "GET", path })).body;
  return {
    dev,
    proxy,
    agent,
    certs,
    authz,
    listener,
    port: listener.address().port,
    app,
    metrics,
    cap,
    rejected,
    async client(service) {
      const leaf = parseLeafCert(await get(`/v1/agent/connect/ca/leaf/${service}`));
      return { certPem: leaf.certPem, keyPem: leaf.privateKeyPem, uri: leaf.serviceUri, leaf };
    },
    async rootPems() {
      return parseCaRoots(await get("/v1/agent/connect/ca/roots")).roots.map((r) => r.rootCertPem);
    },
    async setIntention(source, action) {
      await direct.request({ method: "PUT", path: "/v1/connect/intentions/exact", query: { source, destination: "api" }, body: { Action: action } });
    },
    closedCount: (reason) => metricValue(metrics.connectionsClosed, { listener: "public", reason }),
  };
}

/** A plain TCP connection to the listener, connected; whatever the server sends is read and dropped. */
export async function rawConnect(port: number): Promise<Socket> {
  const s = netConnect({ host: "127.0.0.1", port, noDelay: true });
  s.on("error", () => {});
  s.resume(); // else a server's alert + FIN sit unread and 'close' never comes
  await once(s, "connect");
  return s;
}

/** A TLS client over a TCP socket we keep, so that the test can reset the TCP connection itself. */
export async function dialOverRaw(port: number, creds: { certPem: string; keyPem: string }, caPems: string[]): Promise<{ tls: TLSSocket; raw: Socket }> {
  const raw = netConnect({ host: "127.0.0.1", port, noDelay: true });
  raw.on("error", () => {});
  await once(raw, "connect");
  const sock = tlsConnect({ socket: raw, cert: creds.certPem, key: creds.keyPem, ca: caPems, checkServerIdentity: () => undefined });
  sock.on("error", () => {});
  await once(sock, "secureConnect");
  return { tls: sock, raw };
}

/** Number of open file descriptors of this process. */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

