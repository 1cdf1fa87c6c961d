// POST /v1/agent/connect/authorize (spec §4); the SPIFFE URI forms it accepts (spec §8.1) are src/certs' parser.

import { parseSpiffeId } from "../certs/index.js";
import type { DevAgentContext } from "./context.js";
import { decodeStrict } from "./decode.js";
import { HttpError } from "./http-error.js";
import { decide, type Intention } from "./intentions-model.js";
import type { Route } from "./router.js";

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
        const parsed = parseSpiffeId((body.ClientCertURI as string | undefined) ?? "");
        if (!parsed.ok) throw new HttpError(400, "ClientCertURI not a valid Connect identifier");
        const id = parsed.value;
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
