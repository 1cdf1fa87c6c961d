// A small mesh for end-to-end tests: an in-process dev agent with its own sidecar port range,
// echo apps on loopback, services registered with Connect.SidecarService, and sidecars run with
// runSidecar in-process. Everything binds port 0 (or a port just taken from the OS) and is
// stopped by t.after.
import { once } from "node:events";
import { createServer, connect, type Server, type Socket } from "node:net";
import type { TestContext } from "node:test";
import { Registry } from "prom-client";
import { createAgentClient, registerService, resolveAgentConfig, type AgentClient } from "../../src/agent/index.js";
import { startDevAgent, type DevAgent } from "../../src/dev-agent/index.js";
import { createLogger, createMetrics, type Logger, type Metrics } from "../../src/ops/index.js";
import { runSidecar, type Sidecar, type SidecarOptions, type ProxySource } from "../../src/sidecar/index.js";
import { pickFreePort as freePort } from "../../src/net/index.js";
import { leaseSidecarRange } from "../support/ports.js";

export interface Mesh {
  agent: DevAgent;
  /** A client holding the management token. */
  mgmt: AgentClient;
  /** Runs `fn` at teardown, before the agent stops, in reverse order of deferral. */
  defer(fn: () => Promise<unknown> | unknown): void;
}

export interface MeshOptions {
  aclsEnabled?: boolean;
  /** The dev agent's leaf lifetime (short: leaves renew during the test). */
  leafCertTtlMs?: number;
  /** After a root rotation, leaves are reissued within this (default 30 s, as Consul). */
  leafReissueWindowMs?: number;
}

/** Starts a dev agent (ACLs off unless asked, default allow) with a sidecar port range leased for this test. */
export async function startMesh(t: TestContext, opts: MeshOptions = {}): Promise<Mesh> {
  const range = await leaseSidecarRange(t);
  const agent = await startDevAgent({
    httpAddr: "127.0.0.1:0",
    aclsEnabled: opts.aclsEnabled ?? false,
    aclDefaultPolicy: opts.aclsEnabled ? "deny" : "allow",
    sidecarMinPort: range.min,
    sidecarMaxPort: range.max,
    ...(opts.leafCertTtlMs !== undefined ? { leafCertTtlMs: opts.leafCertTtlMs } : {}),
    ...(opts.leafReissueWindowMs !== undefined ? { leafReissueWindowMs: opts.leafReissueWindowMs } : {}),
  });
  const mgmt = createAgentClient(resolveAgentConfig({ httpAddr: agent.address, token: agent.managementToken }, {}), {
    log: quietLogger(),
  });
  const deferred: Array<() => Promise<unknown> | unknown> = [];
  t.after(async () => {
    for (const fn of deferred.reverse()) await fn();
    await mgmt.close();
    await agent.stop();
  });
  return { agent, mgmt, defer: (fn) => void deferred.push(fn) };
}

export function quietLogger() {
  return createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent", json: true });
}

export interface EchoApp {
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** A TCP echo server on loopback (half-close aware). */
export async function startEchoApp(t: TestContext): Promise<EchoApp> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    s.pipe(s);
  });
  server.listen({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }));
  t.after(close);
  return { port, server, close };
}

/** A port free now, to bind a moment later (pickFreePort: below the ephemeral range). */
export { freePort };

export interface AppRegistration {
  name: string;
  appPort: number;
  sidecarPort?: number;
  upstreams?: Array<{ DestinationName: string; LocalBindPort: number; Config?: Record<string, unknown> }>;
  proxyConfig?: Record<string, unknown>;
}

/** Registers `name` with a sidecar (ID `<name>-sidecar-proxy`); returns the sidecar's port. */
export async function registerApp(mesh: Mesh, r: AppRegistration): Promise<number> {
  const sidecarPort = r.sidecarPort ?? (await freePort());
  await registerService(mesh.mgmt, {
    Name: r.name,
    ID: r.name,
    Address: "127.0.0.1",
    Port: r.appPort,
    Connect: {
      SidecarService: {
        Port: sidecarPort,
        // The alias check only: the default TCP check starts critical until its next 10 s probe.
        Checks: [{ Name: `alias ${r.name}`, AliasService: r.name }],
        Proxy: {
          ...(r.upstreams ? { Upstreams: r.upstreams } : {}),
          ...(r.proxyConfig ? { Config: r.proxyConfig } : {}),
        },
      },
    },
  });
  return sidecarPort;
}

/**
 * A dev agent with two echo apps registered with sidecars: api, and web with an upstream to api on
 * `upstreamPort`. The sidecars are the caller's to start.
 */
export async function webToApiMesh(t: TestContext): Promise<{ mesh: Mesh; apiApp: EchoApp; webApp: EchoApp; upstreamPort: number }> {
  const mesh = await startMesh(t);
  const apiApp = await startEchoApp(t);
  const webApp = await startEchoApp(t);
  const upstreamPort = await freePort();
  await registerApp(mesh, { name: "api", appPort: apiApp.port });
  await registerApp(mesh, { name: "web", appPort: webApp.port, upstreams: [{ DestinationName: "api", LocalBindPort: upstreamPort }] });
  return { mesh, apiApp, webApp, upstreamPort };
}

export async function setIntention(mesh: Mesh, source: string, destination: string, action: "allow" | "deny"): Promise<void> {
  await mesh.mgmt.request({
    method: "PUT",
    path: "/v1/connect/intentions/exact",
    query: { source, destination },
    body: { Action: action },
  });
}

export interface RunningSidecar {
  sidecar: Sidecar;
  metrics: Metrics;
}

/** Runs a sidecar in-process against the mesh's agent; closed (drain 0) by t.after. */
export async function startSidecar(
  t: TestContext,
  mesh: Mesh,
  source: ProxySource,
  overrides: Partial<SidecarOptions> & { token?: string; waitReady?: boolean; log?: Logger } = {},
): Promise<RunningSidecar> {
  const metrics = createMetrics(new Registry(), { processMetrics: false });
  const { token, waitReady, log, ...rest } = overrides;
  const opts: SidecarOptions = {
    source,
    agent: resolveAgentConfig({ httpAddr: mesh.agent.address, token: token ?? mesh.agent.managementToken }, {}),
    metricsAddr: { host: "127.0.0.1", port: 0 },
    metricsAddrExplicit: true,
    drainTimeoutMs: 0,
    allowNonLoopbackApp: false,
    logConnections: false,
    revokeLive: true,
    authzMaxStaleMs: 600_000,
    maxConns: undefined,
    idleTimeoutMs: undefined,
    ...rest,
  };
  const sidecar = await runSidecar(opts, { log: log ?? quietLogger(), metrics, now: Date.now });
  mesh.defer(() => sidecar.close(0));
  if (waitReady !== false) await sidecar.ready;
  return { sidecar, metrics };
}

/** Connects to 127.0.0.1:port; an end from the far side closes the socket (no half-open). */
export async function dial(port: number): Promise<Socket> {
  const s = connect({ host: "127.0.0.1", port });
  await once(s, "connect");
  return s;
}

/** Writes `text` and resolves with the first `text.length` bytes read back. */
export function echo(sock: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (b: Buffer): void => {
      got += b.toString();
      if (got.length >= text.length) {
        cleanup();
        resolve(got);
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`connection ended after ${JSON.stringify(got)}`));
    };
    const cleanup = (): void => {
      sock.off("data", onData).off("end", onEnd).off("close", onEnd).off("error", onEnd);
    };
    sock.on("data", onData).on("end", onEnd).on("close", onEnd).on("error", onEnd);
    sock.write(text);
  });
}

export { closed } from "../sockets.js";

/** Parses Prometheus text: `name{a="b",c="d"}` (labels sorted) → value. */
export async function scrape(adminUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${adminUrl}/metrics`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = (m[2] ?? "")
      .split(/,(?=\w+=")/)
      .filter(Boolean)
      .sort()
      .join(",");
    out.set(labels ? `${m[1]}{${labels}}` : m[1]!, Number(m[3]));
  }
  return out;
}

/** Sum of every series of `name` whose labels include all of `match` (e.g. 'listener="public"'). */
export function sumMetric(series: Map<string, number>, name: string, ...match: string[]): number {
  let sum = 0;
  for (const [k, v] of series) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    if (match.every((m) => k.includes(m))) sum += v;
  }
  return sum;
}
