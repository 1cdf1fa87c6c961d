// Prepared queries (spec §7.3): create/list/get/update/delete and execute, with `?connect=true`
// resolving the query's service to its mesh endpoints like /v1/health/connect.

import { randomUUID } from "node:crypto";
import { blockingRead } from "./blocking.js";
import type { Catalog } from "./catalog.js";
import type { DevAgentContext } from "./context.js";
import { decodeStrict, type Schema } from "./decode.js";
import { aclVisible, checkDatacenter, filterByHealth, healthEntries, parseGoBool, renderHealthEntries, selectServices } from "./health.js";
import { HttpError } from "./http-error.js";
import { methodNotAllowed, type AgentRequest, type Reply, type Route } from "./router.js";

const TABLE = "queries";

interface PreparedQuery {
  id: string;
  name: string;
  session: string;
  token: string;
  service: string;
  onlyPassing: boolean;
  connect: boolean;
  tags: string[];
  ignoreCheckIds: string[];
  near: string;
  failover: { NearestN: number; Datacenters: string[] | null };
  nodeMeta: Record<string, string> | null;
  serviceMeta: Record<string, string> | null;
  dnsTtl: string;
  createIndex: number;
  modifyIndex: number;
}

const strs = { items: { type: "string" } } as const;
const QUERY_SCHEMA: Schema = {
  ID: { type: "string" }, Name: { type: "string" }, Session: { type: "string" }, Token: { type: "string" },
  Template: { fields: { Type: { type: "string" }, Regexp: { type: "string" }, RemoveEmptyTags: { type: "bool" } } },
  Service: {
    fields: {
      Service: { type: "string" },
      Failover: { fields: { NearestN: { type: "int" }, Datacenters: strs, Targets: { type: "any" } } },
      OnlyPassing: { type: "bool" }, IgnoreCheckIDs: strs, Near: { type: "string" }, Tags: strs,
      NodeMeta: { type: "map" }, ServiceMeta: { type: "map" }, Connect: { fields: { Enabled: { type: "bool" } } },
      Peer: { type: "string" }, SamenessGroup: { type: "string" }, Namespace: { type: "string" }, Partition: { type: "string" },
    },
  },
  DNS: { fields: { TTL: { type: "string" } } },
  CreateIndex: { type: "int" }, ModifyIndex: { type: "int" },
};

type Obj = Record<string, unknown>;

function parseQuery(body: unknown): Omit<PreparedQuery, "id" | "createIndex" | "modifyIndex"> {
  const b = decodeStrict(body, QUERY_SCHEMA);
  const svc = (b.Service as Obj | undefined) ?? {};
  const service = (svc.Service as string | undefined) ?? "";
  // Consul returns these validation errors from the RPC layer, hence 500.
  if (service === "") throw new HttpError(500, "Must provide a Service name to query");
  const failover = (svc.Failover as Obj | undefined) ?? {};
  return {
    name: (b.Name as string | undefined) ?? "",
    session: (b.Session as string | undefined) ?? "",
    token: (b.Token as string | undefined) ?? "",
    service,
    onlyPassing: svc.OnlyPassing === true,
    connect: (svc.Connect as Obj | undefined)?.Enabled === true,
    tags: (svc.Tags as string[] | undefined) ?? [],
    ignoreCheckIds: (svc.IgnoreCheckIDs as string[] | undefined) ?? [],
    near: (svc.Near as string | undefined) ?? "",
    failover: { NearestN: (failover.NearestN as number | undefined) ?? 0, Datacenters: (failover.Datacenters as string[] | undefined) ?? null },
    nodeMeta: (svc.NodeMeta as Record<string, string> | undefined) ?? null,
    serviceMeta: (svc.ServiceMeta as Record<string, string> | undefined) ?? null,
    dnsTtl: ((b.DNS as Obj | undefined)?.TTL as string | undefined) ?? "",
  };
}

function renderQuery(q: PreparedQuery): Obj {
  return {
    ID: q.id,
    Name: q.name,
    Session: q.session,
    Token: q.token ? "<hidden>" : "",
    Template: { Type: "", Regexp: "", RemoveEmptyTags: false },
    Service: {
      Service: q.service,
      Failover: q.failover,
      OnlyPassing: q.onlyPassing,
      IgnoreCheckIDs: q.ignoreCheckIds.length ? q.ignoreCheckIds : null,
      Near: q.near,
      Tags: q.tags.length ? q.tags : null,
      NodeMeta: q.nodeMeta,
      ServiceMeta: q.serviceMeta,
      Connect: { Enabled: q.connect },
    },
    DNS: { TTL: q.dnsTtl },
    CreateIndex: q.createIndex,
    ModifyIndex: q.modifyIndex,
  };
}

/** Tag filter of prepared queries: every tag must be present, `!tag` must be absent (case-insensitive). */
function tagsMatch(have: readonly string[], want: readonly string[]): boolean {
  const lower = new Set(have.map((t) => t.toLowerCase()));
  return want.every((t) => (t.startsWith("!") ? !lower.has(t.slice(1).toLowerCase()) : lower.has(t.toLowerCase())));
}

/** The `/v1/query` routes over `catalog`. */
export function queryRoutes(catalog: Catalog, ctx: DevAgentContext): Route[] {
  const queries = new Map<string, PreparedQuery>();

  const find = (idOrName: string): PreparedQuery | undefined =>
    queries.get(idOrName) ?? [...queries.values()].find((q) => q.name !== "" && q.name === idOrName);

  const nameClash = (name: string, exceptId?: string): void => {
    if (!name) return;
    const other = [...queries.values()].find((q) => q.id !== exceptId && (q.name === name || q.id === name));
    if (other) throw new HttpError(500, `Name "${name}" aliases an existing query name`);
  };

  const root = async (req: AgentRequest): Promise<Reply> => {
    if (req.method === "POST") {
      const q = parseQuery(req.body);
      if (q.name) req.acl().require("query", "write", q.name);
      nameClash(q.name);
      const index = ctx.feed.bump(TABLE);
      const id = randomUUID();
      queries.set(id, { ...q, id, createIndex: index, modifyIndex: index });
      return { json: { ID: id } };
    }
    const { index, value } = await blockingRead(req, [TABLE], () => ({
      index: ctx.feed.indexOf(TABLE),
      value: [...queries.values()]
        .filter((q) => q.name === "" || req.acl().allowed("query", "read", q.name))
        .sort((a, b) => a.createIndex - b.createIndex)
        .map(renderQuery),
    }));
    return { json: value, index, meta: true };
  };

  const execute = (req: AgentRequest, q: PreparedQuery): Reply => {
    checkDatacenter(req, ctx);
    let connect = q.connect;
    const rawConnect = req.query.get("connect");
    if (rawConnect !== null && rawConnect !== "") {
      const v = parseGoBool(rawConnect);
      if (v === undefined) throw new HttpError(500, `Error parsing 'connect' value: strconv.ParseBool: parsing ${JSON.stringify(rawConnect)}: invalid syntax`);
      connect = v;
    }
    let limit = 0;
    const rawLimit = req.query.get("limit");
    if (rawLimit !== null && rawLimit !== "") {
      if (!/^[+-]?\d+$/.test(rawLimit)) throw new HttpError(500, `Bad limit: strconv.Atoi: parsing ${JSON.stringify(rawLimit)}: invalid syntax`);
      limit = Number(rawLimit);
    }
    const selected = selectServices(catalog, q.service, connect).filter((l) => tagsMatch(l.service.tags, q.tags));
    const { visible, filtered } = aclVisible(req, ctx, selected);
    const ignore = new Set(q.ignoreCheckIds);
    const entries = healthEntries(catalog, visible);
    const healthy = new Set(
      filterByHealth(entries.map((e) => ({ e, checks: e.checks.filter((c) => !ignore.has(c.id)) })), q.onlyPassing).map((x) => x.e),
    );
    let kept = entries.filter((e) => healthy.has(e));
    if (limit > 0) kept = kept.slice(0, limit);
    const index = ctx.feed.indexOf("services", "checks", "nodes", TABLE);
    return {
      json: {
        Service: q.service,
        Nodes: renderHealthEntries(kept, catalog, ctx),
        DNS: { TTL: q.dnsTtl },
        Datacenter: ctx.cfg.datacenter,
        PeerName: "",
        Failovers: 0,
        // spec §7.3: the embedded QueryMeta leaks into the body.
        Index: index,
        LastContact: 0,
        KnownLeader: true,
        ConsistencyLevel: "leader",
        NotModified: false,
        Backend: 0,
        ResultsFilteredByACLs: filtered && req.token !== "",
      },
      index,
      meta: true,
    };
  };

  const specific = async (req: AgentRequest): Promise<Reply> => {
    const [idOrName = "", action, ...extra] = req.rest.split("/");
    if (extra.length > 0 || (action !== undefined && action !== "execute" && action !== "explain")) {
      throw new HttpError(404, "Invalid URL path: not a recognized HTTP API endpoint\n");
    }
    if (action !== undefined) {
      if (req.method !== "GET") throw methodNotAllowed(req.method, ["GET"]);
      const q = find(idOrName);
      if (!q) throw new HttpError(404, "Query not found");
      if (action === "explain") return { json: { Query: renderQuery(q) }, index: q.modifyIndex, meta: true };
      return execute(req, q);
    }
    const q = queries.get(idOrName);
    switch (req.method) {
      case "GET": {
        if (!q) throw new HttpError(404, "Query not found");
        if (q.name) req.acl().require("query", "read", q.name);
        const { index, value } = await blockingRead(req, [TABLE], () => ({
          index: ctx.feed.indexOf(TABLE),
          value: queries.get(idOrName),
        }));
        if (!value) throw new HttpError(404, "Query not found");
        return { json: [renderQuery(value)], index, meta: true };
      }
      case "PUT": {
        if (!q) throw new HttpError(404, "Query not found");
        const next = parseQuery(req.body);
        if (q.name) req.acl().require("query", "write", q.name);
        if (next.name) req.acl().require("query", "write", next.name);
        nameClash(next.name, q.id);
        queries.set(q.id, { ...next, id: q.id, createIndex: q.createIndex, modifyIndex: ctx.feed.bump(TABLE) });
        return {};
      }
      case "DELETE": {
        if (!q) throw new HttpError(404, "Query not found");
        if (q.name) req.acl().require("query", "write", q.name);
        queries.delete(q.id);
        ctx.feed.bump(TABLE);
        return {};
      }
      default:
        throw methodNotAllowed(req.method, ["GET", "PUT", "DELETE"]);
    }
  };

  return [
    { path: "/v1/query", methods: ["GET", "POST"], handler: root },
    { path: "/v1/query/", methods: ["GET", "PUT", "DELETE"], handler: specific },
  ];
}
