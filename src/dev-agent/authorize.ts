// POST /v1/agent/connect/authorize (spec §4) and the SPIFFE URI forms it accepts (spec §8.1).

import type { DevAgentContext } from "./context.js";
import { decodeStrict } from "./decode.js";
import { HttpError } from "./http-error.js";
import { decide, type Intention } from "./intentions-model.js";
import type { Route } from "./router.js";

export type ConnectId =
  | { kind: "service"; trustDomain: string; partition: string; namespace: string; datacenter: string; service: string }
  | { kind: "agent"; trustDomain: string; partition: string; datacenter: string; node: string }
  | { kind: "server"; trustDomain: string; datacenter: string }
  | { kind: "mesh-gateway"; trustDomain: string; partition: string; datacenter: string }
  | { kind: "signing"; trustDomain: string };

const SERVICE_RE = /^(?:\/ap\/([^/]+))?\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;
const AGENT_RE = /^(?:\/ap\/([^/]+))?\/agent\/client\/dc\/([^/]+)\/id\/([^/]+)$/;
const SERVER_RE = /^\/agent\/server\/dc\/([^/]+)$/;
const GATEWAY_RE = /^(?:\/ap\/([^/]+))?\/gateway\/mesh\/dc\/([^/]+)$/;

function unescape(s: string | undefined, dflt = ""): string {
  if (s === undefined || s === "") return dflt;
  return decodeURIComponent(s);
}

/** Parses a Connect SPIFFE ID (spec §8.1); returns undefined when it is not one. */
export function parseConnectUri(text: string): ConnectId | undefined {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return undefined;
  }
  if (u.protocol !== "spiffe:") return undefined;
  const trustDomain = u.hostname;
  const path = u.pathname;
  try {
    let m = SERVICE_RE.exec(path);
    if (m) {
      return {
        kind: "service", trustDomain, partition: unescape(m[1], "default"), namespace: unescape(m[2]),
        datacenter: unescape(m[3]), service: unescape(m[4]),
      };
    }
    m = AGENT_RE.exec(path);
    if (m) return { kind: "agent", trustDomain, partition: unescape(m[1], "default"), datacenter: unescape(m[2]), node: unescape(m[3]) };
    m = SERVER_RE.exec(path);
    if (m) return { kind: "server", trustDomain, datacenter: unescape(m[1]) };
    m = GATEWAY_RE.exec(path);
    if (m) return { kind: "mesh-gateway", trustDomain, partition: unescape(m[1], "default"), datacenter: unescape(m[2]) };
  } catch {
    return undefined; // a malformed %-escape
  }
  if ((path === "" || path === "/") && trustDomain.includes(".")) return { kind: "signing", trustDomain };
  return undefined;
}

/** Whether a request with no matching intention is allowed (spec §4: ACLs off → allow, else the ACL default). */
export function defaultIntentionAllow(ctx: DevAgentContext): boolean {
  return !ctx.cfg.aclsEnabled || ctx.cfg.aclDefaultPolicy === "allow";
}

const AUTHORIZE_SCHEMA = {
  Target: { type: "string" },
  ClientCertURI: { type: "string" },
  ClientCertSerial: { type: "string" },
  Namespace: { type: "string" },
  Partition: { type: "string" },
} as const;

/** `POST /v1/agent/connect/authorize` over the intentions `store` holds. */
export function authorizeRoutes(store: { list(): readonly Intention[] }, ctx: DevAgentContext): Route[] {
  return [
    {
      path: "/v1/agent/connect/authorize",
      methods: ["POST"],
      handler: (req) => {
        const body = decodeStrict(req.body, AUTHORIZE_SCHEMA);
        const target = (body.Target as string | undefined) ?? "";
        if (target === "") throw new HttpError(400, "Target service must be specified");
        const id = parseConnectUri((body.ClientCertURI as string | undefined) ?? "");
        if (!id) throw new HttpError(400, "ClientCertURI not a valid Connect identifier");
        if (id.kind !== "service") throw new HttpError(400, "ClientCertURI not a valid Service identifier");
        req.acl().require("service", "write", target);
        const targetPartition = (body.Partition as string | undefined) || "default";
        if (id.partition !== targetPartition) {
          throw new HttpError(400, `Mismatched partitions: "${id.partition}" != "${targetPartition}"`);
        }
        // spec §4: the trust domain and the serial are deliberately not checked.
        const d = decide(
          store.list(),
          { partition: id.partition, ns: id.namespace, name: id.service },
          { partition: targetPartition, ns: (body.Namespace as string | undefined) || "default", name: target },
          defaultIntentionAllow(ctx),
        );
        return { json: { Authorized: d.authorized, Reason: d.reason }, headers: { "X-Cache": "MISS" } };
      },
    },
  ];
}
