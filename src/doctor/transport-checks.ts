// Checklist step 3: encrypted agent traffic. The sidecar's own link to the agent (HTTPS, a unix
// socket, or plain HTTP that never leaves the host), then what the agent reports about its HTTP
// listeners, RPC TLS and gossip encryption (spec §11.5).
import { isLocalListener, type AgentAddress, type AgentSelfInfo, type AgentTlsConfig } from "../agent/index.js";
import { isLoopbackHost } from "../net/index.js";
import type { Outcome } from "./evidence.js";
import { hostPort } from "./probe.js";
import type { Check } from "./types.js";

const STEP = "encrypted-agent-traffic" as const;
const AUDIT_FIX =
  'rerun with -audit-token-file <file> holding an operator token with agent_prefix "" { policy = "read" } (read-only), so the doctor can read /v1/agent/self';

/**
 * How the sidecar reaches the agent. Plain HTTP passes only when the host is loopback, or a name
 * whose every address (`resolved`) is loopback: the token and leaf private keys travel on it.
 */
export function judgeAgentTransport(address: AgentAddress, tls: AgentTlsConfig, resolved: string[] | undefined): Check {
  const base = { id: "agent-transport", step: STEP } as const;
  if (address.scheme === "unix") {
    return { ...base, verdict: "PASS", seen: `agent HTTP API over the unix socket ${address.socketPath}: nothing crosses a network` };
  }
  const where = hostPort(address.host, address.port);
  if (address.scheme === "https") {
    if (!tls.verify) {
      return {
        ...base,
        verdict: "WARN",
        seen: `HTTPS to ${where}, but CONSUL_HTTP_SSL_VERIFY=false: the agent's certificate is not checked, so anyone in the path can pose as the agent`,
        fix: "unset CONSUL_HTTP_SSL_VERIFY and pass -ca-file <the agent's CA bundle>",
      };
    }
    return { ...base, verdict: "PASS", seen: `HTTPS to ${where}, the agent's certificate verified` };
  }
  const loopback = isLoopbackHost(address.host) || (resolved !== undefined && resolved.length > 0 && resolved.every(isLoopbackHost));
  if (loopback) {
    return { ...base, verdict: "PASS", seen: `plain HTTP to ${where}, which is loopback: the token never leaves this host` };
  }
  return {
    ...base,
    verdict: "FAIL",
    seen:
      `plain HTTP to ${where}, which is not loopback${resolved?.length ? ` (${resolved.join(", ")})` : ""}: ` +
      "the ACL token and the leaf private key cross the network in clear text (this doctor's own requests too)",
    fix:
      'use -http-addr unix:///var/run/consul/http.sock (agent: addresses { http = "unix:///var/run/consul/http.sock" }), ' +
      "or -http-addr https://<agent>:8501 -ca-file <CA> (agent: ports { https = 8501 }), or run an agent on this host at 127.0.0.1:8500",
  };
}

/** The agent's plain-HTTP listeners must be loopback or unix sockets (spec §11.5 HTTPAddrs). */
export function checkAgentHttpListeners(agentSelf: Outcome<AgentSelfInfo>): Check {
  const base = { id: "agent-http-listeners", step: STEP } as const;
  const http = agentSelf.t === "ok" ? agentSelf.value.httpAddrs : undefined;
  if (http === undefined) return { ...base, verdict: "WARN", seen: `cannot tell: ${unreadable(agentSelf)}`, fix: AUDIT_FIX };
  const https = agentSelf.t === "ok" ? (agentSelf.value.httpsAddrs ?? []) : [];
  const exposed = http.filter((a) => !isLocalListener(a));
  const seen = `agent HTTP listeners: ${http.length ? http.join(", ") : "none"}; HTTPS: ${https.length ? https.join(", ") : "none"}`;
  if (exposed.length > 0) {
    return {
      ...base,
      verdict: "FAIL",
      seen: `${seen}: ${exposed.join(", ")} serves the API in clear text off this host`,
      fix: 'agent config: addresses { http = "127.0.0.1" } (or ports { http = -1  https = 8501 } with tls { https { cert_file, key_file } })',
    };
  }
  return { ...base, verdict: "PASS", seen: `${seen} (plain HTTP on this host only)` };
}

/** RPC between agents: verify_incoming, verify_outgoing and verify_server_hostname (spec §11.5). */
export function checkAgentRpcTls(agentSelf: Outcome<AgentSelfInfo>): Check {
  const base = { id: "agent-rpc-tls", step: STEP } as const;
  if (agentSelf.t !== "ok") return { ...base, verdict: "WARN", seen: `cannot tell: ${unreadable(agentSelf)}`, fix: AUDIT_FIX };
  const s = agentSelf.value;
  const flags = [
    ["verify_incoming", s.rpcVerifyIncoming],
    ["verify_outgoing", s.rpcVerifyOutgoing],
    ["verify_server_hostname", s.rpcVerifyServerHostname],
  ] as const;
  if (flags.every(([, v]) => v === undefined)) {
    return { ...base, verdict: "WARN", seen: "cannot tell: /v1/agent/self has no TLS.InternalRPC settings", fix: "check the agent's tls { internal_rpc { … } } block by hand" };
  }
  const seen = `agent RPC TLS: ${flags.map(([k, v]) => `${k}=${v ?? "unknown"}`).join(", ")}`;
  const off = flags.filter(([, v]) => v !== true).map(([k]) => k);
  if (off.length > 0) {
    return {
      ...base,
      verdict: "FAIL",
      seen: `${seen}: RPC between agents is not mutually verified`,
      fix: 'agent config: tls { defaults { ca_file = "consul-agent-ca.pem"  verify_outgoing = true }  internal_rpc { verify_incoming = true  verify_server_hostname = true } }',
    };
  }
  return { ...base, verdict: "PASS", seen };
}

/** Gossip encryption from Stats.serf_lan.encrypted (spec §11.5: EncryptKey always reads "hidden"). */
export function checkGossipEncryption(agentSelf: Outcome<AgentSelfInfo>): Check {
  const base = { id: "gossip-encryption", step: STEP } as const;
  const enc = agentSelf.t === "ok" ? agentSelf.value.gossipEncrypted : undefined;
  if (enc === undefined) return { ...base, verdict: "WARN", seen: `cannot tell: ${unreadable(agentSelf)}`, fix: AUDIT_FIX };
  if (enc === "true") return { ...base, verdict: "PASS", seen: "gossip is encrypted (Stats.serf_lan.encrypted true)" };
  return {
    ...base,
    verdict: "FAIL",
    seen: `gossip is not encrypted (Stats.serf_lan.encrypted ${enc}): membership and events travel in clear text`,
    fix: 'agent config on every agent: encrypt = "<output of consul keygen>" (roll it in with encrypt_verify_incoming/outgoing = false first)',
  };
}

function unreadable(agentSelf: Outcome<AgentSelfInfo>): string {
  switch (agentSelf.t) {
    case "ok":
      return "/v1/agent/self does not report it";
    case "denied":
      return "/v1/agent/self needs agent:read, which a service-identity token does not have (403)";
    case "acl_disabled":
      return "401 ACL support disabled";
    default:
      return `/v1/agent/self: ${agentSelf.message}`;
  }
}
