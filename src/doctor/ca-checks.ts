// Checklist step 4: the CA is bootstrapped (roots present, one active, a trust domain), this
// token gets a leaf, neither is near expiry, and the provider is an external one.
import type { AgentSelfInfo, CaRoots, LeafCert } from "../agent/index.js";
import { describe } from "./acl-checks.js";
import type { Outcome } from "./evidence.js";
import { serviceTokenFix } from "./token-checks.js";
import type { Check } from "./types.js";

const STEP = "ca" as const;
const DAY_MS = 86_400_000;
/** A root with less than this left is a rotation to plan now. */
export const ROOT_WARN_MS = 30 * DAY_MS;

export function checkCaRoots(roots: Outcome<CaRoots>): Check {
  const base = { id: "ca-roots", step: STEP } as const;
  const fix = "server config: connect { enabled = true } on every server (Consul bootstraps the CA when the leader starts), then restart them";
  if (roots.t !== "ok") return { ...base, verdict: "FAIL", seen: `cannot read the CA roots: ${describe(roots)}`, fix };
  const r = roots.value;
  const active = r.roots.find((x) => x.active);
  if (r.roots.length === 0 || active === undefined || r.trustDomain === "") {
    return { ...base, verdict: "FAIL", seen: `Connect CA not bootstrapped: ${r.roots.length} root(s), ${active ? "one" : "none"} active, trust domain "${r.trustDomain}"`, fix };
  }
  return {
    ...base,
    verdict: "PASS",
    seen: `${r.roots.length} root(s), active "${active.name}" (${active.id.slice(0, 23)}…), trust domain ${r.trustDomain}`,
  };
}

export function checkRootValidity(roots: Outcome<CaRoots>, nowMs: number): Check {
  const base = { id: "ca-root-validity", step: STEP } as const;
  const active = roots.t === "ok" ? roots.value.roots.find((x) => x.active) : undefined;
  if (active === undefined) return { ...base, verdict: "SKIP", seen: "no active root (see ca-roots)" };
  const leftMs = active.notAfter.getTime() - nowMs;
  const until = active.notAfter.toISOString();
  const rotate = "rotate the CA: consul connect ca set-config -config-file ca.json (a new root; leaves are reissued and both roots are trusted meanwhile)";
  if (active.notBefore.getTime() > nowMs) return { ...base, verdict: "FAIL", seen: `the active root is not valid before ${active.notBefore.toISOString()}: check this host's clock`, fix: "sync the clock: timedatectl set-ntp true" };
  if (leftMs <= 0) return { ...base, verdict: "FAIL", seen: `the active root expired at ${until}`, fix: rotate };
  if (leftMs < ROOT_WARN_MS) return { ...base, verdict: "WARN", seen: `the active root expires in ${formatLeft(leftMs)} (${until})`, fix: rotate };
  return { ...base, verdict: "PASS", seen: `the active root is valid for ${formatLeft(leftMs)} more (until ${until})` };
}

/** The leaf for this service with this token (service:write, spec §3), its identity and time left. */
export function checkLeaf(leaf: Outcome<LeafCert> | undefined, roots: Outcome<CaRoots>, service: string | undefined, nowMs: number): Check {
  const base = { id: "leaf", step: STEP } as const;
  if (leaf === undefined || service === undefined) return { ...base, verdict: "SKIP", seen: "no service to get a leaf for" };
  if (leaf.t !== "ok") {
    return {
      ...base,
      verdict: "FAIL",
      seen: `this token cannot get ${service}'s certificate: ${describe(leaf)}`,
      fix: leaf.t === "denied" || leaf.t === "acl_not_found" ? serviceTokenFix(service) : "check the agent's logs for the error above, then rerun",
    };
  }
  const l = leaf.value;
  const trustDomain = roots.t === "ok" ? roots.value.trustDomain : undefined;
  let host = "";
  try {
    host = new URL(l.serviceUri).host.toLowerCase();
  } catch {
    // judged below as a mismatch
  }
  if (trustDomain !== undefined && host !== trustDomain.toLowerCase()) {
    return { ...base, verdict: "FAIL", seen: `the leaf's URI ${l.serviceUri} is not in the trust domain ${trustDomain}`, fix: "check the agent's CA configuration: consul connect ca get-config" };
  }
  const leftMs = l.validBefore.getTime() - nowMs;
  const until = l.validBefore.toISOString();
  if (leftMs <= 0) return { ...base, verdict: "FAIL", seen: `the agent handed out an expired leaf (until ${until})`, fix: "check the servers: the leaf should be renewed long before expiry (consul monitor -log-level debug)" };
  return { ...base, verdict: "PASS", seen: `leaf ${l.serviceUri} (serial ${l.serialNumber.slice(0, 11)}…), ${formatLeft(leftMs)} left (until ${until}); the agent renews it` };
}

/** The built-in `consul` provider keeps the root key in the servers' store: WARN for production. */
export function checkCaProvider(agentSelf: Outcome<AgentSelfInfo>, roots: Outcome<CaRoots>): Check {
  const base = { id: "ca-provider", step: STEP } as const;
  const fix =
    'server config: connect { ca_provider = "vault"  ca_config { address = "https://vault:8200"  token = "…"  root_pki_path = "connect-root"  intermediate_pki_path = "connect-intermediate" } } ' +
    "(or aws-pca); a migration keeps both roots trusted";
  const provider = agentSelf.t === "ok" ? agentSelf.value.caProvider : undefined;
  if (provider !== undefined) {
    if (provider === "consul" || provider === "") {
      return { ...base, verdict: "WARN", seen: "CA provider consul (built-in, /v1/agent/self ConnectCAProvider): the root key lives in the servers' Raft store", fix };
    }
    return { ...base, verdict: "PASS", seen: `CA provider ${provider} (/v1/agent/self ConnectCAProvider)` };
  }
  const active = roots.t === "ok" ? roots.value.roots.find((x) => x.active) : undefined;
  if (active !== undefined && /^Consul CA /.test(active.name)) {
    return {
      ...base,
      verdict: "WARN",
      seen: `the active root is named "${active.name}", the built-in consul provider's name (/v1/agent/self not readable to confirm)`,
      fix,
    };
  }
  return { ...base, verdict: "WARN", seen: "cannot tell the CA provider: /v1/agent/self not readable", fix: "rerun with -audit-token-file <file> holding a token with agent:read" };
}

/** "3d 4h", "5h 12m", "42m". */
export function formatLeft(ms: number): string {
  const m = Math.floor(ms / 60_000);
  const d = Math.floor(m / 1440);
  const h = Math.floor((m % 1440) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m % 60}m`;
  return `${m}m`;
}
