// Nodes, catalog-only services and checks registered through PUT /v1/catalog/register and removed
// through /v1/catalog/deregister (Consul's api-docs catalog.mdx "Register Entity"/"Deregister
// Entity"; agent/catalog_endpoint.go, agent/consul/catalog_endpoint.go Register/Deregister and the
// state store's EnsureRegistration). Nobody runs these checks: their status is what was written.

import { tryParseGoDuration } from "../net/index.js";
import type { CheckRecord, CheckStatus, NodeInfo, ServiceRecord } from "./catalog-model.js";
import { NODE_SERVICE_SCHEMA, toNodeService, validateService, type NewService } from "./catalog-register.js";
import type { DevAgentContext } from "./context.js";
import { decodeStrict, type Schema } from "./decode.js";
import { HttpError } from "./http-error.js";
import { multiError } from "./intentions-model.js";
import type { AgentRequest, Reply, Route } from "./router.js";

/** A catalog node with its services and all its checks, both sorted by ID (the state store's index order). */
export interface CatalogNode {
  info: NodeInfo;
  services: ServiceRecord[];
  checks: CheckRecord[];
}

interface NodeState {
  info: NodeInfo;
  services: Map<string, ServiceRecord>;
  checks: Map<string, CheckRecord>;
}

/** The registered (non-agent) nodes. */
export interface ExternalCatalog {
  /** Every registered node, sorted by name. */
  nodes(): CatalogNode[];
  register(r: CatalogRegistration): void;
  /** Removes a check, a service (with its checks) or the whole node. */
  deregister(node: string, what: { serviceId?: string; checkId?: string }): void;
  service(node: string, id: string): ServiceRecord | undefined;
  check(node: string, id: string): CheckRecord | undefined;
  hasNode(node: string): boolean;
}

/** A validated registration. */
export interface CatalogRegistration {
  node: Omit<NodeInfo, "createIndex" | "modifyIndex">;
  skipNodeUpdate: boolean;
  service: NewService | undefined;
  checks: Array<Omit<CheckRecord, "createIndex" | "modifyIndex" | "serviceName" | "serviceTags">>;
}

/** Orders records by ID, byte-wise, as the state store's indexes do. */
export const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Creates the empty store; writes bump the "nodes", "services" and "checks" tables they touch. */
export function createExternalCatalog(feed: { bump(...tables: string[]): number }): ExternalCatalog {
  const nodes = new Map<string, NodeState>();
  const view = (n: NodeState): CatalogNode => {
    return { info: n.info, services: [...n.services.values()].sort(byId), checks: [...n.checks.values()].sort(byId) };
  };
  return {
    nodes: () => [...nodes.values()].map(view).sort((a, b) => (a.info.name < b.info.name ? -1 : 1)),
    service: (node, id) => nodes.get(node)?.services.get(id),
    check: (node, id) => nodes.get(node)?.checks.get(id),
    hasNode: (node) => nodes.has(node),
    register(r) {
      const index = feed.bump("nodes", "services", "checks");
      let n = nodes.get(r.node.name);
      if (!n) {
        n = { info: { ...r.node, createIndex: index, modifyIndex: index }, services: new Map(), checks: new Map() };
        nodes.set(r.node.name, n);
      } else if (!r.skipNodeUpdate) {
        n.info = { ...r.node, id: r.node.id || n.info.id, createIndex: n.info.createIndex, modifyIndex: index };
      }
      if (r.service) {
        const prev = n.services.get(r.service.id);
        n.services.set(r.service.id, { ...r.service, createIndex: prev?.createIndex ?? index, modifyIndex: index });
        for (const c of n.checks.values()) {
          if (c.serviceId === r.service.id) Object.assign(c, { serviceName: r.service.name, serviceTags: r.service.tags.slice() });
        }
      }
      for (const c of r.checks) {
        const svc = c.serviceId ? n.services.get(c.serviceId) : undefined;
        const prev = n.checks.get(c.id);
        n.checks.set(c.id, {
          ...c, serviceName: svc?.name ?? "", serviceTags: svc ? svc.tags.slice() : [],
          createIndex: prev?.createIndex ?? index, modifyIndex: index,
        });
      }
    },
    deregister(node, what) {
      const n = nodes.get(node);
      if (!n) return;
      // applyDeregister's precedence: a service (with its checks), else a check, else the node
      if (what.serviceId !== undefined) {
        if (n.services.delete(what.serviceId)) {
          for (const c of [...n.checks.values()]) if (c.serviceId === what.serviceId) n.checks.delete(c.id);
          feed.bump("services", "checks");
        }
        return;
      }
      if (what.checkId !== undefined) {
        if (n.checks.delete(what.checkId)) feed.bump("checks");
        return;
      }
      nodes.delete(node);
      feed.bump("nodes", "services", "checks");
    },
  };
}

const str = { type: "string" } as const;
const HEALTH_CHECK_SCHEMA: Schema = {
  Node: str, CheckID: str, Name: str, Status: str, Notes: str, Output: str, ServiceID: str, ServiceName: str,
  ServiceTags: { items: str }, Type: str, Interval: str, Timeout: str, ExposedPort: { type: "int" }, Definition: { type: "map" },
  PeerName: str, CreateIndex: { type: "int" }, ModifyIndex: { type: "int" },
};
/** structs.RegisterRequest (CE: no namespace or partition fields). */
const REGISTER_SCHEMA: Schema = {
  Datacenter: str, ID: str, Node: str, Address: str, TaggedAddresses: { type: "map" }, NodeMeta: { type: "map" },
  Service: { fields: NODE_SERVICE_SCHEMA }, Check: { fields: HEALTH_CHECK_SCHEMA }, Checks: { items: { fields: HEALTH_CHECK_SCHEMA } },
  SkipNodeUpdate: { type: "bool" }, Locality: {}, PeerName: str, Token: str,
};
const DEREGISTER_SCHEMA: Schema = { Datacenter: str, Node: str, ServiceID: str, CheckID: str, PeerName: str, Token: str };

type Obj = Record<string, unknown>;
const s = (v: unknown): string => (typeof v === "string" ? v : "");

function checkDc(body: Obj, ctx: DevAgentContext): void {
  const dc = s(body.Datacenter);
  if (dc !== "" && dc !== ctx.cfg.datacenter) throw new HttpError(500, "No path to datacenter");
}

/** A HealthCheckDefinition duration: `Interval` or `IntervalDuration`, as Go duration text or nanoseconds. */
function definitionMs(d: Obj, key: string): number {
  for (const v of [d[key], d[`${key}Duration`]]) {
    if (typeof v === "string") return tryParseGoDuration(v) ?? 0;
    if (typeof v === "number") return v / 1e6;
  }
  return 0;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** nodePreApply: a node name, and an ID that parses as a UUID when given. */
function checkNode(name: string, id: string): void {
  if (name === "") throw new HttpError(500, "Must provide node");
  if (id === "") return;
  if (id.length !== 36) throw new HttpError(500, "Bad node ID: uuid string is wrong length");
  if (!UUID_RE.test(id)) throw new HttpError(500, "Bad node ID: uuid is improperly formatted");
}

/** servicePreApply: Validate(), ID defaulting to the name, a name when an ID is given, no "any" address. */
function planService(def: Obj): NewService {
  const svc = toNodeService(def);
  const errs = validateService(svc, undefined);
  if (errs.length > 0) throw new HttpError(500, multiError(errs));
  if (svc.id !== "" && svc.name === "") throw new HttpError(500, "Must provide service name (Service.Service) when service ID is provided");
  if (["0.0.0.0", "::", "[::]"].includes(svc.address)) throw new HttpError(500, "Invalid service address");
  return svc;
}

/** Catalog.Register's checks: Check folds into Checks, Node defaults to the request's, CheckID to Name. */
function planChecks(body: Obj, node: string): Array<CatalogRegistration["checks"][number] & { node: string }> {
  const raw = [...((body.Checks as Obj[] | undefined) ?? []), ...(body.Check ? [body.Check as Obj] : [])];
  return raw.map((c) => {
    const status = s(c.Status) || "critical"; // the state store's default for a check without a status
    const d = (c.Definition as Obj | undefined) ?? {};
    return {
      node: s(c.Node) || node,
      id: s(c.CheckID) || s(c.Name), name: s(c.Name), status: status as CheckStatus, notes: s(c.Notes), output: s(c.Output),
      serviceId: s(c.ServiceID), type: s(c.Type),
      intervalMs: definitionMs(d, "Interval") || (tryParseGoDuration(s(c.Interval)) ?? 0),
      timeoutMs: definitionMs(d, "Timeout") || (tryParseGoDuration(s(c.Timeout)) ?? 0), ttlMs: 0,
      deregisterAfterMs: definitionMs(d, "DeregisterCriticalServiceAfter"), tcp: s(d.TCP), http: s(d.HTTP), method: s(d.Method),
      aliasService: "", aliasNode: "",
    };
  });
}

function sameMap(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  return JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b).sort());
}

/** PUT /v1/catalog/register and /v1/catalog/deregister. `isLocal(node)` names the agent's own node. */
export function catalogWriteRoutes(external: ExternalCatalog, ctx: DevAgentContext, isLocal: (node: string) => boolean): Route[] {
  const register = (req: AgentRequest): Reply => {
    const body = decodeStrict(req.body, REGISTER_SCHEMA);
    checkDc(body, ctx);
    const node = s(body.Node);
    checkNode(node, s(body.ID));
    const skip = body.SkipNodeUpdate === true;
    if (s(body.Address) === "" && !skip) throw new HttpError(500, "Must provide address if SkipNodeUpdate is not set");
    const service = body.Service ? planService(body.Service as Obj) : undefined;
    const acl = req.acl();
    if (service) {
      acl.require("service", "write", service.name);
      if (service.kind === "connect-proxy" && service.proxy) acl.require("service", "write", service.proxy.destinationServiceName);
    }
    const checks = planChecks(body, node);
    // vetRegisterWithACL
    const existing = external.nodes().find((n) => n.info.name === node);
    const changesNode = !existing || (!skip && (
      s(body.ID) !== existing.info.id || s(body.Address) !== existing.info.address ||
      !sameMap(body.TaggedAddresses as Record<string, string> | undefined, existing.info.taggedAddresses) ||
      !sameMap(body.NodeMeta as Record<string, string> | undefined, existing.info.meta)));
    if (changesNode) acl.require("node", "write", node);
    if (service) {
      const replaced = existing?.services.find((x) => x.id === service.id);
      if (replaced) acl.require("service", "write", replaced.name);
    }
    for (const c of checks) {
      if (c.node.toLowerCase() !== node.toLowerCase()) throw new HttpError(500, `Node '${c.node}' for check '${c.id}' doesn't match register request node '${node}'`);
      if (c.serviceId === "") acl.require("node", "write", node);
      else if (c.serviceId !== service?.id) {
        const other = existing?.services.find((x) => x.id === c.serviceId);
        if (!other) throw new HttpError(500, `Unknown service ID '${c.serviceId}' for check ID '${c.id}'`);
        acl.require("service", "write", other.name);
      }
    }
    // The agent's own node belongs to its anti-entropy, which removes what the agent did not register.
    if (isLocal(node)) return { json: true };
    external.register({
      node: {
        id: s(body.ID), name: node, address: s(body.Address), datacenter: ctx.cfg.datacenter,
        taggedAddresses: (body.TaggedAddresses as Record<string, string> | undefined) ?? {},
        meta: (body.NodeMeta as Record<string, string> | undefined) ?? {},
      },
      skipNodeUpdate: skip && existing !== undefined,
      service,
      checks: checks.map(({ node: _n, ...c }) => c),
    });
    return { json: true };
  };

  const deregister = (req: AgentRequest): Reply => {
    const body = decodeStrict(req.body, DEREGISTER_SCHEMA);
    checkDc(body, ctx);
    const node = s(body.Node);
    if (node === "") throw new HttpError(500, "Must provide node");
    const serviceId = s(body.ServiceID);
    const checkId = s(body.CheckID);
    // vetDeregisterWithACL: node:write allows everything; else the service's or check's own permission
    const acl = req.acl();
    if (!acl.allowed("node", "write", node)) {
      if (serviceId !== "") {
        const svc = external.service(node, serviceId);
        if (!svc) throw new HttpError(500, `Unknown service ID '${serviceId}'`);
        acl.require("service", "write", svc.name);
      } else if (checkId !== "") {
        const c = external.check(node, checkId);
        if (!c) throw new HttpError(500, `Unknown check ID '${checkId}'`);
        if (c.serviceId !== "") acl.require("service", "write", c.serviceName);
        else acl.require("node", "write", node);
      } else acl.require("node", "write", node);
    }
    if (!isLocal(node)) external.deregister(node, { ...(serviceId ? { serviceId } : {}), ...(checkId ? { checkId } : {}) });
    return { json: true };
  };

  return [
    { path: "/v1/catalog/register", methods: ["PUT"], handler: register },
    { path: "/v1/catalog/deregister", methods: ["PUT"], handler: deregister },
  ];
}
