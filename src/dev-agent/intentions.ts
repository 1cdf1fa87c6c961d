// The intentions API (spec §5): a compatibility view over the service-intentions entries of
// intention-store.ts, as in Consul ≥ 1.9.

import { randomUUID } from "node:crypto";
import { authorizeRoutes, defaultIntentionAllow } from "./authorize.js";
import { blockingRead } from "./blocking.js";
import { applyFilter } from "./catalog-filter.js";
import type { DevAgentContext } from "./context.js";
import { decodeStrict, type Schema } from "./decode.js";
import { HttpError } from "./http-error.js";
import {
  compareIntentions, decide, intentionMatches, intentionString, multiError, parseIntentionName, precedenceOf,
  renderIntention, validateIntention, type Intention, type IntentionName,
} from "./intentions-model.js";
import { allLegacy, createIntentionStore, INTENTIONS_TABLE as TABLE, intentionKey, type IntentionStore } from "./intention-store.js";
import { normalizePermission } from "./intentions-entry.js";
import type { AgentRequest, Reply, Route } from "./router.js";

export { authorizeRoutes, createIntentionStore, type IntentionStore };
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const INTENTION_FIELDS = [
  "ID", "Description", "SourceNS", "SourceName", "DestinationNS", "DestinationName", "SourcePartition",
  "DestinationPartition", "SourcePeer", "SourceSamenessGroup", "SourceType", "Action", "Permissions", "Meta",
  "Precedence", "CreatedAt", "UpdatedAt", "Hash", "CreateIndex", "ModifyIndex",
] as const;

const INTENTION_SCHEMA: Schema = {
  ID: { type: "string" }, Description: { type: "string" },
  SourceNS: { type: "string" }, SourceName: { type: "string" },
  DestinationNS: { type: "string" }, DestinationName: { type: "string" },
  SourcePartition: { type: "string" }, DestinationPartition: { type: "string" },
  SourcePeer: { type: "string" }, SourceSamenessGroup: { type: "string" },
  SourceType: { type: "string" }, Action: { type: "string" }, Permissions: { items: { type: "any" } },
  Meta: { type: "map" }, Precedence: { type: "int" }, CreatedAt: { type: "any" }, UpdatedAt: { type: "any" },
  Hash: { type: "any" }, CreateIndex: { type: "int" }, ModifyIndex: { type: "int" },
  LegacyID: { type: "any" }, LegacyMeta: { type: "any" }, LegacyCreateTime: { type: "any" }, LegacyUpdateTime: { type: "any" },
  RaftIndex: { type: "any" },
};

/** Consul's checkLegacyIntentionApplyAllowed: the ID API may not edit an entry written through /v1/config. */
function requireLegacyEntry(store: IntentionStore, destination: string): void {
  if (!allLegacy(store.entry(destination))) {
    throw new HttpError(500, `cannot use legacy intention API to edit intentions with a destination of ${JSON.stringify(destination)} after editing them via a service-intentions config entry`);
  }
}

function requiredParam(req: AgentRequest, name: string): string {
  const v = req.query.get(name);
  // spec §5.3: plain fmt.Errorf in Consul, hence 500.
  if (!v) throw new HttpError(500, `required query parameter '${name}' not set`);
  return v;
}

function parseName(text: string, allowPeer: boolean): IntentionName {
  try {
    return parseIntentionName(text, allowPeer);
  } catch (err) {
    throw new HttpError(500, (err as Error).message);
  }
}

function canRead(req: AgentRequest, i: Intention): boolean {
  const acl = req.acl();
  return acl.allowed("intentions", "read", i.sourceName) || acl.allowed("intentions", "read", i.destinationName);
}

function validated(i: Intention | Omit<Intention, "precedence" | "createIndex" | "modifyIndex">): void {
  const errs = validateIntention({ ...i, precedence: 0, createIndex: 0, modifyIndex: 0 });
  if (errs.length > 0) throw new HttpError(500, `Invalid Intention: ${multiError(errs)}`);
}

/** Decodes a legacy (ID API) body into an intention without identity defaults applied. */
function fromLegacyBody(body: unknown): Omit<Intention, "precedence" | "createIndex" | "modifyIndex"> {
  const b = decodeStrict(body, INTENTION_SCHEMA);
  const sourceType = (b.SourceType as string | undefined) || "consul";
  if (sourceType !== "consul") throw new HttpError(500, `Invalid Intention: ${multiError(["SourceType must be set to 'consul'"])}`);
  const perms = b.Permissions as unknown[] | undefined;
  return {
    description: (b.Description as string | undefined) ?? "",
    sourcePartition: (b.SourcePartition as string | undefined) || "default",
    sourceNS: (b.SourceNS as string | undefined) || "default",
    sourceName: (b.SourceName as string | undefined) ?? "",
    ...(b.SourcePeer ? { sourcePeer: b.SourcePeer as string } : {}),
    destinationPartition: (b.DestinationPartition as string | undefined) || "default",
    destinationNS: (b.DestinationNS as string | undefined) || "default",
    destinationName: (b.DestinationName as string | undefined) ?? "",
    action: ((b.Action as string | undefined) ?? "") as Intention["action"],
    ...(perms && perms.length > 0 ? { permissions: perms.map(normalizePermission) } : {}),
    ...(b.Meta ? { meta: b.Meta as Record<string, string> } : {}),
  };
}

/** The `/v1/connect/intentions*` routes (spec §5.3). */
export function intentionRoutes(store: IntentionStore, ctx: DevAgentContext): Route[] {
  const meta = (index: number, json: unknown, headers?: Record<string, string>): Reply => ({ json, index, meta: true, ...(headers ? { headers } : {}) });

  const list = async (req: AgentRequest): Promise<Reply> => {
    const { index, value } = await blockingRead(req, [TABLE], () => {
      const all = store.list();
      const visible = all.filter((i) => canRead(req, i));
      return { index: ctx.feed.indexOf(TABLE), value: { items: visible.map(renderIntention), filtered: visible.length < all.length } };
    });
    const items = applyFilter(req.query, value.items, INTENTION_FIELDS);
    return meta(index, items, value.filtered && req.token ? { "X-Consul-Results-Filtered-By-ACLs": "true" } : undefined);
  };

  const createLegacy = (req: AgentRequest): Reply => {
    const input = fromLegacyBody(req.body);
    if (decodeStrict(req.body, INTENTION_SCHEMA).ID) throw new HttpError(500, "ID must be empty when creating a new intention");
    validated(input);
    req.acl().require("intentions", "write", input.destinationName);
    const src: IntentionName = { partition: input.sourcePartition, ns: input.sourceNS, name: input.sourceName, ...(input.sourcePeer ? { peer: input.sourcePeer } : {}) };
    const dst: IntentionName = { partition: input.destinationPartition, ns: input.destinationNS, name: input.destinationName };
    const existing = store.getExact(src, dst);
    if (existing) throw new HttpError(500, `duplicate intention found: ${intentionString(existing)}`);
    requireLegacyEntry(store, input.destinationName);
    const now = new Date().toISOString();
    const stored = store.put({ ...input, id: randomUUID(), createdAt: now, updatedAt: now });
    return { json: { ID: stored.id } };
  };

  const exactIdentity = (req: AgentRequest): { src: IntentionName; dst: IntentionName } => {
    const s = requiredParam(req, "source");
    const d = requiredParam(req, "destination");
    return { src: parseName(s, true), dst: parseName(d, false) };
  };

  const exact = async (req: AgentRequest): Promise<Reply> => {
    const { src, dst } = exactIdentity(req);
    if (req.method === "GET") {
      const acl = req.acl();
      if (!acl.allowed("intentions", "read", src.name) && !acl.allowed("intentions", "read", dst.name)) {
        acl.require("intentions", "read", dst.name);
      }
      const { index, value } = await blockingRead(req, [TABLE], () => ({ index: ctx.feed.indexOf(TABLE), value: store.getExact(src, dst) }));
      if (!value) throw new HttpError(404, "Intention not found");
      return meta(index, renderIntention(value));
    }
    req.acl().require("intentions", "write", dst.name);
    if (req.method === "DELETE") {
      store.deleteExact(src, dst);
      return { json: true };
    }
    const b = fromLegacyBody(req.body); // identity comes from the query string; a body ID is ignored
    const prev = store.getExact(src, dst);
    const input = {
      ...(prev?.id ? { id: prev.id } : {}),
      description: b.description ?? "",
      sourcePartition: src.partition, sourceNS: src.ns, sourceName: src.name, ...(src.peer ? { sourcePeer: src.peer } : {}),
      destinationPartition: dst.partition, destinationNS: dst.ns, destinationName: dst.name,
      action: b.action,
      ...(b.permissions ? { permissions: b.permissions } : {}),
      // spec §5.3: Meta cannot be persisted through the exact endpoint.
      ...(prev?.createdAt ? { createdAt: prev.createdAt, updatedAt: new Date().toISOString() } : {}),
    };
    validated(input);
    store.put(input);
    return { json: true };
  };

  const match = async (req: AgentRequest): Promise<Reply> => {
    const bys = req.query.getAll("by");
    if (bys.length !== 1 || bys[0] === "") throw new HttpError(500, "required query parameter 'by' not set");
    const by = bys[0];
    if (by !== "source" && by !== "destination") throw new HttpError(500, "'by' parameter must be one of 'source' or 'destination'");
    const names = req.query.getAll("name");
    if (names.length === 0) throw new HttpError(500, "required query parameter 'name' not set");
    const parsed = names.map((n) => [n, parseName(n, by === "source")] as const);
    for (const [, n] of parsed) req.acl().require("intentions", "read", n.name);
    const { index, value } = await blockingRead(req, [TABLE], () => {
      const all = store.list();
      const out: Record<string, unknown[]> = {};
      for (const [given, n] of parsed) out[given] = all.filter((i) => intentionMatches(i, by, n)).map(renderIntention);
      return { index: ctx.feed.indexOf(TABLE), value: out };
    });
    return meta(index, value);
  };

  const check = (req: AgentRequest): Reply => {
    const { src, dst } = exactIdentity(req);
    const sourceType = req.query.get("source-type");
    if (sourceType && sourceType !== "consul") throw new HttpError(400, `unsupported SourceType: ${sourceType}`);
    req.acl().require("service", "read", dst.name);
    const d = decide(store.list(), src, dst, defaultIntentionAllow(ctx));
    return { json: { Allowed: d.authorized } };
  };

  const byId = (req: AgentRequest): Reply => {
    const id = req.rest;
    if (!UUID_RE.test(id)) throw new HttpError(400, `Invalid intention ID: ${JSON.stringify(id)}`);
    const existing = store.getById(id);
    if (req.method === "GET") {
      if (!existing) throw new HttpError(404, "Intention not found");
      if (!canRead(req, existing)) req.acl().require("intentions", "read", existing.destinationName);
      return meta(ctx.feed.indexOf(TABLE), renderIntention(existing));
    }
    if (req.method === "DELETE") {
      if (!existing) throw new HttpError(404, "Intention not found");
      req.acl().require("intentions", "write", existing.destinationName);
      requireLegacyEntry(store, existing.destinationName);
      store.deleteById(id);
      return { json: true };
    }
    if (!existing) throw new HttpError(404, "Intention not found");
    const input = fromLegacyBody(req.body);
    validated(input);
    req.acl().require("intentions", "write", existing.destinationName);
    req.acl().require("intentions", "write", input.destinationName);
    const clash = store.getExact(
      { partition: input.sourcePartition, ns: input.sourceNS, name: input.sourceName, ...(input.sourcePeer ? { peer: input.sourcePeer } : {}) },
      { partition: input.destinationPartition, ns: input.destinationNS, name: input.destinationName },
    );
    if (clash && clash.id !== id) throw new HttpError(500, `duplicate intention found: ${intentionString(clash)}`);
    requireLegacyEntry(store, existing.destinationName);
    requireLegacyEntry(store, input.destinationName);
    store.put(
      { ...input, id, ...(existing.createdAt ? { createdAt: existing.createdAt } : {}), updatedAt: new Date().toISOString() },
      { replaceKey: intentionKey(existing) },
    );
    return { json: { ID: id } };
  };

  return [
    { path: "/v1/connect/intentions", methods: ["GET", "POST"], handler: (req) => (req.method === "POST" ? createLegacy(req) : list(req)) },
    { path: "/v1/connect/intentions/exact", methods: ["GET", "PUT", "DELETE"], handler: exact },
    { path: "/v1/connect/intentions/match", methods: ["GET"], handler: match },
    { path: "/v1/connect/intentions/check", methods: ["GET"], handler: check },
    { path: "/v1/connect/intentions/", methods: ["GET", "PUT", "DELETE"], handler: byId },
  ];
}
