// Discovery views of the local state (spec §7.1, §7.2): /v1/health/{service,connect}/:name and
// /v1/catalog/{service,connect}/:name, blocking on the "services", "checks" and "nodes" tables.

import { blockingRead } from "./blocking.js";
import { applyFilter } from "./catalog-filter.js";
import type { CatalogNode } from "./catalog-external.js";
import { renderCheck, renderNodeInfo, renderNodeService, renderServiceNode, type CheckRecord, type NodeInfo, type ServiceRecord } from "./catalog-model.js";
import type { Catalog } from "./catalog.js";
import type { DevAgentContext } from "./context.js";
import { HttpError } from "./http-error.js";
import type { AgentRequest, Reply, Route } from "./router.js";

const TABLES = ["services", "checks", "nodes"] as const;

/** A service instance on its catalog node. */
export interface Located {
  node: CatalogNode;
  service: ServiceRecord;
}

export interface HealthEntry {
  node: NodeInfo;
  service: ServiceRecord;
  checks: CheckRecord[];
}

/** Which instances a lookup of `name` selects on every node: instances of it, or (connect) its mesh endpoints. */
export function selectServices(catalog: Catalog, name: string, connect: boolean): Located[] {
  return catalog.nodes().flatMap((node) =>
    node.services
      .filter((s) =>
        connect
          ? (s.kind === "connect-proxy" && s.proxy?.destinationServiceName === name) || (s.name === name && s.connectNative)
          : s.name === name,
      )
      .map((service) => ({ node, service })),
  );
}

/** The `CheckServiceNode` entries: the node's own checks, then the instance's. */
export function healthEntries(_catalog: Catalog, located: readonly Located[]): HealthEntry[] {
  return located.map(({ node, service }) => ({
    node: node.info,
    service,
    checks: [...node.checks.filter((c) => c.serviceId === ""), ...node.checks.filter((c) => c.serviceId === service.id)],
  }));
}

/** Renders entries as `CheckServiceNode` JSON (spec §7.1). */
export function renderHealthEntries(entries: readonly HealthEntry[], _catalog: Catalog, _ctx: DevAgentContext): Record<string, unknown>[] {
  return entries.map((e) => ({
    Node: renderNodeInfo(e.node),
    Service: renderNodeService(e.service),
    Checks: e.checks.map((c) => renderCheck(c, e.node.name)),
  }));
}

/**
 * Spec §7.1 `?passing` filter, including Consul's reordering (a removed entry is swapped with the
 * last one). `onlyPassing` false drops only critical entries (prepared queries use that).
 */
export function filterByHealth<T extends { checks: readonly CheckRecord[] }>(entries: readonly T[], onlyPassing: boolean): T[] {
  const out = entries.slice();
  let n = out.length;
  for (let i = 0; i < n; i++) {
    const bad = out[i]!.checks.some((c) => (onlyPassing ? c.status !== "passing" : c.status === "critical" || c.status === "maintenance"));
    if (bad) {
      out[i] = out[n - 1]!;
      n--;
      i--;
    }
  }
  return out.slice(0, n);
}

/** Go's strconv.ParseBool. */
export function parseGoBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

/** `?dc=`: the agent's own datacenter or nothing; anything else is 500 `No path to datacenter`. */
export function checkDatacenter(req: AgentRequest, ctx: DevAgentContext): void {
  const dc = req.query.get("dc");
  if (dc && dc !== ctx.cfg.datacenter) throw new HttpError(500, "No path to datacenter");
}

/** Drops entries the token may not see (spec §11.3): node:read on the node and service:read on the entry's name. */
export function aclVisible(req: AgentRequest, _ctx: DevAgentContext, located: readonly Located[]): { visible: Located[]; filtered: boolean } {
  const acl = req.acl();
  const visible = located.filter((l) => acl.allowed("node", "read", l.node.info.name) && acl.allowed("service", "read", l.service.name));
  return { visible, filtered: visible.length < located.length };
}

/** `?node-meta=key:value` (repeatable): every pair must match the node's Meta (Consul's parseMetaFilter). */
export function nodeMetaMatches(req: AgentRequest, meta: Record<string, string>): boolean {
  return req.query.getAll("node-meta").every((pair) => {
    const i = pair.indexOf(":");
    const [k, v] = i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)];
    return Object.hasOwn(meta, k) && meta[k] === v;
  });
}

/** `?tag=` (every one given) and `?node-meta=` (parseMetaFilter) on the service lookups. */
function byTagAndNodeMeta(located: Located[], req: AgentRequest): Located[] {
  const tags = req.query.getAll("tag");
  return located.filter((l) => tags.every((t) => l.service.tags.includes(t)) && nodeMetaMatches(req, l.node.info.meta));
}

/** `X-Consul-Results-Filtered-By-ACLs: true`, sent only when something was dropped and the request carried a token (spec §1.3). */
export function filteredHeader(req: AgentRequest, filtered: boolean): Record<string, string> | undefined {
  return filtered && req.token ? { "X-Consul-Results-Filtered-By-ACLs": "true" } : undefined;
}

/** The health and catalog discovery routes. */
export function healthRoutes(catalog: Catalog, ctx: DevAgentContext): Route[] {
  const health = (connect: boolean) => async (req: AgentRequest): Promise<Reply> => {
    const name = req.rest;
    if (name === "") throw new HttpError(400, "Missing service name");
    checkDatacenter(req, ctx);
    // spec §11.3: 403 without service:read on the name asked for (since 1.16).
    if (connect) req.acl().require("service", "read", name);
    let passing = false;
    if (req.query.has("passing")) {
      const raw = req.query.get("passing")!;
      const v = raw === "" ? true : parseGoBool(raw);
      if (v === undefined) throw new HttpError(400, "Invalid value for ?passing");
      passing = v;
    }
    const { index, value } = await blockingRead(req, TABLES, () => {
      const { visible, filtered } = aclVisible(req, ctx, byTagAndNodeMeta(selectServices(catalog, name, connect), req));
      let entries = healthEntries(catalog, visible);
      if (passing) entries = filterByHealth(entries, true);
      return { index: ctx.feed.indexOf(...TABLES), value: { entries, filtered } };
    });
    const json = applyFilter(req.query, renderHealthEntries(value.entries, catalog, ctx), ["Node", "Service", "Checks"]);
    const headers = filteredHeader(req, value.filtered);
    return { json, index, meta: true, ...(headers ? { headers } : {}) };
  };

  const catalogService = (connect: boolean) => async (req: AgentRequest): Promise<Reply> => {
    const name = req.rest;
    if (name === "") throw new HttpError(400, "Missing service name");
    checkDatacenter(req, ctx);
    const { index, value } = await blockingRead(req, ["services", "nodes"], () => {
      const { visible, filtered } = aclVisible(req, ctx, byTagAndNodeMeta(selectServices(catalog, name, connect), req));
      return { index: ctx.feed.indexOf("services", "nodes"), value: { visible, filtered } };
    });
    const rendered = value.visible.map((l) => renderServiceNode(l.service, l.node.info));
    const json = applyFilter(req.query, rendered, rendered[0] ? Object.keys(rendered[0]) : undefined);
    const headers = filteredHeader(req, value.filtered);
    return { json, index, meta: true, ...(headers ? { headers } : {}) };
  };

  return [
    { path: "/v1/health/connect/", methods: ["GET"], handler: health(true) },
    { path: "/v1/health/service/", methods: ["GET"], handler: health(false) },
    { path: "/v1/catalog/connect/", methods: ["GET"], handler: catalogService(true) },
    { path: "/v1/catalog/service/", methods: ["GET"], handler: catalogService(false) },
  ];
}
