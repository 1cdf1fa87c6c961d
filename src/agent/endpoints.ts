import { randomUUID } from "node:crypto";
// Every Consul endpoint the sidecar uses: watch specs and typed calls, returning the shapes of
// types.ts. Paths, methods and bodies follow spec §2–§7 exactly.
import { ConfigError } from "../net/index.js";
import type { AgentClient, AgentRequest } from "./client.js";
import { AgentError } from "./errors.js";
import {
  parseAclPolicy,
  parseAgentSelf,
  parseAgentService,
  parseAgentServices,
  parseCheckNotes,
  parseAuthorizeResult,
  parseCaRoots,
  parseHealthEntries,
  parseIntentionCheck,
  parseIntentionMatch,
  parseLeafCert,
  parsePreparedQueryNodes,
  parseTokenInfo,
} from "./parse.js";
import type {
  AgentSelfInfo,
  AgentService,
  AuthorizeResult,
  CaRoots,
  HealthEntry,
  Intention,
  LeafCert,
  PolicyInfo,
  TokenInfo,
} from "./types.js";
import type { WatchSpec } from "./watch.js";

const seg = encodeURIComponent;

/** Blocking watch of the CA roots (spec §2). */
export const caRootsWatch: WatchSpec<CaRoots> = {
  name: "roots",
  path: "/v1/agent/connect/ca/roots",
  endpoint: "/v1/agent/connect/ca/roots",
  mode: "index",
  parse: parseCaRoots,
};

/** Blocking watch of the leaf certificate for a service NAME (spec §3). */
export function leafWatch(service: string): WatchSpec<LeafCert> {
  return {
    name: "leaf",
    path: `/v1/agent/connect/ca/leaf/${seg(service)}`,
    endpoint: "/v1/agent/connect/ca/leaf/:service",
    mode: "index",
    parse: parseLeafCert,
  };
}

/** Hash-blocking watch of a local service registration, e.g. the proxy's own (spec §6.5, §9.2). */
export function agentServiceWatch(serviceId: string): WatchSpec<AgentService> {
  return {
    name: "agent-service",
    path: `/v1/agent/service/${seg(serviceId)}`,
    endpoint: "/v1/agent/service/:id",
    mode: "hash",
    parse: (body) => parseAgentService(body),
  };
}

/** Blocking watch of the passing mesh endpoints of a service (spec §7.1, `passing=1`). */
export function healthConnectWatch(service: string, opts: { datacenter?: string } = {}): WatchSpec<HealthEntry[]> {
  const query: Record<string, string> = { passing: "1" };
  if (opts.datacenter) query.dc = opts.datacenter;
  return {
    name: "health-connect",
    path: `/v1/health/connect/${seg(service)}`,
    endpoint: "/v1/health/connect/:service",
    query,
    mode: "index",
    parse: (body) => parseHealthEntries(body),
  };
}

/** Blocking watch of the intentions that apply to a destination, highest precedence first (spec §5.3). */
export function intentionMatchWatch(destination: string): WatchSpec<Intention[]> {
  return {
    name: "intentions",
    path: "/v1/connect/intentions/match",
    endpoint: "/v1/connect/intentions/match",
    query: { by: "destination", name: destination },
    mode: "index",
    parse: (body) => parseIntentionMatch(body, destination),
  };
}

/** Asks the agent whether `clientCertUri` may connect to `target` (spec §4). Throws AgentError. */
export async function authorize(
  agent: AgentClient,
  req: { target: string; clientCertUri: string; clientCertSerial: string },
  signal?: AbortSignal,
): Promise<AuthorizeResult> {
  const res = await agent.request(
    withSignal(
      {
        method: "POST",
        path: "/v1/agent/connect/authorize",
        endpoint: "/v1/agent/connect/authorize",
        body: { Target: req.target, ClientCertURI: req.clientCertUri, ClientCertSerial: req.clientCertSerial },
      },
      signal,
    ),
  );
  return parsed("POST /v1/agent/connect/authorize", () => parseAuthorizeResult(res.body));
}

/** One local service registration; unknown ID → AgentError("not_found") (spec §6.5). */
export async function getAgentService(agent: AgentClient, id: string, signal?: AbortSignal): Promise<AgentService> {
  const path = `/v1/agent/service/${seg(id)}`;
  const res = await agent.request(withSignal({ method: "GET", path, endpoint: "/v1/agent/service/:id" }, signal));
  return parsed(`GET ${path}`, () => parseAgentService(res.body));
}

/** All local services, keyed by ID, optionally filtered by a go-bexpr `filter` (spec §6.6). Throws AgentError. */
export async function listAgentServices(
  agent: AgentClient,
  opts: { filter?: string } = {},
  signal?: AbortSignal,
): Promise<Map<string, AgentService>> {
  const req: AgentRequest = { method: "GET", path: "/v1/agent/services", endpoint: "/v1/agent/services" };
  if (opts.filter !== undefined) req.query = { filter: opts.filter };
  const res = await agent.request(withSignal(req, signal));
  return parsed("GET /v1/agent/services", () => parseAgentServices(res.body));
}

/**
 * The sidecar proxy of a service ID, as `consul connect proxy -sidecar-for` finds it (spec §6.6):
 * the single connect-proxy whose Proxy.DestinationServiceID equals `serviceId` ignoring case.
 * None → AgentError("not_found", "No sidecar proxy registered for <id>"); several → ConfigError.
 */
export async function findSidecarFor(agent: AgentClient, serviceId: string, signal?: AbortSignal): Promise<AgentService> {
  const services = await listAgentServices(agent, {}, signal);
  const wanted = serviceId.toLowerCase();
  const matches: AgentService[] = [];
  for (const svc of services.values()) {
    if (svc.kind === "connect-proxy" && svc.proxy && svc.proxy.destinationServiceId.toLowerCase() === wanted) matches.push(svc);
  }
  const [only] = matches;
  if (only === undefined) throw new AgentError("not_found", `No sidecar proxy registered for ${serviceId}`);
  if (matches.length > 1) {
    throw new ConfigError(
      "sidecar-for",
      `More than one sidecar proxy registered for ${serviceId}.\n` +
        `    Start proxy with -proxy-id and one of the following IDs: ${matches.map((s) => s.id).join(", ")}`,
    );
  }
  return only;
}

/** Registers (or replaces) a local service; `def` is Consul's registration JSON (spec §6.1). Throws AgentError. */
export async function registerService(agent: AgentClient, def: unknown, signal?: AbortSignal): Promise<void> {
  await agent.request(
    withSignal({ method: "PUT", path: "/v1/agent/service/register", endpoint: "/v1/agent/service/register", body: def }, signal),
  );
}

/** Deregisters a local service by ID; unknown ID → AgentError("not_found") (spec §6.4). */
export async function deregisterService(agent: AgentClient, id: string, signal?: AbortSignal): Promise<void> {
  await agent.request(
    withSignal(
      { method: "PUT", path: `/v1/agent/service/deregister/${seg(id)}`, endpoint: "/v1/agent/service/deregister/:id" },
      signal,
    ),
  );
}

/** The agent's check ID for a service's maintenance mode (Consul's serviceMaintCheckID). */
export function serviceMaintenanceCheckId(serviceId: string): string {
  return `_service_maintenance:${serviceId}`;
}

/**
 * Puts a local service in maintenance mode (a critical check: discovery stops choosing it) with
 * `reason`, or takes it out (`reason` undefined). Unknown service → AgentError("not_found"). Enabling
 * it again keeps the first reason, as Consul does.
 */
export async function setServiceMaintenance(agent: AgentClient, serviceId: string, reason: string | undefined, signal?: AbortSignal): Promise<void> {
  const query: Record<string, string> = reason === undefined ? { enable: "false" } : { enable: "true", reason };
  await agent.request(
    withSignal(
      { method: "PUT", path: `/v1/agent/service/maintenance/${seg(serviceId)}`, endpoint: "/v1/agent/service/maintenance/:id", query },
      signal,
    ),
  );
}

/** The reason a local service is in maintenance mode, or undefined when it is not. Throws AgentError. */
export async function serviceMaintenanceReason(agent: AgentClient, serviceId: string, signal?: AbortSignal): Promise<string | undefined> {
  const res = await agent.request(withSignal({ method: "GET", path: "/v1/agent/checks", endpoint: "/v1/agent/checks" }, signal));
  return parsed("GET /v1/agent/checks", () => parseCheckNotes(res.body, serviceMaintenanceCheckId(serviceId)));
}

/** Sets a TTL check's status and output (spec §6.3); unknown check → AgentError("not_found"). */
export async function updateTtlCheck(
  agent: AgentClient,
  checkId: string,
  status: "passing" | "warning" | "critical",
  output = "",
  signal?: AbortSignal,
): Promise<void> {
  await agent.request(
    withSignal(
      {
        method: "PUT",
        path: `/v1/agent/check/update/${seg(checkId)}`,
        endpoint: "/v1/agent/check/update/:id",
        body: { Status: status, Output: output },
      },
      signal,
    ),
  );
}

/** Runs a prepared query for mesh endpoints, as the built-in resolver does (spec §7.3). Throws AgentError. */
export async function executePreparedQuery(
  agent: AgentClient,
  name: string,
  opts: { datacenter?: string } = {},
  signal?: AbortSignal,
): Promise<HealthEntry[]> {
  const path = `/v1/query/${seg(name)}/execute`;
  const query: Record<string, string> = { connect: "true", stale: "" };
  if (opts.datacenter) query.dc = opts.datacenter;
  const res = await agent.request(withSignal({ method: "GET", path, query, endpoint: "/v1/query/:name/execute" }, signal));
  return parsed(`GET ${path}`, () => parsePreparedQueryNodes(res.body));
}

// ---- one-shot reads (the doctor's): each GET once, no watch ----

/**
 * The CA roots (spec §2), with the agent's `X-Consul-Default-ACL-Policy` header (a hint only,
 * spec §11.5). Needs no ACL. Throws AgentError.
 */
export async function getCaRoots(agent: AgentClient, signal?: AbortSignal): Promise<{ roots: CaRoots; defaultAclPolicy: string | undefined }> {
  const { value, headers } = await readOnce(agent, caRootsWatch, signal);
  return { roots: value, defaultAclPolicy: headers["x-consul-default-acl-policy"] };
}

/** The leaf certificate for a service NAME with the client's token (spec §3); needs service:write. Throws AgentError. */
export async function getLeafCert(agent: AgentClient, service: string, signal?: AbortSignal): Promise<LeafCert> {
  return (await readOnce(agent, leafWatch(service), signal)).value;
}

/** The intentions whose destination matches `destination`, highest precedence first (spec §5.3). Throws AgentError. */
export async function getIntentionMatch(agent: AgentClient, destination: string, signal?: AbortSignal): Promise<Intention[]> {
  return (await readOnce(agent, intentionMatchWatch(destination), signal)).value;
}

/** Would `source` be allowed to connect to `destination` by intentions (spec §5.3)? Throws AgentError. */
export async function checkIntention(
  agent: AgentClient,
  req: { source: string; destination: string },
  signal?: AbortSignal,
): Promise<boolean> {
  const path = "/v1/connect/intentions/check";
  const res = await agent.request(
    withSignal({ method: "GET", path, endpoint: path, query: { source: req.source, destination: req.destination } }, signal),
  );
  return parsed(`GET ${path}`, () => parseIntentionCheck(res.body));
}

/**
 * The default intention decision for `destination` (the ACL default policy, or
 * default_intention_policy): the check for a source named `<asker>-probe-<random>`, which no
 * intention names. Only meaningful when no `*` intention covers the destination. Throws AgentError.
 */
export function checkDefaultIntention(agent: AgentClient, destination: string, asker: string, signal?: AbortSignal): Promise<boolean> {
  return checkIntention(agent, { source: `${asker}-probe-${randomUUID()}`, destination }, signal);
}

/** The token the client presents (spec §11.2); 401 "ACL support disabled" when ACLs are off. Throws AgentError. */
export async function getTokenSelf(agent: AgentClient, signal?: AbortSignal): Promise<TokenInfo> {
  const path = "/v1/acl/token/self";
  const res = await agent.request(withSignal({ method: "GET", path, endpoint: path }, signal));
  return parseTokenInfo(res.body);
}

/** The audit fields of the agent's own configuration (spec §11.5); needs agent:read. Throws AgentError. */
export async function getAgentSelf(agent: AgentClient, signal?: AbortSignal): Promise<AgentSelfInfo> {
  const path = "/v1/agent/self";
  const res = await agent.request(withSignal({ method: "GET", path, endpoint: path }, signal));
  return parseAgentSelf(res.body);
}

/** One ACL policy and its rules (spec §11.4); needs acl:read. Throws AgentError. */
export async function getAclPolicy(agent: AgentClient, id: string, signal?: AbortSignal): Promise<PolicyInfo> {
  const res = await agent.request(withSignal({ method: "GET", path: `/v1/acl/policy/${seg(id)}`, endpoint: "/v1/acl/policy/:id" }, signal));
  return parseAclPolicy(res.body, id);
}

/** One GET of what a watch spec watches, answered at once (no index, hash or wait). */
async function readOnce<T>(agent: AgentClient, spec: WatchSpec<T>, signal?: AbortSignal): Promise<{ value: T; headers: Record<string, string> }> {
  const req: AgentRequest = { method: "GET", path: spec.path };
  if (spec.endpoint !== undefined) req.endpoint = spec.endpoint;
  if (spec.query !== undefined) req.query = { ...spec.query };
  const res = await agent.request(withSignal(req, signal));
  return { value: parsed(`GET ${spec.path}`, () => spec.parse(res.body)), headers: res.headers };
}

function withSignal(req: AgentRequest, signal: AbortSignal | undefined): AgentRequest {
  if (signal) req.signal = signal;
  return req;
}

/** Runs a parser, prefixing its field-naming error with the endpoint. */
function parsed<T>(endpoint: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new AgentError("bad_body", `${endpoint}: bad body: ${msg}`, { cause: err });
  }
}
