// Shared pieces for the upstream tests: a real dev agent, a real cert store (or a material holder
// the test feeds), upstream instances that are small mTLS servers registered in the agent with TTL
// checks, an awaitable log, and plain TCP clients.
import { once } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import type { TestContext } from "node:test";
import { Registry } from "prom-client";
import {
  createAgentClient,
  parseCaRoots,
  parseLeafCert,
  resolveAgentConfig,
  type AgentClient,
  type CaRoots,
  type LeafCert,
  type Upstream,
} from "../../src/agent/index.js";
import { createCertStore, type CertStore } from "../../src/certs/index.js";
import { startDevAgent, type DevAgent } from "../../src/dev-agent/index.js";
import { createMetrics, type Metrics } from "../../src/ops/index.js";
import { createUpstreams, type UpstreamsDeps, type UpstreamsManager } from "../../src/upstream/index.js";
import { captureLog, type CapturedLog, type LogLine } from "../support/log-capture.js";

/** Our own service: the sidecar's identity when it dials upstreams. */
export const SELF = "web";

/** The upstream connection line (refused or closed) with this reason. */
export function connectionLine(cap: CapturedLog, reason: string): Promise<LogLine> {
  return cap.next(
    (l) => (l.msg === "upstream connection refused" || l.msg === "upstream connection closed") && l.reason === reason,
    `an upstream connection line with reason ${reason}`,
  );
}

/** A TLS server standing in for one upstream instance. */
export interface Instance {
  id: string;
  port: number;
  server: TlsServer;
  /** Handshaken connections so far. */
  accepts: number;
  /** isSessionReused() of each accepted connection, in order. */
  reused: boolean[];
  sockets: Set<TLSSocket>;
  /** Stops listening and cuts every connection (the instance "dies"); `reset`: with a TCP RST, as a crashed host's kernel answers. */
  kill(opts?: { reset?: boolean }): Promise<void>;
}

export interface InstanceOptions {
  /** Service the instance belongs to in the catalog. */
  service: string;
  id: string;
  /** Register as a connect-native service (default) or as a connect-proxy for `service`. */
  kind?: "native" | "proxy";
  /** Key and chain the server presents; default a dev-agent leaf for `service`. */
  leaf?: { key: string; certChain: string };
  /** Roots the server trusts for client certs; default the dev agent's. */
  ca?: string[];
  /** What the server does with a connection; default: echo, ending when the client ends. */
  handler?: (sock: TLSSocket) => void;
  /** The loopback address it listens on and is registered with; default 127.0.0.1. */
  host?: string;
}

export interface Mesh {
  dev: DevAgent;
  agent: AgentClient;
  log: ReturnType<typeof captureLog>;
  metrics: Metrics;
  /** PUTs to the dev agent with the management token; throws on a non-2xx answer. */
  put(path: string, body?: unknown): Promise<unknown>;
  get(path: string): Promise<unknown>;
  leafFor(service: string): Promise<LeafCert>;
  roots(): Promise<CaRoots>;
  startInstance(opts: InstanceOptions): Promise<Instance>;
  pass(checkId: string): Promise<void>;
  fail(checkId: string): Promise<void>;
  /** The real cert store for SELF (leaf and roots from the dev agent). */
  certs(): CertStore;
  /** An upstreams manager with these deps (defaults: the mesh's agent, SELF's cert store, the captured log). */
  upstreams(over?: Partial<UpstreamsDeps>): UpstreamsManager;
}

/** Starts a dev agent and everything around it; everything is torn down after the test. */
export async function startMesh(t: TestContext): Promise<Mesh> {
  const log = captureLog();
  const dev = await startDevAgent();
  t.after(() => dev.stop());
  const agent = createAgentClient(resolveAgentConfig({ httpAddr: dev.address, token: dev.managementToken }, {}), { log: log.log });
  t.after(() => agent.destroy());
  const metrics = createMetrics(new Registry(), { processMetrics: false });
  let certStore: CertStore | undefined;

  const call = async (method: "GET" | "PUT", path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(dev.httpUrl + path, {
      method,
      headers: { "X-Consul-Token": dev.managementToken },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text === "" ? undefined : (JSON.parse(text) as unknown);
  };

  const mesh: Mesh = {
    dev,
    agent,
    log,
    metrics,
    put: (path, body) => call("PUT", path, body),
    get: (path) => call("GET", path),
    leafFor: async (service) => parseLeafCert(await call("GET", `/v1/agent/connect/ca/leaf/${service}`)),
    roots: async () => parseCaRoots(await call("GET", "/v1/agent/connect/ca/roots")),

    async startInstance(o) {
      let leaf: { key: string; certChain: string };
      if (o.leaf !== undefined) leaf = o.leaf;
      else {
        const l = await mesh.leafFor(o.service);
        leaf = { key: l.privateKeyPem, certChain: l.certPem };
      }
      const ca = o.ca ?? (await mesh.roots()).roots.map((r) => r.rootCertPem);
      const sockets = new Set<TLSSocket>();
      const raw = new Set<Socket>(); // every TCP connection, handshaken or not
      const server = createTlsServer({ key: leaf.key, cert: leaf.certChain, ca, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true });
      const inst: Instance = {
        id: o.id,
        port: 0,
        server,
        accepts: 0,
        reused: [],
        sockets,
        async kill(opts = {}) {
          const closed = once(server, "close");
          server.close();
          if (opts.reset === true) for (const s of raw) s.resetAndDestroy();
          for (const s of sockets) s.destroy();
          for (const s of raw) s.destroy();
          await closed;
        },
      };
      server.on("secureConnection", (sock: TLSSocket) => {
        inst.accepts++;
        inst.reused.push(sock.isSessionReused());
        sockets.add(sock);
        sock.on("close", () => sockets.delete(sock));
        sock.on("error", () => {});
        (o.handler ?? echo)(sock);
      });
      server.on("tlsClientError", () => {});
      server.on("connection", (s: Socket) => {
        raw.add(s);
        s.on("close", () => raw.delete(s));
        s.on("error", () => {}); // crash() resets it
      });
      server.listen(0, o.host ?? "127.0.0.1");
      await once(server, "listening");
      inst.port = (server.address() as { port: number }).port;
      t.after(() => (server.listening ? inst.kill() : undefined));
      const check = { CheckID: `${o.id}-ttl`, TTL: "600s", Status: "passing" };
      if ((o.kind ?? "native") === "native") {
        await mesh.put("/v1/agent/service/register", { Name: o.service, ID: o.id, Address: o.host ?? "127.0.0.1", Port: inst.port, Connect: { Native: true }, Check: check });
      } else {
        await mesh.put("/v1/agent/service/register", {
          Kind: "connect-proxy", Name: `${o.service}-sidecar-proxy`, ID: o.id, Port: inst.port,
          Proxy: { DestinationServiceName: o.service, LocalServicePort: 1 }, Check: check,
        });
      }
      return inst;
    },

    pass: async (checkId) => void (await call("PUT", `/v1/agent/check/pass/${checkId}`)),
    fail: async (checkId) => void (await call("PUT", `/v1/agent/check/fail/${checkId}`)),

    certs() {
      if (certStore === undefined) {
        certStore = createCertStore(agent, { service: SELF }, { log: log.log, now: Date.now });
        const s = certStore;
        t.after(() => s.close());
      }
      return certStore;
    },

    upstreams(over = {}) {
      const m = createUpstreams({
        agent,
        certs: over.certs ?? mesh.certs(),
        log: log.log,
        metrics,
        localDatacenter: dev.datacenter,
        allowEphemeralPorts: true,
        ...over,
      });
      t.after(() => m.destroy());
      return m;
    },
  };
  return mesh;
}

/** Echo: every byte back, and end when the client ends. */
export function echo(sock: TLSSocket): void {
  sock.pipe(sock);
}

/** An upstream entry as the agent's parser would give it (spec §9.2 defaults), bound to port 0. */
export function upstream(name: string, over: Partial<Upstream> = {}): Upstream {
  return {
    destinationType: "service",
    destinationName: name,
    destinationNamespace: "default",
    datacenter: "",
    localBindAddress: "127.0.0.1",
    localBindPort: 0,
    localBindSocketPath: "",
    localBindSocketMode: "",
    config: {},
    ...over,
  };
}

/** The bound port of the listener for `name` (from status()). */
export function portOf(m: UpstreamsManager, name: string): number {
  const s = m.status().find((x) => x.name === name);
  if (s === undefined) throw new Error(`no upstream listener for ${name}`);
  return Number(s.bind.slice(s.bind.lastIndexOf(":") + 1));
}

/** A plain TCP client to a local upstream listener, half-open capable. */
export async function dial(port: number, host = "127.0.0.1"): Promise<Socket> {
  const s = netConnect({ port, host, allowHalfOpen: true });
  await once(s, "connect");
  return s;
}

/** A connection through the listener that has carried `msg` both ways (so it reached an instance), left open. */
export async function liveConnection(port: number, msg: string): Promise<Socket> {
  const s = await dial(port);
  s.setEncoding("utf8");
  s.write(msg);
  const [echoed] = (await once(s, "data")) as [string];
  if (echoed !== msg) throw new Error(`expected the echo ${JSON.stringify(msg)}, got ${JSON.stringify(echoed)}`);
  return s;
}

/** Writes `msg`, ends, and collects everything until the peer ends. */
export async function roundTrip(port: number, msg: string, host = "127.0.0.1"): Promise<string> {
  const s = await dial(port, host);
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  s.end(msg);
  await once(s, "end");
  s.destroy();
  return Buffer.concat(chunks).toString();
}

/** Resolves when `s` closes; returns the bytes it received. */
export async function closedWithData(s: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  s.on("error", () => {});
  s.on("end", () => s.end()); // a half-open client answers the FIN
  if (!s.closed) await once(s, "close");
  return Buffer.concat(chunks).toString();
}

/** Sum of a counter's values whose labels match. */
export async function counterValue(metric: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> }, labels: Record<string, string>): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}
