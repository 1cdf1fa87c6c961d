// The catalog and health list reads Consul's tools use (spec §12.1; Consul's api-docs catalog.mdx,
// health.mdx, agent/index.mdx "List Members"; handlers in agent/catalog_endpoint.go and
// agent/health_endpoint.go): blocking on the change feed, `?filter`, `?node-meta`, and ACL
// filtering that drops what the token may not read and never answers 403 for the list.

import { blockingRead } from "./blocking.js";
import { applyFilter } from "./catalog-filter.js";
import { CHECK_FIELDS, renderCheck, renderNode, renderNodeService, renderServiceNode, type CheckRecord } from "./catalog-model.js";
import type { Catalog } from "./catalog.js";
import type { DevAgentContext } from "./context.js";
import { checkDatacenter, filteredHeader } from "./health.js";
import { HttpError } from "./http-error.js";
import type { AgentRequest, Reply, Route } from "./router.js";
import { renderMember } from "./self.js";

const NODE_FIELDS = ["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex"] as const;
const MEMBER_FIELDS = [
  "Name", "Addr", "Port", "Tags", "Status", "ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur",
] as const;

/** `?node-meta=key:value` (repeatable): every pair must match the node's Meta (Consul's parseMetaFilter). */
function nodeMetaMatches(req: AgentRequest, meta: Record<string, unknown>): boolean {
  return req.query.getAll("node-meta").every((pair) => {
    const i = pair.indexOf(":");
    const [k, v] = i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)];
    return Object.hasOwn(meta, k) && meta[k] === v;
  });
}

/** The read result plus whether ACLs dropped anything, and the reply with setMeta headers. */
function listReply(req: AgentRequest, index: number, json: unknown, filtered: boolean): Reply {
  const headers = filteredHeader(req, filtered);
  return { json, index, meta: true, ...(headers ? { headers } : {}) };
}

/** The catalog/health list routes over the dev agent's one node. */
export function catalogReadRoutes(catalog: Catalog, ctx: DevAgentContext): Route[] {
  const { cfg } = ctx;
  const node = () => renderNode(cfg, catalog.nodeIndex);
  const isLocal = (name: string) => name === cfg.nodeName;

  /** Checks the token may read: node:read on the node, plus service:read on a service check's service. */
  const readableChecks = (req: AgentRequest, checks: readonly CheckRecord[]): { visible: CheckRecord[]; filtered: boolean } => {
    const acl = req.acl();
    const nodeOk = acl.allowed("node", "read", cfg.nodeName);
    const visible = checks.filter((c) => nodeOk && (c.serviceId === "" || acl.allowed("service", "read", c.serviceName)));
    return { visible, filtered: visible.length < checks.length };
  };
  const allChecks = () => [catalog.serfHealth(), ...[...catalog.allChecks()].sort((a, b) => (a.id < b.id ? -1 : 1))];

  const checksList = (select: (req: AgentRequest) => CheckRecord[], opts: { nodeMeta: boolean }) => async (req: AgentRequest): Promise<Reply> => {
    checkDatacenter(req, ctx);
    // Consul's check reads carry the checks table's index (agent/consul/state/catalog.go).
    const { index, value } = await blockingRead(req, ["checks"], () => {
      const chosen = opts.nodeMeta && !nodeMetaMatches(req, node().Meta as Record<string, unknown>) ? [] : select(req);
      return { index: ctx.feed.indexOf("checks"), value: readableChecks(req, chosen) };
    });
    const json = applyFilter(req.query, value.visible.map((c) => renderCheck(c, cfg.nodeName)), CHECK_FIELDS);
    return listReply(req, index, json, value.filtered);
  };

  const services = async (req: AgentRequest): Promise<Reply> => {
    checkDatacenter(req, ctx);
    const { index, value } = await blockingRead(req, ["services", "nodes"], () => {
      const acl = req.acl();
      const all = nodeMetaMatches(req, node().Meta as Record<string, unknown>) ? catalog.services() : [];
      const visible = all.filter((s) => acl.allowed("service", "read", s.name));
      return { index: ctx.feed.indexOf("services", "nodes"), value: { visible, filtered: visible.length < all.length } };
    });
    // Consul evaluates ?filter against each ServiceNode, then groups the names with their tags.
    const rows = applyFilter(req.query, value.visible.map((s) => renderServiceNode(s, cfg, catalog.nodeIndex)));
    const out: Record<string, string[]> = {};
    for (const r of rows) {
      const tags = new Set([...(out[r.ServiceName as string] ?? []), ...(r.ServiceTags as string[])]);
      out[r.ServiceName as string] = [...tags].sort();
    }
    const json = Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
    return listReply(req, index, json, value.filtered);
  };

  const nodes = async (req: AgentRequest): Promise<Reply> => {
    checkDatacenter(req, ctx);
    const { index, value } = await blockingRead(req, ["nodes"], () => {
      const all = [node()].filter((n) => nodeMetaMatches(req, n.Meta as Record<string, unknown>));
      const visible = all.filter((n) => req.acl().allowed("node", "read", n.Node as string));
      return { index: ctx.feed.indexOf("nodes"), value: { visible, filtered: visible.length < all.length } };
    });
    return listReply(req, index, applyFilter(req.query, value.visible, NODE_FIELDS), value.filtered);
  };

  /** The node's services the token may read, or undefined when the node is unknown or unreadable. */
  const nodeServices = (req: AgentRequest, name: string) => {
    const acl = req.acl();
    if (!isLocal(name) || !acl.allowed("node", "read", name)) return { services: undefined, filtered: isLocal(name) };
    const all = catalog.services();
    const visible = all.filter((s) => acl.allowed("service", "read", s.name));
    return { services: visible, filtered: visible.length < all.length };
  };

  const nodeName = (req: AgentRequest): string => {
    if (req.rest === "") throw new HttpError(400, "Missing node name");
    checkDatacenter(req, ctx);
    return req.rest;
  };

  // GET /v1/catalog/node/:node → {Node, Services: {id: NodeService}}; an unknown node is `null` (catalog_endpoint.go).
  const nodeMap = async (req: AgentRequest): Promise<Reply> => {
    const name = nodeName(req);
    const { index, value } = await blockingRead(req, ["services", "nodes"], () => ({
      index: ctx.feed.indexOf("services", "nodes"),
      value: nodeServices(req, name),
    }));
    const json = value.services
      ? { Node: node(), Services: Object.fromEntries(value.services.map((s) => [s.id, renderNodeService(s)])) }
      : null;
    return listReply(req, index, json, value.filtered);
  };

  // GET /v1/catalog/node-services/:node → {Node, Services: [NodeService]}; unknown: both null (NodeServiceList zero value).
  const nodeList = async (req: AgentRequest): Promise<Reply> => {
    const name = nodeName(req);
    const { index, value } = await blockingRead(req, ["services", "nodes"], () => ({
      index: ctx.feed.indexOf("services", "nodes"),
      value: nodeServices(req, name),
    }));
    const list = value.services ? applyFilter(req.query, value.services.map(renderNodeService)) : undefined;
    const json = list ? { Node: node(), Services: list } : { Node: null, Services: null };
    return listReply(req, index, json, value.filtered);
  };

  const members = (req: AgentRequest): Reply => {
    const wan = req.query.has("wan") && req.query.get("wan") !== "0" && req.query.get("wan") !== "false";
    const all = [renderMember(ctx, { wan })];
    // aclfilter: members need node:read on their name; agent-local, so no index headers.
    const visible = all.filter(() => req.acl().allowed("node", "read", cfg.nodeName));
    return { json: applyFilter(req.query, visible, MEMBER_FIELDS) };
  };

  return [
    { path: "/v1/catalog/services", methods: ["GET"], handler: services },
    { path: "/v1/catalog/nodes", methods: ["GET"], handler: nodes },
    { path: "/v1/catalog/node/", methods: ["GET"], handler: nodeMap },
    { path: "/v1/catalog/node-services/", methods: ["GET"], handler: nodeList },
    { path: "/v1/catalog/datacenters", methods: ["GET"], handler: () => ({ json: [cfg.datacenter] }) },
    {
      path: "/v1/health/checks/",
      methods: ["GET"],
      handler: (req) => {
        if (req.rest === "") throw new HttpError(400, "Missing service name");
        const name = req.rest;
        return checksList(() => allChecks().filter((c) => c.serviceId !== "" && c.serviceName === name), { nodeMeta: true })(req);
      },
    },
    {
      path: "/v1/health/node/",
      methods: ["GET"],
      handler: (req) => checksList(() => (isLocal(nodeName(req)) ? allChecks() : []), { nodeMeta: false })(req),
    },
    {
      path: "/v1/health/state/",
      methods: ["GET"],
      handler: (req) => {
        const state = req.rest;
        if (state === "") throw new HttpError(400, "Missing check state");
        // state store checksInStateTxn: "any" is every check; any other word is an index lookup (no 400).
        return checksList(() => allChecks().filter((c) => state === "any" || c.status === state), { nodeMeta: true })(req);
      },
    },
    { path: "/v1/agent/members", methods: ["GET"], handler: members },
  ];
}
