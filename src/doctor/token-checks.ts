// Checklist step 2: the sidecar's token is not a management token, holds only its own service
// identity (spec §11.3), and sits in a file only its owner can read.
import { statSync } from "node:fs";
import { describe } from "./acl-checks.js";
import type { PolicyInfo, TokenInfo } from "../agent/index.js";
import type { Outcome } from "./evidence.js";
import { formatRule, grantsServiceWrite, parseRules, rightsBeyondIdentity } from "./policy-rules.js";
import type { Check } from "./types.js";

const STEP = "service-token" as const;
/** spec §11.1: the builtin policy every management token holds. */
export const GLOBAL_MANAGEMENT_POLICY_ID = "00000000-0000-0000-0000-000000000001";

export function serviceTokenFix(service: string): string {
  return (
    `consul acl token create -description "${service} sidecar" -service-identity ${service} -format json | jq -r .SecretID > /etc/connect-sidecar/${service}.token ` +
    `&& chmod 600 /etc/connect-sidecar/${service}.token; run the sidecar with -token-file /etc/connect-sidecar/${service}.token`
  );
}

function isManagement(t: TokenInfo): boolean {
  return t.policies.some((p) => p.id === GLOBAL_MANAGEMENT_POLICY_ID || p.name === "global-management");
}

/** A token holding global-management can do anything: a stolen sidecar token must not. */
export function checkTokenManagement(tokenSelf: Outcome<TokenInfo>, service: string | undefined, tokenGiven: boolean): Check {
  const base = { id: "token-management", step: STEP } as const;
  const svc = service ?? "<service>";
  switch (tokenSelf.t) {
    case "acl_disabled":
      return { ...base, verdict: "SKIP", seen: "ACLs are disabled: no token is checked (see acl-enabled)" };
    case "acl_not_found":
      return {
        ...base,
        verdict: "FAIL",
        seen: tokenGiven
          ? `the agent does not know this token: ${tokenSelf.message}`
          : "no token given: the sidecar would run with the agent's default token",
        fix: serviceTokenFix(svc),
      };
    case "denied":
    case "error":
      return { ...base, verdict: "WARN", seen: `cannot read the token: ${describe(tokenSelf)}`, fix: "check the agent's logs for the error above, then rerun" };
    case "ok": {
      const t = tokenSelf.value;
      if (isManagement(t)) {
        return {
          ...base,
          verdict: "FAIL",
          seen: `token ${t.accessorId} holds the global-management policy: whoever reads it owns the cluster`,
          fix: serviceTokenFix(svc),
        };
      }
      return { ...base, verdict: "PASS", seen: `token ${t.accessorId}${t.description ? ` ("${t.description}")` : ""} is not a management token` };
    }
  }
}

/**
 * Compares the token's identities, templated policies, roles and policies with the service
 * identity of `service`; names every extra right. Policies are read (acl:read) when permitted.
 */
export function checkTokenScope(tokenSelf: Outcome<TokenInfo>, policies: Map<string, Outcome<PolicyInfo>>, service: string | undefined): Check {
  const base = { id: "token-scope", step: STEP } as const;
  if (tokenSelf.t === "acl_disabled") return { ...base, verdict: "SKIP", seen: "ACLs are disabled: no token is checked (see acl-enabled)" };
  if (tokenSelf.t !== "ok") return { ...base, verdict: "SKIP", seen: "no readable token (see token-management)" };
  if (service === undefined) return { ...base, verdict: "SKIP", seen: "no service to compare with" };
  const t = tokenSelf.value;
  if (isManagement(t)) {
    return { ...base, verdict: "FAIL", seen: "global-management grants every right, not just the service identity", fix: serviceTokenFix(service) };
  }
  const extra: string[] = [];
  const unknown: string[] = [];
  let own = false;
  for (const si of t.serviceIdentities) {
    if (si.serviceName === service) own = true;
    else extra.push(`service identity ${si.serviceName} (service "${si.serviceName}" write)`);
  }
  for (const ni of t.nodeIdentities) extra.push(`node identity ${ni.nodeName} (node "${ni.nodeName}" write)`);
  for (const tp of t.templatedPolicies) {
    if (tp.templateName === "builtin/service" && tp.name === service) own = true;
    else extra.push(`templated policy ${tp.templateName}${tp.name ? ` (name ${tp.name})` : ""}`);
  }
  for (const r of t.roles) unknown.push(`role ${r.name || r.id} (roles are not read)`);
  for (const p of t.policies) {
    const o = policies.get(p.id);
    if (o === undefined || o.t !== "ok") {
      unknown.push(`policy ${p.name || p.id} (${o === undefined ? "not read" : o.t === "denied" ? "reading it needs acl:read" : describe(o)})`);
      continue;
    }
    const rules = parseRules(o.value.rules);
    if (rules === undefined) {
      unknown.push(`policy ${p.name || p.id} (rules in a form this check cannot read)`);
      continue;
    }
    if (grantsServiceWrite(rules, service)) own = true;
    for (const r of rightsBeyondIdentity(rules, service)) extra.push(`policy ${p.name || p.id}: ${formatRule(r)}`);
  }
  if (extra.length > 0) {
    return {
      ...base,
      verdict: "FAIL",
      seen: `token ${t.accessorId} has more than the service identity ${service}: ${extra.join("; ")}`,
      fix: serviceTokenFix(service),
    };
  }
  if (unknown.length > 0) {
    return {
      ...base,
      verdict: "WARN",
      seen: `cannot tell what the token grants beyond ${own ? `the service identity ${service}` : "its identities"}: ${unknown.join("; ")}`,
      fix: `rerun with -audit-token-file <file> holding a token with acl = "read", or replace the token: ${serviceTokenFix(service)}`,
    };
  }
  if (!own) {
    return {
      ...base,
      verdict: "FAIL",
      seen: `token ${t.accessorId} does not hold the service identity ${service}, so it cannot get ${service}'s certificate`,
      fix: serviceTokenFix(service),
    };
  }
  return { ...base, verdict: "PASS", seen: `token ${t.accessorId} holds only the service identity ${service}` };
}

/** The token file must not be readable by other users (spec §1.1: it holds the secret). */
export function checkTokenFile(tokenFile: string | undefined, tokenGiven: boolean): Check {
  const base = { id: "token-file", step: STEP } as const;
  if (tokenFile === undefined) {
    if (!tokenGiven) return { ...base, verdict: "SKIP", seen: "no token configured" };
    return {
      ...base,
      verdict: "WARN",
      seen: "the token is given inline (-token or CONSUL_HTTP_TOKEN): -token shows in ps to every user of this host",
      fix: "umask 077 && printf %s \"$TOKEN\" > /etc/connect-sidecar/<service>.token, then run with -token-file /etc/connect-sidecar/<service>.token",
    };
  }
  const st = statSync(tokenFile, { throwIfNoEntry: false });
  if (st === undefined) return { ...base, verdict: "FAIL", seen: `token file ${tokenFile} does not exist`, fix: `create it: umask 077 && printf %s "$TOKEN" > ${tokenFile}` };
  const mode = st.mode & 0o777;
  const octal = `0${mode.toString(8).padStart(3, "0")}`;
  const who = `owner uid ${st.uid}`;
  if (mode & 0o007) {
    return {
      ...base,
      verdict: "FAIL",
      seen: `token file ${tokenFile} has mode ${octal} (${who}): every user on this host can read the token`,
      fix: `chmod 600 ${tokenFile}`,
    };
  }
  if (mode & 0o070) {
    return { ...base, verdict: "WARN", seen: `token file ${tokenFile} has mode ${octal} (${who}): its group can read the token`, fix: `chmod 600 ${tokenFile}` };
  }
  return { ...base, verdict: "PASS", seen: `token file ${tokenFile} has mode ${octal} (${who})` };
}
