// Checklist step 1: ACLs on with default deny, an anonymous token that cannot act as a service,
// and intentions that deny by default and name each caller. Pure functions of the evidence.
import type { AgentSelfInfo, Intention, ListenerProtocol, TokenInfo } from "../agent/index.js";
import type { Outcome } from "./evidence.js";
import type { Check } from "./types.js";

const STEP = "acl-default-deny" as const;
export const ENABLE_ACLS_FIX =
  'agent config: acl { enabled = true  default_policy = "deny"  enable_token_persistence = true }, restart the agents, then: consul acl bootstrap';
const AUDIT_FIX =
  'rerun with -audit-token-file <file> holding an operator token with agent_prefix "" { policy = "read" } (read-only), so the doctor can read /v1/agent/self';

/** ACLs are on when token/self answers anything but 401 `ACL support disabled` (spec §11.6). */
export function checkAclEnabled(tokenSelf: Outcome<TokenInfo>, agentSelf: Outcome<AgentSelfInfo>): Check {
  const selfSays = agentSelf.t === "ok" ? agentSelf.value.aclsEnabled : undefined;
  if (tokenSelf.t === "acl_disabled" || selfSays === false) {
    return {
      id: "acl-enabled",
      step: STEP,
      verdict: "FAIL",
      seen:
        tokenSelf.t === "acl_disabled"
          ? "GET /v1/acl/token/self answered 401 ACL support disabled: ACLs are off, so every request is allowed"
          : "/v1/agent/self reports ACLsEnabled false: every request is allowed",
      fix: ENABLE_ACLS_FIX,
    };
  }
  if (tokenSelf.t === "error" && selfSays === undefined) {
    return { id: "acl-enabled", step: STEP, verdict: "WARN", seen: `cannot tell: ${tokenSelf.message}`, fix: AUDIT_FIX };
  }
  const confirm = selfSays === true ? "; /v1/agent/self confirms ACLsEnabled true" : "";
  return { id: "acl-enabled", step: STEP, verdict: "PASS", seen: `ACLs are on: GET /v1/acl/token/self did not answer 401 ACL support disabled${confirm}` };
}

/**
 * The default policy: agent/self when readable; else the X-Consul-Default-ACL-Policy header, which
 * is only a hint (spec §11.5) and passes only when the anonymous probe agrees.
 */
export function checkAclDefaultPolicy(ev: {
  tokenSelf: Outcome<TokenInfo>;
  agentSelf: Outcome<AgentSelfInfo>;
  header: string | undefined;
  anonymousLeaf: Outcome<true> | undefined;
}): Check {
  const base = { id: "acl-default-policy", step: STEP } as const;
  const fix = 'agent config: acl { default_policy = "deny" } on every agent and server, then restart them';
  if (ev.tokenSelf.t === "acl_disabled" || (ev.agentSelf.t === "ok" && ev.agentSelf.value.aclsEnabled === false)) {
    return { ...base, verdict: "FAIL", seen: `ACLs are disabled, so nothing is denied whatever the policy says (header: ${ev.header ?? "absent"})`, fix: ENABLE_ACLS_FIX };
  }
  const fromSelf = ev.agentSelf.t === "ok" ? ev.agentSelf.value.aclDefaultPolicy : undefined;
  if (fromSelf !== undefined) {
    return fromSelf === "deny"
      ? { ...base, verdict: "PASS", seen: "default policy deny (/v1/agent/self ACLResolverSettings.ACLDefaultPolicy)" }
      : { ...base, verdict: "FAIL", seen: `default policy ${fromSelf} (/v1/agent/self): whatever no rule denies is allowed`, fix };
  }
  const why = ev.agentSelf.t === "denied" ? "/v1/agent/self needs agent:read" : "/v1/agent/self not read";
  if (ev.header === "deny") {
    if (ev.anonymousLeaf?.t === "denied") {
      return { ...base, verdict: "PASS", seen: `default policy deny: X-Consul-Default-ACL-Policy header (a hint; ${why}), and the anonymous token was refused service:write` };
    }
    return { ...base, verdict: "WARN", seen: `X-Consul-Default-ACL-Policy says deny, but that is only a hint (${why})`, fix: AUDIT_FIX };
  }
  if (ev.header !== undefined) {
    return { ...base, verdict: "FAIL", seen: `X-Consul-Default-ACL-Policy: ${ev.header} (the agent's configured acl.default_policy): whatever no rule denies is allowed`, fix };
  }
  return { ...base, verdict: "WARN", seen: `cannot tell: no X-Consul-Default-ACL-Policy header and ${why}`, fix: AUDIT_FIX };
}

/** A token-less read of the service's leaf (needs service:write, spec §3): refused is the pass. */
export function checkAnonymousWrite(anonymousLeaf: Outcome<true> | undefined, service: string | undefined): Check {
  const base = { id: "acl-anonymous-write", step: STEP } as const;
  if (anonymousLeaf === undefined || service === undefined) return { ...base, verdict: "SKIP", seen: "no service to probe" };
  const probe = `GET /v1/agent/connect/ca/leaf/${service} without a token`;
  switch (anonymousLeaf.t) {
    case "denied":
      return { ...base, verdict: "PASS", seen: `${probe}: 403 Permission denied, so the anonymous token cannot service:write` };
    case "ok":
    case "acl_disabled":
      return {
        ...base,
        verdict: "FAIL",
        seen: `${probe} got ${service}'s certificate and key: anyone who reaches the agent can act as ${service}`,
        fix: `${ENABLE_ACLS_FIX}; if ACLs are on, remove write rules from the anonymous token's policies: consul acl token read -id 00000000-0000-0000-0000-000000000002`,
      };
    case "acl_not_found":
      return {
        ...base,
        verdict: "WARN",
        seen: `${probe}: ${anonymousLeaf.message} (the agent's acl.tokens.default is not a valid token)`,
        fix: "agent config: remove acl { tokens { default = … } } or set it to a valid token with no write rights",
      };
    case "error":
      return { ...base, verdict: "WARN", seen: `${probe}: ${anonymousLeaf.message}`, fix: "check the agent's logs for the error above, then rerun" };
  }
}

/** Is a caller that no intention names let in? intentions/check with a random source (spec §5.3). */
export function checkIntentionsDefault(
  def: Outcome<boolean> | undefined,
  intentions: Outcome<Intention[]> | undefined,
  service: string | undefined,
): Check {
  const base = { id: "intentions-default", step: STEP } as const;
  if (def === undefined || service === undefined) return { ...base, verdict: "SKIP", seen: "no service to check" };
  const probe = `GET /v1/connect/intentions/check?source=<random>&destination=${service}`;
  if (def.t !== "ok") {
    return { ...base, verdict: "WARN", seen: `cannot tell: ${describe(def)}`, fix: `give the token service:read on ${service} (its service identity has it)` };
  }
  if (!def.value) return { ...base, verdict: "PASS", seen: `${probe}: Allowed false, so a caller no intention names is denied` };
  if (intentions?.t === "ok" && intentions.value.some(isWildcardAllow)) {
    return {
      ...base,
      verdict: "WARN",
      seen: `${probe}: Allowed true, decided by the intention * → ${service} allow, so the default cannot be seen`,
      fix: `consul intention delete '*' ${service}, then rerun`,
    };
  }
  return {
    ...base,
    verdict: "FAIL",
    seen: `${probe}: Allowed true: every service in the mesh may connect unless an intention denies it`,
    fix: `agent config: acl { default_policy = "deny" } (intentions follow it), or at least: consul intention create -deny '*' ${service}`,
  };
}

/** Who may connect to the service, highest precedence first; a wildcard allow is a WARN. */
export function checkIntentions(intentions: Outcome<Intention[]> | undefined, service: string | undefined, protocol: ListenerProtocol = "tcp"): Check {
  const base = { id: "intentions", step: STEP } as const;
  if (intentions === undefined || service === undefined) return { ...base, verdict: "SKIP", seen: "no service to check" };
  if (intentions.t !== "ok") {
    return { ...base, verdict: "WARN", seen: `cannot list intentions: ${describe(intentions)}`, fix: `give the token intentions:read on ${service} (its service identity has it)` };
  }
  const list = intentions.value;
  if (list.length === 0) {
    return { ...base, verdict: "PASS", seen: `no intention names ${service}: only the default decides (nobody, under default deny)` };
  }
  // An L7 intention is enforced per request when the protocol is http; else the sidecar denies its source (spec §12.3).
  const l7 = protocol === "http" ? "L7, per request" : `L7, denied: protocol is ${protocol}, set http to enforce it`;
  const names = (action: string) =>
    list.filter((i) => effectiveAction(i, protocol) === action).map((i) => (i.permissions.length > 0 ? `${i.sourceName} (${l7})` : i.sourceName));
  const allow = names("allow");
  const deny = names("deny");
  const seen = `who may connect to ${service}: allow ${allow.length ? allow.join(", ") : "none"}; deny ${deny.length ? deny.join(", ") : "none"}`;
  if (list.some(isWildcardAllow)) {
    return {
      ...base,
      verdict: "WARN",
      seen: `${seen}: * allows every service in the mesh`,
      fix: `consul intention delete '*' ${service}; then allow each caller by name: consul intention create -allow <caller> ${service}`,
    };
  }
  return { ...base, verdict: "PASS", seen };
}

function effectiveAction(i: Intention, protocol: ListenerProtocol): "allow" | "deny" {
  // spec §4: an intention with L7 permissions is a deny for an L4 proxy; in HTTP mode its source
  // may connect, and each request is decided by the permissions.
  if (i.permissions.length > 0) return protocol === "http" ? "allow" : "deny";
  return i.action === "allow" ? "allow" : "deny";
}

function isWildcardAllow(i: Intention): boolean {
  return i.sourceName === "*" && i.permissions.length === 0 && i.action === "allow";
}

export function describe(o: Exclude<Outcome<unknown>, { t: "ok" }>): string {
  return o.t === "acl_disabled" ? "401 ACL support disabled" : o.message;
}
