// The dev agent's local services and checks (spec §6) and, through health.ts, the catalog and
// health views of them (spec §7). Writes bump "services" and/or "checks" on the change feed.

import { blockingParams } from "./blocking.js";
import { applyFilter } from "./catalog-filter.js";
import {
  AGENT_SERVICE_FIELDS, CHECK_FIELDS, localNodeInfo, renderAgentService, renderAgentServiceWithHash, renderCheck,
  type CheckRecord, type CheckStatus, type ServiceRecord,
} from "./catalog-model.js";
import { planCheckRegistration, planRegistration, type CheckSpec, type NewService, type RegistrationPlan } from "./catalog-register.js";
import { startCheckRunner, type CheckRunner } from "./checks.js";
import type { DevAgentContext } from "./context.js";
import { decodeStrict } from "./decode.js";
import { byId, catalogWriteRoutes, createExternalCatalog, type CatalogNode, type ExternalCatalog } from "./catalog-external.js";
import { catalogReadRoutes } from "./catalog-reads.js";
import { healthRoutes } from "./health.js";
import { HttpError } from "./http-error.js";
import type { AgentRequest, Reply, Route } from "./router.js";

export type { ServiceRecord, CheckRecord } from "./catalog-model.js";

const SERVICES = "services";
const CHECKS = "checks";
const MAX_OUTPUT_BYTES = 4096;

/** The local agent state. All methods are synchronous; HTTP concerns stay in the routes. */
export interface Catalog {
  /** Index at which the node was registered (its CreateIndex/ModifyIndex). */
  readonly nodeIndex: number;
  /** Nodes, services and checks registered through /v1/catalog/register (catalog-external.ts). */
  readonly external: ExternalCatalog;
  /** Every catalog node: the agent's own and the registered ones, sorted by name. */
  nodes(): CatalogNode[];
  /** All services, sorted by ID. */
  services(): ServiceRecord[];
  service(id: string): ServiceRecord | undefined;
  /** The node check every catalog entry carries (spec §7.1). */
  serfHealth(): CheckRecord;
  /** Local node-level checks (no ServiceID). */
  nodeChecks(): CheckRecord[];
  checksOf(serviceId: string): CheckRecord[];
  allChecks(): CheckRecord[];
  check(id: string): CheckRecord | undefined;
  /** Applies a validated registration (and its sidecar). */
  register(plan: RegistrationPlan, opts: { replaceExistingChecks: boolean }): void;
  /** Removes a service, its checks and the sidecar it created; false when unknown. */
  deregister(id: string): boolean;
  registerCheck(spec: CheckSpec, service: ServiceRecord | undefined): void;
  deregisterCheck(id: string): boolean;
  /** Sets a TTL check's status; throws 404/500 HttpErrors with Consul's texts. */
  updateTtl(id: string, status: CheckStatus, output: string): void;
  /** Spec §6.2: the lowest free port in the sidecar range, sticky per sidecar ID; or an error text. */
  allocateSidecarPort(sidecarId: string): number | string;
  /** Stops TTL timers and TCP/HTTP check loops. Idempotent. */
  close(): void;
}

function unknownCheck(id: string): HttpError {
  return new HttpError(404, `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`);
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Creates the empty local state for `ctx.cfg.nodeName`. */
export function createCatalog(ctx: DevAgentContext): Catalog {
  const services = new Map<string, ServiceRecord>();
  const checks = new Map<string, CheckRecord>();
  const runners = new Map<string, CheckRunner>();
  const nodeIndex = ctx.feed.bump("nodes");
  let closed = false;
  const serf: CheckRecord = {
    id: "serfHealth", name: "Serf Health Status", status: "passing", notes: "", output: "Agent alive and reachable",
    serviceId: "", serviceName: "", serviceTags: [], type: "", intervalMs: 0, timeoutMs: 0, ttlMs: 0,
    deregisterAfterMs: 0, tcp: "", http: "", method: "", aliasService: "", aliasNode: "",
    createIndex: nodeIndex, modifyIndex: nodeIndex,
  };

  /** One write: bumps the touched tables once, lazily, and hands out that index. */
  function tx(tables: string[]): () => number {
    let index: number | undefined;
    return () => (index ??= ctx.feed.bump(...tables));
  }

  function stopRunner(id: string): void {
    runners.get(id)?.stop();
    runners.delete(id);
  }

  function startRunner(c: CheckRecord): void {
    stopRunner(c.id);
    if (closed) return;
    const r = startCheckRunner(c, { set: (id, status, output) => setStatus(id, status, output) });
    if (r) runners.set(c.id, r);
  }

  function setStatus(id: string, status: CheckStatus, output: string): void {
    const c = checks.get(id);
    if (!c || (c.status === status && c.output === output)) return;
    c.status = status;
    c.output = output;
    c.modifyIndex = ctx.feed.bump(CHECKS);
    refreshAliases();
  }

  /** Spec §6.3 alias semantics: the worst status among the aliased service's (and node's) checks. */
  function aliasResult(a: CheckRecord): { status: CheckStatus; output: string } {
    let status: CheckStatus = "passing";
    let output = "No checks found.";
    const target = a.aliasService;
    const relevant = [...checks.values()].filter(
      (c) => c.id !== a.id && (c.serviceId === "" || (target !== "" && c.serviceId === target)),
    );
    for (const c of relevant) {
      if (c.status === "warning") {
        status = "warning";
        output = `Aliased check "${c.name}" failing: ${c.output}`;
      } else if (c.status !== "passing") {
        status = "critical"; // critical or maintenance: nothing is worse
        output = `Aliased check "${c.name}" failing: ${c.output}`;
        break;
      } else if (status === "passing") output = "All checks passing.";
    }
    if (target !== "" && !services.has(target)) {
      return { status: "critical", output: `Service ${target} could not be found on node ${ctx.cfg.nodeName}` };
    }
    return { status, output };
  }

  function refreshAliases(): void {
    // Aliases may alias services that carry aliases: iterate to a fixed point (bounded).
    for (let round = 0; round < 8; round++) {
      let changed = false;
      for (const c of checks.values()) {
        if (c.type !== "alias") continue;
        const r = aliasResult(c);
        if (r.status !== c.status || r.output !== c.output) {
          c.status = r.status;
          c.output = r.output;
          c.modifyIndex = ctx.feed.bump(CHECKS);
          changed = true;
        }
      }
      if (!changed) return;
    }
  }

  function definitionOf(c: CheckRecord | CheckSpec): unknown {
    return [c.name, c.notes, c.type, c.intervalMs, c.timeoutMs, c.ttlMs, c.tcp, c.http, c.method, c.aliasService, c.aliasNode, c.deregisterAfterMs];
  }

  /** Upserts one check; bumps only when something visible changed. */
  function putCheck(spec: CheckSpec, svc: { id: string; name: string; tags: string[] } | undefined, index: () => number): void {
    const prev = checks.get(spec.id);
    const owner = { serviceId: svc?.id ?? "", serviceName: svc?.name ?? "", serviceTags: svc ? svc.tags.slice() : [] };
    const defChanged = !prev || !sameJson(definitionOf(prev), definitionOf(spec)) || prev.serviceId !== owner.serviceId;
    const ownerChanged = prev !== undefined && !sameJson(prev.serviceTags, owner.serviceTags);
    const statusGiven = spec.status !== undefined && (!prev || prev.status !== spec.status);
    if (prev && !defChanged && !ownerChanged && !statusGiven) return;
    const i = index();
    const rec: CheckRecord = {
      id: spec.id, name: spec.name,
      // spec §6.1: new checks start critical unless a Status is given; a re-registration keeps its status.
      status: spec.status ?? prev?.status ?? "critical",
      notes: spec.notes, output: spec.status === undefined && prev ? prev.output : "",
      ...owner, type: spec.type, intervalMs: spec.intervalMs, timeoutMs: spec.timeoutMs, ttlMs: spec.ttlMs,
      deregisterAfterMs: spec.deregisterAfterMs, tcp: spec.tcp, http: spec.http, method: spec.method,
      aliasService: spec.aliasService, aliasNode: spec.aliasNode,
      createIndex: prev?.createIndex ?? i, modifyIndex: i,
    };
    checks.set(rec.id, rec);
  }

  function removeCheck(id: string): boolean {
    stopRunner(id);
    return checks.delete(id);
  }

  function serviceShape(s: NewService | ServiceRecord): unknown {
    const { createIndex: _c, modifyIndex: _m, ...rest } = s as ServiceRecord;
    return rest;
  }

  function putService(svc: NewService, specs: CheckSpec[], replaceExisting: boolean, index: () => number, restart: CheckRecord[]): void {
    const prev = services.get(svc.id);
    if (!prev || !sameJson(serviceShape(prev), serviceShape(svc))) {
      const i = index();
      services.set(svc.id, { ...svc, createIndex: prev?.createIndex ?? i, modifyIndex: i });
    }
    for (const spec of specs) {
      putCheck(spec, svc, index);
      // A re-registration re-arms TTL timers and probes TCP/HTTP checks at once, as a fresh runner would.
      restart.push(checks.get(spec.id)!);
    }
    const keep = new Set(specs.map((c) => c.id));
    for (const c of [...checks.values()]) {
      if (c.serviceId !== svc.id || keep.has(c.id)) continue;
      if (replaceExisting) {
        index();
        removeCheck(c.id);
      } else if (!sameJson(c.serviceTags, svc.tags) || c.serviceName !== svc.name) {
        c.serviceTags = svc.tags.slice();
        c.serviceName = svc.name;
        c.modifyIndex = index();
      }
    }
  }

  function dropService(id: string, index: () => number): void {
    if (!services.delete(id)) return;
    index();
    for (const c of [...checks.values()]) if (c.serviceId === id) removeCheck(c.id);
    for (const s of [...services.values()]) if (s.sidecarParent === id) dropService(s.id, index);
  }

  const external = createExternalCatalog(ctx.feed);
  const catalog: Catalog = {
    nodeIndex,
    external,
    nodes: () => {
      const local: CatalogNode = { info: localNodeInfo(ctx.cfg, nodeIndex), services: catalog.services(), checks: [serf, ...checks.values()].sort(byId) };
      return [local, ...external.nodes()].sort((a, b) => (a.info.name < b.info.name ? -1 : a.info.name > b.info.name ? 1 : 0));
    },
    services: () => [...services.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    service: (id) => services.get(id),
    serfHealth: () => serf,
    nodeChecks: () => [...checks.values()].filter((c) => c.serviceId === "").sort((a, b) => (a.id < b.id ? -1 : 1)),
    checksOf: (id) => [...checks.values()].filter((c) => c.serviceId === id).sort((a, b) => (a.id < b.id ? -1 : 1)),
    allChecks: () => [...checks.values()],
    check: (id) => checks.get(id),

    register(plan, opts) {
      const index = tx([SERVICES, CHECKS]);
      const restart: CheckRecord[] = [];
      putService(plan.service, plan.checks, opts.replaceExistingChecks, index, restart);
      if (plan.sidecar) putService(plan.sidecar.service, plan.sidecar.checks, opts.replaceExistingChecks, index, restart);
      else {
        // spec §6.2: re-registering the parent without sidecar_service removes the sidecar it created.
        for (const s of [...services.values()]) if (s.sidecarParent === plan.service.id) dropService(s.id, index);
      }
      for (const c of restart) startRunner(c);
      refreshAliases();
    },

    deregister(id) {
      if (!services.has(id)) return false;
      dropService(id, tx([SERVICES, CHECKS]));
      refreshAliases();
      return true;
    },

    registerCheck(spec, svc) {
      const index = tx([CHECKS]);
      putCheck(spec, svc, index);
      startRunner(checks.get(spec.id)!);
      refreshAliases();
    },

    deregisterCheck(id) {
      if (!removeCheck(id)) return false;
      ctx.feed.bump(CHECKS);
      refreshAliases();
      return true;
    },

    updateTtl(id, status, output) {
      const c = checks.get(id);
      if (!c) throw unknownCheck(id);
      const runner = runners.get(id);
      if (c.type !== "ttl" || !runner) throw new HttpError(500, `CheckID "${id}" does not have associated TTL`);
      runner.touch();
      setStatus(id, status, output.length > MAX_OUTPUT_BYTES ? output.slice(0, MAX_OUTPUT_BYTES) : output);
    },

    allocateSidecarPort(sidecarId) {
      const { sidecarMinPort: min, sidecarMaxPort: max } = ctx.cfg;
      if (min <= 0 || max <= 0 || max < min) return "no port provided for sidecar_service and auto-assignment disabled in config";
      const existing = services.get(sidecarId);
      if (existing && existing.port !== 0) return existing.port; // sticky across re-registration
      const used = new Set<number>();
      for (const s of services.values()) if (s.id !== sidecarId && s.port >= min && s.port <= max) used.add(s.port);
      for (let p = min; p <= max; p++) if (!used.has(p)) return p;
      return `no port provided for sidecar_service and none left in the configured range [${min}, ${max}]`;
    },

    close() {
      closed = true;
      for (const r of runners.values()) r.stop();
      runners.clear();
    },
  };
  ctx.stopSignal.addEventListener("abort", () => catalog.close(), { once: true });
  return catalog;
}

function flag(req: AgentRequest, name: string): boolean {
  if (!req.query.has(name)) return false;
  const v = req.query.get(name)!;
  return v === "" || v.toLowerCase() === "true";
}

/** Spec §6.1 ACL: service:write on the name, the replaced service's name, and a proxy's destination. */
function vetServiceWrite(req: AgentRequest, svc: NewService, existing: ServiceRecord | undefined): void {
  const acl = req.acl();
  acl.require("service", "write", svc.name);
  if (existing && existing.name !== svc.name) acl.require("service", "write", existing.name);
  if (svc.kind === "connect-proxy" && svc.proxy) acl.require("service", "write", svc.proxy.destinationServiceName);
}

function vetCheckWrite(req: AgentRequest, c: { serviceName: string; serviceId: string }, nodeName: string): void {
  if (c.serviceId) req.acl().require("service", "write", c.serviceName);
  else req.acl().require("node", "write", nodeName);
}

const UPDATE_SCHEMA = { Status: { type: "string" }, Output: { type: "string" } } as const;

/** How the agent endpoints show a registration: with central config merged in (proxy-config.ts). */
export interface ServiceView {
  resolve(svc: ServiceRecord): ServiceRecord;
  /** Change-feed tables whose writes can change `resolve`'s answer (they wake hash-blocking reads). */
  tables: readonly string[];
}

/** The agent-local endpoints (spec §6) plus the catalog/health views (spec §7, health.ts). */
export function catalogRoutes(catalog: Catalog, ctx: DevAgentContext, view: ServiceView = { resolve: (s) => s, tables: [] }): Route[] {
  const dc = ctx.cfg.datacenter;

  const register = (req: AgentRequest): Reply => {
    const plan = planRegistration(req.body, (id) => catalog.allocateSidecarPort(id));
    vetServiceWrite(req, plan.service, catalog.service(plan.service.id));
    if (plan.sidecar) vetServiceWrite(req, plan.sidecar.service, catalog.service(plan.sidecar.service.id));
    catalog.register(plan, { replaceExistingChecks: flag(req, "replace-existing-checks") });
    return {};
  };

  const deregister = (req: AgentRequest): Reply => {
    const id = req.rest;
    const svc = catalog.service(id);
    if (!svc) throw new HttpError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
    req.acl().require("service", "write", svc.name);
    catalog.deregister(id);
    return {};
  };

  const maintenance = (req: AgentRequest): Reply => {
    const id = req.rest;
    const enable = req.query.get("enable");
    if (enable === null || enable === "") throw new HttpError(400, "Missing value for enable");
    if (!["true", "false"].includes(enable)) throw new HttpError(400, "Invalid value for enable");
    const svc = catalog.service(id);
    if (!svc) throw new HttpError(404, `Unknown service ID "${id}"`);
    req.acl().require("service", "write", svc.name);
    const checkId = `_service_maintenance:${id}`;
    // Consul's EnableServiceMaintenance: a critical check of type "maintenance"; enabling it again is a no-op
    // (the first reason stays).
    if (enable === "true" && catalog.check(checkId) === undefined) {
      const reason = req.query.get("reason") || "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
      catalog.registerCheck(
        {
          id: checkId, name: "Service Maintenance Mode", status: "critical", notes: reason, output: "", type: "maintenance",
          intervalMs: 0, timeoutMs: 0, ttlMs: 0, deregisterAfterMs: 0, tcp: "", http: "", method: "", aliasService: "", aliasNode: "",
        },
        svc,
      );
    } else if (enable === "false") catalog.deregisterCheck(checkId);
    return {};
  };

  const getService = async (req: AgentRequest): Promise<Reply> => {
    const id = req.rest;
    const first = catalog.service(id);
    if (!first) throw new HttpError(404, `unknown service ID: ${id}`);
    req.acl().require("service", "read", first.name);
    // spec §1.4.1: hash-based blocking; ?index is parsed but ignored.
    const { waitMs } = blockingParams(req);
    const want = req.query.get("hash") ?? "";
    const deadline = Date.now() + waitMs;
    for (;;) {
      const svc = catalog.service(id);
      if (!svc) throw new HttpError(404, `unknown service ID: ${id}`);
      const { json, hash } = renderAgentServiceWithHash(view.resolve(svc), dc);
      if (want === "" || hash !== want || Date.now() >= deadline || req.signal.aborted) {
        return { json, headers: { "X-Consul-ContentHash": hash } };
      }
      await req.feed.waitChange([SERVICES, ...view.tables], deadline, req.signal);
    }
  };

  const listServices = (req: AgentRequest): Reply => {
    const acl = req.acl();
    const visible = catalog.services().filter((s) => acl.allowed("service", "read", s.name));
    const rendered = applyFilter(req.query, visible.map((s) => renderAgentService(view.resolve(s), dc)), AGENT_SERVICE_FIELDS);
    return { json: Object.fromEntries(rendered.map((s) => [s.ID as string, s])) };
  };

  const listChecks = (req: AgentRequest): Reply => {
    const acl = req.acl();
    const visible = catalog
      .allChecks()
      .filter((c) => (c.serviceId ? acl.allowed("service", "read", c.serviceName) : acl.allowed("node", "read", ctx.cfg.nodeName)))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const rendered = applyFilter(req.query, visible.map((c) => renderCheck(c, ctx.cfg.nodeName)), CHECK_FIELDS);
    return { json: Object.fromEntries(rendered.map((c) => [c.CheckID as string, c])) };
  };

  const registerCheck = (req: AgentRequest): Reply => {
    const { check, serviceId } = planCheckRegistration(req.body);
    const svc = serviceId ? catalog.service(serviceId) : undefined;
    if (serviceId && !svc) throw new HttpError(404, `ServiceID "${serviceId}" does not exist`);
    vetCheckWrite(req, { serviceId, serviceName: svc?.name ?? "" }, ctx.cfg.nodeName);
    catalog.registerCheck(check, svc);
    return {};
  };

  const deregisterCheck = (req: AgentRequest): Reply => {
    const c = catalog.check(req.rest);
    if (!c) throw unknownCheck(req.rest);
    vetCheckWrite(req, c, ctx.cfg.nodeName);
    catalog.deregisterCheck(c.id);
    return {};
  };

  const ttl = (status: CheckStatus | "body") => (req: AgentRequest): Reply => {
    let st: CheckStatus;
    let output: string;
    if (status === "body") {
      const b = decodeStrict(req.body, UPDATE_SCHEMA);
      const given = (b.Status as string | undefined) ?? "";
      if (given !== "passing" && given !== "warning" && given !== "critical") throw new HttpError(400, `Invalid check status: '${given}'`);
      st = given;
      output = (b.Output as string | undefined) ?? "";
    } else {
      st = status;
      output = req.query.get("note") ?? "";
    }
    const c = catalog.check(req.rest);
    if (!c) throw unknownCheck(req.rest);
    vetCheckWrite(req, c, ctx.cfg.nodeName);
    catalog.updateTtl(c.id, st, output);
    return {};
  };

  return [
    { path: "/v1/agent/service/register", methods: ["PUT"], handler: register },
    { path: "/v1/agent/service/deregister/", methods: ["PUT"], handler: deregister },
    { path: "/v1/agent/service/maintenance/", methods: ["PUT"], handler: maintenance },
    { path: "/v1/agent/service/", methods: ["GET"], handler: getService },
    { path: "/v1/agent/services", methods: ["GET"], handler: listServices },
    { path: "/v1/agent/checks", methods: ["GET"], handler: listChecks },
    { path: "/v1/agent/check/register", methods: ["PUT"], handler: registerCheck },
    { path: "/v1/agent/check/deregister/", methods: ["PUT"], handler: deregisterCheck },
    { path: "/v1/agent/check/pass/", methods: ["PUT"], handler: ttl("passing") },
    { path: "/v1/agent/check/warn/", methods: ["PUT"], handler: ttl("warning") },
    { path: "/v1/agent/check/fail/", methods: ["PUT"], handler: ttl("critical") },
    { path: "/v1/agent/check/update/", methods: ["PUT"], handler: ttl("body") },
    ...healthRoutes(catalog, ctx),
    ...catalogReadRoutes(catalog, ctx),
    ...catalogWriteRoutes(catalog.external, ctx, (node) => node === ctx.cfg.nodeName),
  ];
}
