// What `connect-sidecar doctor` is asked to check, and what it answers. Yargs-free: the CLI (and
// the running sidecar's /status) build DoctorOptions and read a DoctorReport.
import type { NetworkInterfaceInfo } from "node:os";
import type { AgentClient, AgentConfig, ProxyIdentity } from "../agent/index.js";
import type { Logger } from "../ops/index.js";

/** One check's outcome: SKIP means "does not apply here", never "could not tell" (that is WARN). */
export type Verdict = "PASS" | "WARN" | "FAIL" | "SKIP";

/** The production checklist's steps each check serves (the README's "Production checklist"). */
export type ChecklistStep =
  | "preflight" // the agent answers and the sidecar's registration is found
  | "acl-default-deny" // 1. ACLs on, default deny; intentions decide who connects
  | "service-token" // 2. one service-identity token per service, kept in a private file
  | "encrypted-agent-traffic" // 3. agent HTTP API over TLS or a unix socket; RPC TLS; gossip encryption
  | "ca" // 4. CA bootstrapped; an external provider preferred
  | "sidecar-ports" // 5. sidecar ports opened deliberately
  | "app-behind-proxy"; // 6. the app listens on loopback, reachable only through the proxy

/** Stable check ids: what tests, dashboards and --json consumers key on. */
export type CheckId =
  | "agent"
  | "identity"
  | "acl-enabled"
  | "acl-default-policy"
  | "acl-anonymous-write"
  | "intentions-default"
  | "token-management"
  | "token-scope"
  | "token-file"
  | "agent-transport"
  | "agent-http-listeners"
  | "agent-rpc-tls"
  | "gossip-encryption"
  | "ca-roots"
  | "ca-root-validity"
  | "ca-provider"
  | "leaf"
  | "public-port"
  | "public-port-bind"
  | "app-address"
  | "app-exposure"
  | "intentions";

export interface Check {
  id: CheckId;
  step: ChecklistStep;
  verdict: Verdict;
  /** What the tool saw, with where it saw it. Never holds a token. */
  seen: string;
  /** The exact fix (a config line, a command); present for WARN and FAIL. */
  fix?: string;
}

/** Why the doctor could not check at all (exit 2). */
export type DoctorFatal =
  | { reason: "agent_unreachable"; message: string }
  | { reason: "identity_unresolved"; message: string }
  | { reason: "config"; message: string };

export interface DoctorReport {
  /** Where the agent is (`http://h:p`, `unix:///path`) and who was checked. */
  agent: string;
  service: string | undefined;
  proxyId: string | undefined;
  checkedAt: string;
  checks: Check[];
  fatal: DoctorFatal | undefined;
  counts: Record<Verdict, number>;
}

/** Which sidecar to check: the same three ways `proxy` is told who it is (spec §9.1). */
export type DoctorIdentity = ProxyIdentity;

export interface DoctorOptions {
  source: DoctorIdentity;
  /** The sidecar's own agent settings (its token is the one judged). */
  agent: AgentConfig;
  /**
   * Optional operator token used only to read `/v1/agent/self` and ACL policies when the sidecar's
   * own token may not (it usually has no agent:read, spec §11.3). Never judged, never printed.
   */
  auditToken?: string;
  /** Per network probe (app reachability, port owner). Default 1000 ms. */
  probeTimeoutMs?: number;
  /** The agent's sidecar port range when /v1/agent/self cannot be read. Default 21000–21255. */
  sidecarPortRange?: { min: number; max: number };
  /**
   * Set by a running sidecar checking itself: the public listener this process holds. The port check
   * then reports it as held by this sidecar instead of probing it (a probe would be one of its own connections).
   */
  ownPublicListener?: { host: string; port: number };
}

export interface DoctorDeps {
  log: Logger;
  now: () => number;
  /** An agent client to reuse (the running sidecar's); else one is made from opts.agent and closed. */
  agent?: AgentClient;
  /** This host's interfaces (default os.networkInterfaces): the app is probed on each non-loopback address. */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}
