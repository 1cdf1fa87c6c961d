// The connect-sidecar path, deployed as a user would: an in-process dev agent (ACLs on, default
// deny), the services registered with `Connect.SidecarService` through its HTTP API, an allow
// intention client → server (and client → bulk), one service-identity token per sidecar, and each
// sidecar a child process of the real CLI (`cli.js proxy -sidecar-for <svc> …`) pinned to the proxies' CPUs.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import {
  createAgentClient,
  parseCaRoots,
  parseLeafCert,
  registerService,
  resolveAgentConfig,
  type AgentClient,
} from "../../src/agent/index.js";
import { startDevAgent, type DevAgent } from "../../src/dev-agent/index.js";
import { pickFreePort } from "../../src/net/index.js";
import type { ChildHandle, ProcessGroup } from "./children.js";
import { dial, HttpConn, requestBytes, type Target } from "./http-conn.js";

/** The CLI the bench runs: the bundle `npm run build` makes, which the installed command runs too. */
export const BUNDLED_CLI = fileURLToPath(new URL("../../bundle/cli.js", import.meta.url));

export interface Mesh {
  agent: DevAgent;
  mgmt: AgentClient;
  /** client → its upstream listeners; server and bulk → the apps. */
  sidecars: { client: ChildHandle; server: ChildHandle; bulk: ChildHandle };
  /** Each sidecar's admin server (http://host:port), as its "sidecar ready" line gives it. */
  admins: string[];
  /** The client sidecar's upstream listeners: HTTP (→ server) and raw TCP (→ bulk). */
  http: Target;
  bulk: Target;
  /**
   * A fresh sidecar for `service` (the start-up measurement): writes its token file once, picks a
   * free admin port, and returns how to launch it with the mesh's CLI and flags but
   * `-metrics-addr 127.0.0.1:<that port>`. The caller stops what it launches.
   */
  prepareSidecar(service: string): Promise<{ launch: () => ChildHandle; admin: Target }>;
  close(): Promise<void>;
}

/** PEMs of one service's leaf and of the trust roots, as the dev agent hands them out. */
export interface LeafPems { certPem: string; keyPem: string; caPem: string; serviceUri: string }

export interface MeshOptions {
  group: ProcessGroup;
  cliPath: string;
  cpus: string | undefined;
  app: { http: number; bulk: number };
  tmpDir: string;
  readyTimeoutMs: number;
}

const LOOPBACK = "127.0.0.1";

/** Registered with a sidecar but started by no mesh: fresh sidecars for it are timed from spawn to ready. */
export const STARTUP_SERVICE = "startup";

/** Starts the dev agent (in this process) and registers client, server, bulk and startup with their sidecars. */
export async function startAgentWithServices(app: { http: number; bulk: number }, opts: { serverUpstreamConfig?: Record<string, unknown> } = {}): Promise<{
  agent: DevAgent;
  mgmt: AgentClient;
  upstreamPorts: { http: number; bulk: number };
}> {
  const agent = await startDevAgent({ aclsEnabled: true, aclDefaultPolicy: "deny" });
  const log = pino({ level: "silent" });
  const mgmt = createAgentClient(resolveAgentConfig({ httpAddr: agent.address, token: agent.managementToken }, {}), { log });
  const upstreamPorts = { http: await pickFreePort(), bulk: await pickFreePort() };
  const sidecar = async (port: number, extra: object = {}): Promise<object> => ({
    Port: port,
    // A 1 s listening check: discovery returns passing instances only, and the default interval is 10 s.
    Checks: [{ Name: "Connect Sidecar Listening", TCP: `${LOOPBACK}:${port}`, Interval: "1s" }],
    ...extra,
  });
  await registerService(mgmt, {
    Name: "server", ID: "server", Address: LOOPBACK, Port: app.http,
    Connect: { SidecarService: await sidecar(await pickFreePort()) },
  });
  await registerService(mgmt, {
    Name: "bulk", ID: "bulk", Address: LOOPBACK, Port: app.bulk,
    Connect: { SidecarService: await sidecar(await pickFreePort()) },
  });
  await registerService(mgmt, {
    Name: STARTUP_SERVICE, ID: STARTUP_SERVICE, Address: LOOPBACK, Port: app.http,
    Connect: { SidecarService: await sidecar(await pickFreePort()) },
  });
  await registerService(mgmt, {
    Name: "client", ID: "client", Address: LOOPBACK, Port: await pickFreePort(),
    Connect: {
      SidecarService: await sidecar(await pickFreePort(), {
        Proxy: {
          Upstreams: [
            { DestinationName: "server", LocalBindAddress: LOOPBACK, LocalBindPort: upstreamPorts.http, ...(opts.serverUpstreamConfig ? { Config: opts.serverUpstreamConfig } : {}) },
            { DestinationName: "bulk", LocalBindAddress: LOOPBACK, LocalBindPort: upstreamPorts.bulk },
          ],
        },
      }),
    },
  });
  for (const destination of ["server", "bulk"]) {
    await mgmt.request({
      method: "PUT",
      path: "/v1/connect/intentions/exact",
      query: { source: "client", destination },
      body: { Action: "allow" },
    });
  }
  return { agent, mgmt, upstreamPorts };
}

/** A token holding only the service identity `name` (what a deployment gives each sidecar). */
async function serviceToken(mgmt: AgentClient, name: string): Promise<string> {
  const res = await mgmt.request({
    method: "PUT",
    path: "/v1/acl/token",
    body: { Description: `${name} sidecar (bench)`, ServiceIdentities: [{ ServiceName: name }] },
  });
  const secret = (res.body as { SecretID?: unknown } | undefined)?.SecretID;
  if (typeof secret !== "string") throw new Error("the dev agent's token answer has no SecretID");
  return secret;
}

/** Fetches `service`'s leaf and the roots from the dev agent. */
export async function fetchLeafPems(mgmt: AgentClient, service: string): Promise<LeafPems> {
  const leaf = parseLeafCert((await mgmt.request({ method: "GET", path: `/v1/agent/connect/ca/leaf/${service}` })).body);
  const roots = parseCaRoots((await mgmt.request({ method: "GET", path: "/v1/agent/connect/ca/roots" })).body);
  const caPem = roots.roots.flatMap((r) => [r.rootCertPem, ...r.intermediateCertPems]).map((p) => p.trim()).join("\n");
  return { certPem: leaf.certPem, keyPem: leaf.privateKeyPem, caPem: `${caPem}\n`, serviceUri: leaf.serviceUri };
}

const DROPPED_ENV = ["CONNECT_PROXY_ID", "CONNECT_SIDECAR_FOR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_ADDR"];

/** Spawns the three sidecars through the CLI and waits until traffic flows end to end through both upstreams. */
export async function startMesh(
  o: MeshOptions,
  base: { agent: DevAgent; mgmt: AgentClient; upstreamPorts: { http: number; bulk: number } },
): Promise<Mesh> {
  const env = { ...process.env };
  for (const k of DROPPED_ENV) delete env[k];
  const dir = join(o.tmpDir, "sidecar-tokens");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokenFiles = new Map<string, string>();
  const tokenFileFor = async (service: string): Promise<string> => {
    let file = tokenFiles.get(service);
    if (file === undefined) {
      file = join(dir, `${service}.token`);
      writeFileSync(file, `${await serviceToken(base.mgmt, service)}\n`, { mode: 0o600 });
      tokenFiles.set(service, file);
    }
    return file;
  };
  const spawnSidecar = (service: string, tokenFile: string, metricsPort: number): ChildHandle =>
    o.group.spawn({
      name: `${service}-sidecar`,
      cmd: process.execPath,
      args: [
        o.cliPath, "proxy",
        "-sidecar-for", service,
        "-http-addr", base.agent.address,
        "-token-file", tokenFile,
        "-log-connections=false",
        "-access-log=false", // HTTP mode (bench/http-mode.ts); haproxy logs nothing either
        "-metrics-addr", `${LOOPBACK}:${metricsPort}`,
        "-log-json",
        "-log-level", "info",
      ],
      cpus: o.cpus,
      env,
    });
  const started: ChildHandle[] = [];
  const http = { host: LOOPBACK, port: base.upstreamPorts.http };
  const bulkTarget = { host: LOOPBACK, port: base.upstreamPorts.bulk };
  let sidecars: { client: ChildHandle; server: ChildHandle; bulk: ChildHandle };
  let admins: string[];
  try {
    for (const service of ["server", "bulk", "client"]) started.push(spawnSidecar(service, await tokenFileFor(service), 0));
    const [server, bulk, client] = started as [ChildHandle, ChildHandle, ChildHandle];
    sidecars = { client, server, bulk };
    const readyAdmin = (line: string): string | undefined => (line.includes('"sidecar ready"') ? String((JSON.parse(line) as { admin: unknown }).admin) : undefined);
    admins = await Promise.all(started.map((s) => s.waitFor(readyAdmin, o.readyTimeoutMs)));
    await waitForHttp(http, o.readyTimeoutMs, () => `${client.tail()}\n${server.tail()}`);
    await waitForBulk(bulkTarget, o.readyTimeoutMs, () => `${client.tail()}\n${bulk.tail()}`);
  } catch (err) {
    await Promise.all(started.map((s) => s.stop(2000)));
    throw err;
  }
  const { client, server, bulk } = sidecars;
  return {
    agent: base.agent,
    mgmt: base.mgmt,
    sidecars: { client, server, bulk },
    admins,
    http,
    bulk: bulkTarget,
    prepareSidecar: async (service) => {
      const tokenFile = await tokenFileFor(service);
      const admin = { host: LOOPBACK, port: await pickFreePort(LOOPBACK) };
      return { launch: () => spawnSidecar(service, tokenFile, admin.port), admin };
    },
    close: async () => {
      await Promise.all([client, server, bulk].map((s) => s.stop(5000)));
    },
  };
}

/** Polls with one GET / until a 200 comes back through `t`; throws after timeoutMs with `context()`. */
export async function waitForHttp(t: Target, timeoutMs: number, context: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const conn = await HttpConn.open(t);
      const ok = await Promise.race([conn.request(requestBytes("/")), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
      conn.close();
      if (ok) return;
      last = "no 200 answer";
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no HTTP answer through ${t.host}:${t.port} within ${timeoutMs} ms (${last}); the proxies' last lines:\n${context()}`);
}

/** Polls with a 1-byte download until the bulk app answers through `t`. */
export async function waitForBulk(t: Target, timeoutMs: number, context: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const sock = await dial(t);
      const header = Buffer.alloc(9);
      header[0] = "D".charCodeAt(0);
      header.writeBigUInt64BE(1n, 1);
      const got = await new Promise<number>((resolve) => {
        let n = 0;
        const timer = setTimeout(() => resolve(-1), 2000);
        sock.on("data", (c: Buffer) => void (n += c.length));
        sock.on("close", () => {
          clearTimeout(timer);
          resolve(n);
        });
        sock.on("error", () => undefined);
        sock.write(header);
      });
      sock.destroy();
      if (got === 1) return;
      last = `got ${got} bytes`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no bulk answer through ${t.host}:${t.port} within ${timeoutMs} ms (${last}); the proxies' last lines:\n${context()}`);
}
