// The catalog and health list reads Consul's tools use (spec §12.1; Consul's api-docs catalog.mdx,
// health.mdx, agent/index.mdx "List Members"; handlers in agent/catalog_endpoint.go and
// agent/health_endpoint.go): blocking on the change feed, `?filter`, `?node-meta`, and ACL
// filtering that drops what the token may not read and never answers 403 for the list.

import { blockingRead } from "./blocking.js";
import { applyFilter } from "./catalog-filter.js";
import type { CatalogNode } from "./catalog-external.js";
import { CHECK_FIELDS, renderCheck, renderNodeInfo, renderNodeService, renderServiceNode, type CheckRecord } from "./catalog-model.js";
import type { Catalog } from "./catalog.js";
import type { DevAgentContext } from "./context.js";
import { checkDatacenter, filteredHeader, nodeMetaMatches } from "./health.js";
import { HttpError } from "./http-error.js";
import type { AgentRequest, Reply, Route } from "./router.js";
import { renderMember } from "./self.js";

const NODE_FIELDS = ["ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex"] as const;
const MEMBER_FIELDS = [
  "Name", "Addr", "Port", "Tags", "Status", "ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur",
] as const;

/** The read result plus whether ACLs dropped anything, and the reply with setMeta headers. */
function listReply(req: AgentRequest, index: number, json: unknown, filtered: boolean): Reply {
  const headers = filteredHeader(req, filtered);
  return { json, index, meta: true, ...(headers ? { headers } : {}) };
}

/** The catalog/health list routes over every catalog node (the agent's own and registered ones). */
export function catalogReadRoutes(catalog: Catalog, ctx: DevAgentContext): Route[] {
  const { cfg } = ctx;
  const findNode = (name: string): CatalogNode | undefined => catalog.nodes().find((n) => n.info.name === name);
  const metaOk = (req: AgentRequest, n: CatalogNode) => nodeMetaMatches(req, n.info.meta);

  /** Checks the token may read: node:read on the node, plus service:read on a service check's service. */
  const readableChecks = (req: AgentRequest, checks: ReadonlyArray<{ node: string; check: CheckRecord }>) => {
    const acl = req.acl();
    const visible = checks.filter(({ node, check: c }) => acl.allowed("node", "read", node) && (c.serviceId === "" || acl.allowed("service", "read", c.serviceName)));
    return { visible, filtered: visible.length < checks.length };
  };

  const checksList = (select: (n: CatalogNode) => CheckRecord[], opts: { nodeMeta: boolean; node?: string }) => async (req: AgentRequest): Promise<Reply> => {
    checkDatacenter(req, ctx);
    // Consul's check reads carry the checks table's index (agent/consul/state/catalog.go).
    const { index, value } = await blockingRead(req, ["checks"], () => {
      const chosen = catalog
        .nodes()
        .filter((n) => (opts.node === undefined || n.info.name === opts.node) && (!opts.nodeMeta || metaOk(req, n)))
        .flatMap((n) => select(n).map((check) => ({ node: n.info.name, check })));
      return { index: ctx.feed.indexOf("checks"), value: readableChecks(req, chosen) };
    });
    const json = applyFilter(req.query, value.visible.map((x) => renderCheck(x.check, x.node)), CHECK_FIELDS);
    return listReply(req, index, json, value.filtered);
  };

  const services = async (req: AgentRequest): Promise<Reply> => {
    checkDatacenter(req, ctx);
    const { index, value } = await blockingRead(req, ["services", "nodes"], () => {
      const acl = req.acl();
      const all = catalog.nodes().filter((n) => metaOk(req, n)).flatMap((n) => n.services.map((service) => ({ node: n, service })));
      const visible = all.filter((l) => acl.allowed("service", "read", l.service.name));
      return { index: ctx.feed.indexOf("services", "nodes"), value: { visible, filtered: visible.length < all.length } };
    });
    // Catalog.ListServices: ?filter is evaluated against each ServiceNode, then names are grouped with their tags.
    const rows = applyFilter(req.query, value.visible.map((l) => renderServiceNode(l.service, l.node.info)));
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
      // Catalog.ListNodes applies ?filter before the ACL filter, so the header only counts what the filter kept.
      const all = applyFilter(req.query, catalog.nodes().filter((n) => metaOk(req, n)).map((n) => renderNodeInfo(n.info)), NODE_FIELDS);
      const visible = all.filter((n) => req.acl().allowed("node", "read", n.Node as string));
      return { index: ctx.feed.indexOf("nodes"), value: { visible, filtered: visible.length < all.length } };
    });
    return listReply(req, index, value.visible, value.filtered);
  };

  /** The node and its services the token may read, or no node when it is unknown or unreadable. */
  const nodeServices = (req: AgentRequest, name: string) => {
    const acl = req.acl();
    const n = findNode(name);
    if (!n || !acl.allowed("node", "read", name)) return { node: undefined, services: [], filtered: n !== undefined };
    const visible = n.services.filter((s) => acl.allowed("service", "read", s.name));
    return { node: n, services: visible, filtered: visible.length < n.services.length };
  };

  const nodeName = (req: AgentRequest): string => {
    if (req.rest === "") throw new HttpError(400, "Missing node name");
    checkDatacenter(req, ctx);
    return req.rest;
  };

  /** One node's services, blocking on services and nodes, rendered by `render` (null: unknown node). */
  const nodeRead =
    (render: (req: AgentRequest, node: CatalogNode, services: CatalogNode["services"]) => unknown, unknown: unknown) =>
    async (req: AgentRequest): Promise<Reply> => {
      const name = nodeName(req);
      const { index, value } = await blockingRead(req, ["services", "nodes"], () => ({
        index: ctx.feed.indexOf("services", "nodes"),
        value: nodeServices(req, name),
      }));
      return listReply(req, index, value.node ? render(req, value.node, value.services) : unknown, value.filtered);
    };

  // GET /v1/catalog/node/:node → {Node, Services: {id: NodeService}}; an unknown node is `null` (catalog_endpoint.go).
  const nodeMap = nodeRead(
    (_req, node, services) => ({ Node: renderNodeInfo(node.info), Services: Object.fromEntries(services.map((s) => [s.id, renderNodeService(s)])) }),
    null,
  );

  // GET /v1/catalog/node-services/:node → {Node, Services: [NodeService]}; unknown: both null (NodeServiceList zero value).
  const nodeList = nodeRead(
    (req, node, services) => ({ Node: renderNodeInfo(node.info), Services: applyFilter(req.query, services.map(renderNodeService)) }),
    { Node: null, Services: null },
  );

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
        return checksList((n) => n.checks.filter((c) => c.serviceId !== "" && c.serviceName === name), { nodeMeta: true })(req);
      },
    },
    {
      path: "/v1/health/node/",
      methods: ["GET"],
      handler: (req) => checksList((n) => n.checks, { nodeMeta: false, node: nodeName(req) })(req),
    },
    {
      path: "/v1/health/state/",
      methods: ["GET"],
      handler: (req) => {
        const state = req.rest;
        if (state === "") throw new HttpError(400, "Missing check state");
        // state store checksInStateTxn: "any" is every check; any other word is an index lookup (no 400).
        return checksList((n) => n.checks.filter((c) => state === "any" || c.status === state), { nodeMeta: true })(req);
      },
    },
    { path: "/v1/agent/members", methods: ["GET"], handler: members },
  ];
}
