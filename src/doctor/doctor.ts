// `connect-sidecar doctor`: gathers evidence from the agent and this host once, then judges each
// item of the production checklist from it. Never writes to the agent: every request is a GET.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { createAgentClient, type AgentClient, type AgentConfig, type PolicyInfo } from "../agent/index.js";
import { ConfigError, isLoopbackHost } from "../net/index.js";
import {
  checkAclDefaultPolicy,
  checkAclEnabled,
  checkAnonymousWrite,
  checkIntentions,
  checkIntentionsDefault,
} from "./acl-checks.js";
import { checkCaProvider, checkCaRoots, checkLeaf, checkRootValidity } from "./ca-checks.js";
import {
  gatherAgentSelf,
  gatherIdentity,
  gatherIntentions,
  gatherIntentionsDefault,
  gatherLeaf,
  gatherPolicy,
  gatherRoots,
  gatherTokenSelf,
  IdentityError,
  type Outcome,
  type ProxyView,
} from "./evidence.js";
import { checkAppAddress, checkAppExposure, checkPublicPort, checkPublicPortBind, ownPublicListenerCheck } from "./host-checks.js";
import { readEphemeralPorts } from "./probe.js";
import { checkTokenFile, checkTokenManagement, checkTokenScope, GLOBAL_MANAGEMENT_POLICY_ID } from "./token-checks.js";
import {
  checkAgentHttpListeners,
  checkAgentRpcTls,
  checkGossipEncryption,
  judgeAgentTransport,
} from "./transport-checks.js";
import type { Check, DoctorDeps, DoctorFatal, DoctorOptions, DoctorReport, Verdict } from "./types.js";

const DEFAULT_PROBE_TIMEOUT_MS = 1_000;
/** A name that does not resolve in this long is judged as "not known to be loopback". */
const DNS_TIMEOUT_MS = 2_000;

/**
 * Runs every check against the live agent and this host. Resolves a report (never rejects for
 * what it finds); `fatal` is set when the agent cannot be reached, the sidecar's identity cannot
 * be resolved, or the agent settings are unusable: then the checks that needed them are absent.
 */
export async function runDoctor(opts: DoctorOptions, deps: DoctorDeps): Promise<DoctorReport> {
  const timeoutMs = opts.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const checks: Check[] = [];
  const owned: AgentClient[] = [];
  const clientDeps = { log: deps.log.child({ component: "doctor" }), now: deps.now };
  const make = (cfg: AgentConfig): AgentClient => {
    const c = createAgentClient(cfg, clientDeps, { requestTimeoutMs: 10_000 });
    owned.push(c);
    return c;
  };
  const tokenGiven = opts.agent.token !== "";
  const origin = originOf(opts.agent);
  const finish = (fatal: DoctorFatal | undefined, proxy: ProxyView | undefined): DoctorReport => report(origin, proxy, opts, checks, fatal, deps.now());

  try {
    let agent: AgentClient;
    let anonymous: AgentClient;
    let audit: AgentClient | undefined;
    try {
      agent = deps.agent ?? make(opts.agent);
      // spec §1.2: no token → the agent's default token, i.e. what any caller without one gets
      const { tokenFile: _ignored, ...noTokenFile } = opts.agent;
      anonymous = make({ ...noTokenFile, token: "" });
      audit = opts.auditToken ? make({ ...noTokenFile, token: opts.auditToken }) : undefined;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return finish({ reason: "config", message: `${err.field}: ${err.message}` }, undefined);
    }

    // What needs no agent: the link to it, and the token file.
    checks.push(judgeAgentTransport(opts.agent.address, opts.agent.tls, await resolveHost(opts.agent)));
    checks.push(checkTokenFile(opts.agent.tokenFile, tokenGiven));

    const rootsRes = await gatherRoots(agent);
    if (rootsRes.unreachable) {
      checks.unshift({
        id: "agent",
        step: "preflight",
        verdict: "FAIL",
        seen: `cannot reach the agent at ${origin}: ${rootsRes.unreachable.message}`,
        fix: "start the agent, or point -http-addr / CONSUL_HTTP_ADDR at it (unix:///path, https://host:8501 or 127.0.0.1:8500)",
      });
      return finish({ reason: "agent_unreachable", message: rootsRes.unreachable.message }, undefined);
    }

    let proxy: ProxyView | undefined;
    let fatal: DoctorFatal | undefined;
    try {
      proxy = await gatherIdentity(agent, opts.source);
    } catch (err) {
      if (!(err instanceof IdentityError)) throw err;
      fatal = { reason: "identity_unresolved", message: err.message };
    }
    const service = proxy?.service;

    const [tokenSelf, agentSelfOwn, leaf, anonymousLeaf, intentions, intentionsDefault] = await Promise.all([
      gatherTokenSelf(agent),
      gatherAgentSelf(audit ?? agent),
      service === undefined ? undefined : gatherLeaf(agent, service),
      service === undefined ? undefined : gatherLeaf(anonymous, service).then((o): Outcome<true> => (o.t === "ok" ? { t: "ok", value: true } : o)),
      service === undefined ? undefined : gatherIntentions(agent, service),
      service === undefined ? undefined : gatherIntentionsDefault(agent, service),
    ]);
    // Without an audit token, an agent that refuses ours may still answer a token-less request.
    const agentSelf = audit === undefined && agentSelfOwn.t !== "ok" ? await gatherAgentSelf(anonymous).then((o) => (o.t === "ok" ? o : agentSelfOwn)) : agentSelfOwn;
    const policies = new Map<string, Outcome<PolicyInfo>>();
    if (tokenSelf.t === "ok" && !tokenSelf.value.policies.some((p) => p.id === GLOBAL_MANAGEMENT_POLICY_ID)) {
      await Promise.all(tokenSelf.value.policies.map(async (p) => policies.set(p.id, await gatherPolicy(audit ?? agent, p.id))));
    }

    const version = agentSelf.t === "ok" && agentSelf.value.version ? ` (Consul ${agentSelf.value.version})` : "";
    checks.unshift(
      { id: "agent", step: "preflight", verdict: "PASS", seen: `reached ${origin}${version}` },
      identityCheck(opts, proxy, fatal),
    );
    checks.push(
      checkAclEnabled(tokenSelf, agentSelf),
      checkAclDefaultPolicy({ tokenSelf, agentSelf, header: rootsRes.header, anonymousLeaf }),
      checkAnonymousWrite(anonymousLeaf, service),
      checkIntentionsDefault(intentionsDefault, intentions, service),
      checkIntentions(intentions, service, proxy?.protocol),
      checkTokenManagement(tokenSelf, service, tokenGiven),
      checkTokenScope(tokenSelf, policies, service),
      checkAgentHttpListeners(agentSelf),
      checkAgentRpcTls(agentSelf),
      checkGossipEncryption(agentSelf),
      checkCaRoots(rootsRes.roots),
      checkRootValidity(rootsRes.roots, deps.now()),
      checkLeaf(leaf, rootsRes.roots, service, deps.now()),
      checkCaProvider(agentSelf, rootsRes.roots),
      checkPublicPort(proxy, agentSelf, opts.sidecarPortRange, readEphemeralPorts()),
      opts.ownPublicListener !== undefined
        ? ownPublicListenerCheck(opts.ownPublicListener)
        : await checkPublicPortBind(proxy, leaf, rootsRes.roots, timeoutMs),
      checkAppAddress(proxy),
      await checkAppExposure(proxy, (deps.interfaces ?? networkInterfaces)(), timeoutMs),
    );
    return finish(fatal, proxy);
  } finally {
    await Promise.all(owned.map((c) => c.close()));
  }
}

function identityCheck(opts: DoctorOptions, proxy: ProxyView | undefined, fatal: DoctorFatal | undefined): Check {
  const s = opts.source;
  const asked = s.t === "proxy-id" ? `-proxy-id ${s.proxyId}` : s.t === "sidecar-for" ? `-sidecar-for ${s.serviceId}` : `-service ${s.service}`;
  if (proxy === undefined) {
    return {
      id: "identity",
      step: "preflight",
      verdict: "FAIL",
      seen: fatal?.message ?? `cannot resolve ${asked}`,
      fix:
        s.t === "static"
          ? "check -service"
          : "register the service with a sidecar (Connect { SidecarService {} }), or name the proxy with -proxy-id; list them: curl -H \"X-Consul-Token: …\" http://127.0.0.1:8500/v1/agent/services",
    };
  }
  const what = proxy.proxyId === undefined ? `static mode: service ${proxy.service}` : `proxy ${proxy.proxyId} for service ${proxy.service}`;
  return { id: "identity", step: "preflight", verdict: "PASS", seen: `${what} (from ${asked})` };
}

/** Every address a host name stands for, so a name of 127.0.0.1 counts as loopback; undefined for IPs. */
async function resolveHost(cfg: AgentConfig): Promise<string[] | undefined> {
  if (cfg.address.scheme === "unix") return undefined;
  const host = cfg.address.host;
  if (isIP(host) !== 0 || isLoopbackHost(host)) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), DNS_TIMEOUT_MS);
  });
  try {
    const found = await Promise.race([lookup(host, { all: true }), timeout]);
    return found?.map((a) => a.address);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function originOf(cfg: AgentConfig): string {
  const a = cfg.address;
  if (a.scheme === "unix") return `unix://${a.socketPath}`;
  const host = a.host.includes(":") ? `[${a.host}]` : a.host;
  return `${a.scheme}://${host}:${a.port}${a.pathPrefix}`;
}

const ORDER: Record<Check["step"], number> = {
  preflight: 0,
  "acl-default-deny": 1,
  "service-token": 2,
  "encrypted-agent-traffic": 3,
  ca: 4,
  "sidecar-ports": 5,
  "app-behind-proxy": 6,
};

function report(
  origin: string,
  proxy: ProxyView | undefined,
  opts: DoctorOptions,
  checks: Check[],
  fatal: DoctorFatal | undefined,
  nowMs: number,
): DoctorReport {
  const sorted = checks.map((c, i) => ({ c, i })).sort((a, b) => ORDER[a.c.step] - ORDER[b.c.step] || a.i - b.i).map((x) => x.c);
  const counts: Record<Verdict, number> = { PASS: 0, WARN: 0, FAIL: 0, SKIP: 0 };
  for (const c of sorted) counts[c.verdict]++;
  const s = opts.source;
  return {
    agent: origin,
    service: proxy?.service ?? (s.t === "static" ? s.service : undefined),
    proxyId: proxy?.proxyId ?? (s.t === "proxy-id" ? s.proxyId : undefined),
    checkedAt: new Date(nowMs).toISOString(),
    checks: sorted,
    fatal,
    counts,
  };
}
