// What the doctor learns from the agent, gathered once, each answer kept as an outcome (never
// thrown) so every check can say exactly what it saw. The sidecar token usually lacks agent:read
// (spec §11.3), so each fact is read from the least-privileged place that holds it (spec §11.6).
// Every URL and every Consul JSON decode is src/agent's (its audit reads are loose: a missing field
// is "cannot tell", never an error); the registration is read by the sidecar's own reader
// (readProxyRegistration), so the doctor checks exactly what `proxy` would run.
import {
  AgentError,
  checkDefaultIntention,
  findSidecarFor,
  getAclPolicy,
  getAgentSelf,
  getAgentService,
  getCaRoots,
  getIntentionMatch,
  getLeafCert,
  getTokenSelf,
  readProxyRegistration,
  type AgentClient,
  type AgentSelfInfo,
  type AgentService,
  type AppAddress,
  type CaRoots,
  type Intention,
  type LeafCert,
  type ListenerProtocol,
  type PolicyInfo,
  type TokenInfo,
} from "../agent/index.js";
import { ConfigError } from "../net/index.js";
import type { DoctorIdentity } from "./types.js";

/** The answer to one question put to the agent. */
export type Outcome<T> =
  | { t: "ok"; value: T }
  | { t: "acl_disabled" } // 401 ACL support disabled (spec §11.6)
  | { t: "denied"; message: string } // 403 Permission denied: valid token, missing rights
  | { t: "acl_not_found"; message: string } // 403 ACL not found: the token is not valid here
  | { t: "error"; message: string };

/** What the sidecar runs as, read from its registration or static flags. */
export interface ProxyView {
  service: string;
  proxyId: string | undefined;
  /** undefined: no public listener (bind port 0). */
  bind: { host: string; port: number } | undefined;
  /** True when the port did not come from the agent's automatic range (static -listen or Config.bind_port). */
  portExplicit: boolean;
  app: AppAddress | undefined;
  /** The public listener's protocol: "http" enforces L7 intentions per request. */
  protocol: ListenerProtocol;
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

/** GET roots (no ACL needed): proves the agent answers, and carries the default-policy header. */
export async function gatherRoots(agent: AgentClient): Promise<{ roots: Outcome<CaRoots>; header: string | undefined; unreachable: AgentError | undefined }> {
  try {
    const { roots, defaultAclPolicy } = await getCaRoots(agent);
    return { roots: { t: "ok", value: roots }, header: defaultAclPolicy, unreachable: undefined };
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
      protocol: "tcp",
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
    if (!(err instanceof ConfigError)) throw err;
    throw new IdentityError(`registration ${JSON.stringify(svc.id)} cannot run as a sidecar: ${err.message}`);
  }
}

/** The listener and app of a connect-proxy registration, read by the sidecar's reader. Throws ConfigError. */
export function proxyViewOf(svc: AgentService): ProxyView {
  const { settings, bindPortExplicit } = readProxyRegistration(svc);
  return { service: settings.service, proxyId: settings.proxyId, bind: settings.bind, portExplicit: bindPortExplicit, app: settings.app, protocol: settings.protocol };
}

/** `GET /v1/acl/token/self` (spec §11.2): 401 means ACLs are off (spec §11.6). */
export function gatherTokenSelf(agent: AgentClient): Promise<Outcome<TokenInfo>> {
  return attempt(() => getTokenSelf(agent));
}

/** `GET /v1/agent/self` (spec §11.5); needs agent:read. */
export function gatherAgentSelf(agent: AgentClient): Promise<Outcome<AgentSelfInfo>> {
  return attempt(() => getAgentSelf(agent));
}

/** The leaf for `service` with the given client's token (spec §3); needs service:write. */
export function gatherLeaf(agent: AgentClient, service: string): Promise<Outcome<LeafCert>> {
  return attempt(() => getLeafCert(agent, service));
}

/** The intentions whose destination matches `service`, highest precedence first (spec §5.3). */
export function gatherIntentions(agent: AgentClient, service: string): Promise<Outcome<Intention[]>> {
  return attempt(() => getIntentionMatch(agent, service));
}

/** Would a caller that no intention names be allowed? Asks intentions/check with a random source (spec §5.3). */
export function gatherIntentionsDefault(agent: AgentClient, service: string): Promise<Outcome<boolean>> {
  return attempt(() => checkDefaultIntention(agent, service, "doctor"));
}

/** One ACL policy's rules (spec §11.4); needs acl:read. */
export function gatherPolicy(agent: AgentClient, id: string): Promise<Outcome<PolicyInfo>> {
  return attempt(() => getAclPolicy(agent, id));
}
