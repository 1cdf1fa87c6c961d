// What the doctor learns from the agent, gathered once, each answer kept as an outcome (never
// thrown) so every check can say exactly what it saw. The sidecar token usually lacks agent:read
// (spec §11.3), so each fact is read from the least-privileged place that holds it (spec §11.6).
// Consul JSON that src/agent does not parse (token/self, agent/self, policies) is read here, loosely:
// a missing field is "cannot tell", never an error.
import { randomUUID } from "node:crypto";
import {
  AgentError,
  findSidecarFor,
  getAgentService,
  parseCaRoots,
  parseIntentionMatch,
  parseLeafCert,
  type AgentClient,
  type AgentRequest,
  type AgentResponse,
  type AgentService,
  type CaRoots,
  type Intention,
  type LeafCert,
} from "../agent/index.js";
import { ConfigError, isLoopbackHost, parseHostPort } from "../net/index.js";
import type { DoctorIdentity } from "./types.js";

/** The answer to one question put to the agent. */
export type Outcome<T> =
  | { t: "ok"; value: T }
  | { t: "acl_disabled" } // 401 ACL support disabled (spec §11.6)
  | { t: "denied"; message: string } // 403 Permission denied: valid token, missing rights
  | { t: "acl_not_found"; message: string } // 403 ACL not found: the token is not valid here
  | { t: "error"; message: string };

export interface TokenInfo {
  accessorId: string;
  description: string;
  policies: Array<{ id: string; name: string }>;
  roles: Array<{ id: string; name: string }>;
  serviceIdentities: Array<{ serviceName: string; datacenters: string[] }>;
  nodeIdentities: Array<{ nodeName: string; datacenter: string }>;
  templatedPolicies: Array<{ templateName: string; name: string | undefined }>;
}

/** The audit fields of `/v1/agent/self` (spec §11.5); undefined = the agent did not say. */
export interface AgentSelfInfo {
  version: string | undefined;
  aclsEnabled: boolean | undefined;
  aclDefaultPolicy: string | undefined;
  rpcVerifyIncoming: boolean | undefined;
  rpcVerifyOutgoing: boolean | undefined;
  rpcVerifyServerHostname: boolean | undefined;
  httpAddrs: string[] | undefined;
  httpsAddrs: string[] | undefined;
  caProvider: string | undefined;
  sidecarMinPort: number | undefined;
  sidecarMaxPort: number | undefined;
  gossipEncrypted: string | undefined;
}

export interface PolicyInfo {
  id: string;
  name: string;
  rules: string;
}

/** What the sidecar runs as, read from its registration or static flags. */
export interface ProxyView {
  service: string;
  proxyId: string | undefined;
  /** undefined: no public listener (bind port 0). */
  bind: { host: string; port: number } | undefined;
  /** True when the port did not come from the agent's automatic range (static -listen or Config.bind_port). */
  portExplicit: boolean;
  app: { host: string; port: number } | { socketPath: string } | undefined;
}

export interface Evidence {
  roots: Outcome<CaRoots>;
  /** X-Consul-Default-ACL-Policy from a 2xx answer: a hint only (spec §11.5). */
  defaultPolicyHeader: string | undefined;
  tokenSelf: Outcome<TokenInfo>;
  agentSelf: Outcome<AgentSelfInfo>;
  /** True when agentSelf was read with the audit token, not the sidecar's. */
  agentSelfByAudit: boolean;
  proxy: ProxyView | undefined;
  leaf: Outcome<LeafCert> | undefined;
  /** GET leaf/<svc> WITHOUT a token: ok means the anonymous token has service:write. */
  anonymousLeaf: Outcome<true> | undefined;
  intentions: Outcome<Intention[]> | undefined;
  /** intentions/check for a source no intention names: the default decision. */
  intentionsDefault: Outcome<boolean> | undefined;
  policies: Map<string, Outcome<PolicyInfo>>;
}

/** Thrown by gatherIdentity when the sidecar to check cannot be found (exit 2). */
export class IdentityError extends Error {
  override name = "IdentityError";
}

/** Runs one agent call, turning every failure into an Outcome. */
export async function attempt<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { t: "ok", value: await fn() };
  } catch (err) {
    return outcomeOf(err);
  }
}

function outcomeOf(err: unknown): Exclude<Outcome<never>, { t: "ok" }> {
  if (err instanceof AgentError) {
    if (err.status === 401 && err.message.includes("ACL support disabled")) return { t: "acl_disabled" };
    if (err.code === "acl_denied") return { t: "denied", message: err.message };
    if (err.code === "acl_not_found") return { t: "acl_not_found", message: err.message };
    return { t: "error", message: err.message };
  }
  return { t: "error", message: err instanceof Error ? err.message : String(err) };
}

const raw = (agent: AgentClient, req: AgentRequest): Promise<AgentResponse> => agent.request(req);

/** GET roots (no ACL needed): proves the agent answers, and carries the default-policy header. */
export async function gatherRoots(agent: AgentClient): Promise<{ roots: Outcome<CaRoots>; header: string | undefined; unreachable: AgentError | undefined }> {
  try {
    const res = await raw(agent, { method: "GET", path: "/v1/agent/connect/ca/roots", endpoint: "/v1/agent/connect/ca/roots" });
    return { roots: await attempt(async () => parseCaRoots(res.body)), header: res.headers["x-consul-default-acl-policy"], unreachable: undefined };
  } catch (err) {
    if (err instanceof AgentError && err.code === "unreachable") return { roots: outcomeOf(err), header: undefined, unreachable: err };
    return { roots: outcomeOf(err), header: undefined, unreachable: undefined };
  }
}

/** Resolves who the sidecar is (spec §6.5, §6.6). Throws IdentityError with the agent's words. */
export async function gatherIdentity(agent: AgentClient, source: DoctorIdentity): Promise<ProxyView> {
  if (source.t === "static") {
    return {
      service: source.service,
      proxyId: undefined,
      bind: source.listen,
      portExplicit: source.listen !== undefined,
      app: source.app,
    };
  }
  let svc: AgentService;
  try {
    svc = source.t === "proxy-id" ? await getAgentService(agent, source.proxyId) : await findSidecarFor(agent, source.serviceId);
  } catch (err) {
    const what = source.t === "proxy-id" ? `proxy ${JSON.stringify(source.proxyId)}` : `the sidecar of ${JSON.stringify(source.serviceId)}`;
    const why = err instanceof Error ? err.message : String(err);
    const hint =
      err instanceof AgentError && (err.code === "acl_denied" || err.code === "acl_not_found")
        ? " (the token needs service:read on the proxy: give it the service identity)"
        : "";
    throw new IdentityError(`cannot resolve ${what}: ${why}${hint}`);
  }
  try {
    return proxyViewOf(svc);
  } catch (err) {
    throw new IdentityError(`registration ${JSON.stringify(svc.id)} cannot run as a sidecar: ${(err as Error).message}`);
  }
}

/**
 * The listener and app of a connect-proxy registration, read as the sidecar reads them (spec §9.2;
 * Config.bind_address / bind_port / local_service_address win). Throws ConfigError.
 */
export function proxyViewOf(svc: AgentService): ProxyView {
  if (svc.kind !== "connect-proxy" || svc.proxy === undefined) {
    throw new ConfigError("Kind", `service ${JSON.stringify(svc.id)} is not a connect proxy (Kind ${JSON.stringify(svc.kind)})`);
  }
  const p = svc.proxy;
  const cfg = p.config;
  const bindHost = typeof cfg.bind_address === "string" && cfg.bind_address !== "" ? cfg.bind_address : svc.address || "0.0.0.0";
  const bindPortCfg = typeof cfg.bind_port === "number" ? cfg.bind_port : typeof cfg.bind_port === "string" && /^\d+$/.test(cfg.bind_port) ? Number(cfg.bind_port) : undefined;
  const bindPort = bindPortCfg ?? svc.port;
  let app: ProxyView["app"];
  if (typeof cfg.local_service_address === "string" && cfg.local_service_address !== "") {
    app = parseHostPort(cfg.local_service_address, "Proxy.Config.local_service_address");
  } else if (p.localServiceSocketPath !== "") {
    app = { socketPath: p.localServiceSocketPath };
  } else if (p.localServicePort !== 0) {
    app = { host: p.localServiceAddress === "" ? "127.0.0.1" : stripBrackets(p.localServiceAddress), port: p.localServicePort };
  }
  return {
    service: p.destinationServiceName,
    proxyId: svc.id,
    bind: bindPort === 0 ? undefined : { host: stripBrackets(bindHost), port: bindPort },
    portExplicit: bindPortCfg !== undefined,
    app,
  };
}

function stripBrackets(h: string): string {
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/** `GET /v1/acl/token/self` (spec §11.2): 401 means ACLs are off (spec §11.6). */
export function gatherTokenSelf(agent: AgentClient): Promise<Outcome<TokenInfo>> {
  return attempt(async () => {
    const res = await raw(agent, { method: "GET", path: "/v1/acl/token/self", endpoint: "/v1/acl/token/self" });
    return parseTokenInfo(res.body);
  });
}

/** `GET /v1/agent/self` (spec §11.5); needs agent:read. */
export function gatherAgentSelf(agent: AgentClient): Promise<Outcome<AgentSelfInfo>> {
  return attempt(async () => {
    const res = await raw(agent, { method: "GET", path: "/v1/agent/self", endpoint: "/v1/agent/self" });
    return parseAgentSelf(res.body);
  });
}

/** The leaf for `service` with the given client's token (spec §3); needs service:write. */
export function gatherLeaf(agent: AgentClient, service: string): Promise<Outcome<LeafCert>> {
  return attempt(async () => {
    const res = await raw(agent, { method: "GET", path: `/v1/agent/connect/ca/leaf/${encodeURIComponent(service)}`, endpoint: "/v1/agent/connect/ca/leaf/:service" });
    return parseLeafCert(res.body);
  });
}

/** The intentions whose destination matches `service`, highest precedence first (spec §5.3). */
export function gatherIntentions(agent: AgentClient, service: string): Promise<Outcome<Intention[]>> {
  return attempt(async () => {
    const res = await raw(agent, {
      method: "GET",
      path: "/v1/connect/intentions/match",
      endpoint: "/v1/connect/intentions/match",
      query: { by: "destination", name: service },
    });
    return parseIntentionMatch(res.body, service);
  });
}

/** Would a caller that no intention names be allowed? Asks intentions/check with a random source (spec §5.3). */
export function gatherIntentionsDefault(agent: AgentClient, service: string): Promise<Outcome<boolean>> {
  return attempt(async () => {
    const res = await raw(agent, {
      method: "GET",
      path: "/v1/connect/intentions/check",
      endpoint: "/v1/connect/intentions/check",
      query: { source: `doctor-probe-${randomUUID().slice(0, 8)}`, destination: service },
    });
    const allowed = (res.body as { Allowed?: unknown } | undefined)?.Allowed;
    if (typeof allowed !== "boolean") throw new Error("intentions/check answer has no boolean Allowed");
    return allowed;
  });
}

/** One ACL policy's rules (spec §11.4); needs acl:read. */
export function gatherPolicy(agent: AgentClient, id: string): Promise<Outcome<PolicyInfo>> {
  return attempt(async () => {
    const res = await raw(agent, { method: "GET", path: `/v1/acl/policy/${encodeURIComponent(id)}`, endpoint: "/v1/acl/policy/:id" });
    const o = res.body as Record<string, unknown>;
    return { id, name: str(o?.Name), rules: str(o?.Rules) };
  });
}

export function parseTokenInfo(body: unknown): TokenInfo {
  const o = obj(body);
  const links = (v: unknown) => arr(v).map((l) => ({ id: str(obj(l).ID), name: str(obj(l).Name) }));
  return {
    accessorId: str(o.AccessorID),
    description: str(o.Description),
    policies: links(o.Policies),
    roles: links(o.Roles),
    serviceIdentities: arr(o.ServiceIdentities).map((s) => ({
      serviceName: str(obj(s).ServiceName),
      datacenters: arr(obj(s).Datacenters).map(str),
    })),
    nodeIdentities: arr(o.NodeIdentities).map((n) => ({ nodeName: str(obj(n).NodeName), datacenter: str(obj(n).Datacenter) })),
    templatedPolicies: arr(o.TemplatedPolicies).map((tp) => {
      const vars = obj(obj(tp).TemplateVariables);
      const name = vars.name ?? vars.Name; // responses write the key in lowercase (spec §11.2)
      return { templateName: str(obj(tp).TemplateName), name: typeof name === "string" ? name : undefined };
    }),
  };
}

export function parseAgentSelf(body: unknown): AgentSelfInfo {
  const o = obj(body);
  const config = obj(o.Config);
  const debug = obj(o.DebugConfig);
  const stats = obj(o.Stats);
  const resolver = obj(debug.ACLResolverSettings);
  // spec §11.5: since 1.12 under TLS.InternalRPC; before, top-level Verify* keys
  const rpc = debug.TLS !== undefined ? obj(obj(debug.TLS).InternalRPC) : debug;
  const aclStat = optStr(obj(stats.consul).acl);
  return {
    version: optStr(config.Version),
    aclsEnabled: optBool(debug.ACLsEnabled) ?? optBool(resolver.ACLsEnabled) ?? (aclStat === undefined ? undefined : aclStat !== "disabled"),
    aclDefaultPolicy: optStr(resolver.ACLDefaultPolicy),
    rpcVerifyIncoming: optBool(rpc.VerifyIncoming),
    rpcVerifyOutgoing: optBool(rpc.VerifyOutgoing),
    rpcVerifyServerHostname: optBool(rpc.VerifyServerHostname),
    httpAddrs: Array.isArray(debug.HTTPAddrs) ? debug.HTTPAddrs.map(str) : undefined,
    httpsAddrs: Array.isArray(debug.HTTPSAddrs) ? debug.HTTPSAddrs.map(str) : undefined,
    caProvider: optStr(debug.ConnectCAProvider),
    sidecarMinPort: optNum(debug.ConnectSidecarMinPort),
    sidecarMaxPort: optNum(debug.ConnectSidecarMaxPort),
    gossipEncrypted: optStr(obj(stats.serf_lan).encrypted),
  };
}

/** True when a `tcp://ip:port` / `unix:///path` listener address of DebugConfig is on this host only. */
export function isLocalListener(addr: string): boolean {
  if (addr.startsWith("unix://")) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:]+):\d+$/.exec(addr);
  return m !== null && isLoopbackHost(m[1]!);
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}
function optStr(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
function optBool(v: unknown): boolean | undefined {
  return typeof v === "boolean" ? v : undefined;
}
function optNum(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}
