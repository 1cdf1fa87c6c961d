// Decoding and validating service and check registrations (spec §6.1–6.3), and the
// `Connect.SidecarService` expansion (spec §6.2). Pure: the catalog supplies port allocation.

import { formatHostPort, tryParseGoDuration } from "../net/index.js";
import { decodeStrict, type FieldSpec, type Schema } from "./decode.js";
import { decodeFailed, HttpError } from "./http-error.js";
import { multiError } from "./intentions-model.js";
import type { CheckRecord, CheckStatus, ProxyRecord, ServiceRecord, UpstreamRecord } from "./catalog-model.js";

const str: FieldSpec = { type: "string" };
const int: FieldSpec = { type: "int" };
const bool: FieldSpec = { type: "bool" };
const map: FieldSpec = { type: "map" };
const any: FieldSpec = { type: "any" };
const strs: FieldSpec = { items: str };
const a = (type: FieldSpec, ...aliases: string[]): FieldSpec => ({ ...type, aliases });

const MESH_GATEWAY: Schema = { Mode: str };

/** A check inside a service registration (`CheckType`), with Consul's snake_case aliases. */
export const CHECK_TYPE_SCHEMA: Schema = {
  CheckID: a(str, "check_id"), Name: str, Status: str, Notes: str, ScriptArgs: a(strs, "script_args"),
  HTTP: str, Header: map, Method: str, Body: str, DisableRedirects: a(bool, "disable_redirects"),
  TCP: str, TCPUseTLS: a(bool, "tcp_use_tls"), UDP: str, Interval: any, AliasNode: a(str, "alias_node"),
  AliasService: a(str, "alias_service"), DockerContainerID: a(str, "docker_container_id"), Shell: str,
  H2PING: str, H2PingUseTLS: a(bool, "h2ping_use_tls"), GRPC: str, GRPCUseTLS: a(bool, "grpc_use_tls"),
  OSService: a(str, "os_service"), TLSServerName: a(str, "tls_server_name"), TLSSkipVerify: a(bool, "tls_skip_verify"),
  Timeout: any, TTL: any, SuccessBeforePassing: a(int, "success_before_passing"),
  FailuresBeforeWarning: a(int, "failures_before_warning"), FailuresBeforeCritical: a(int, "failures_before_critical"),
  ProxyHTTP: a(str, "proxy_http"), ProxyGRPC: a(str, "proxy_grpc"),
  DeregisterCriticalServiceAfter: a(any, "deregister_critical_service_after"), OutputMaxSize: a(int, "output_max_size"),
};

/** `PUT /v1/agent/check/register` body (`CheckDefinition`). */
export const CHECK_DEFINITION_SCHEMA: Schema = {
  ...CHECK_TYPE_SCHEMA,
  ID: str, ServiceID: a(str, "service_id"), Token: str, Namespace: str, Partition: str,
};

const UPSTREAM_SCHEMA: Schema = {
  DestinationType: a(str, "destination_type"), DestinationNamespace: a(str, "destination_namespace"),
  DestinationPartition: a(str, "destination_partition"), DestinationPeer: a(str, "destination_peer"),
  DestinationName: a(str, "destination_name"), Datacenter: str, LocalBindAddress: a(str, "local_bind_address"),
  LocalBindPort: a(int, "local_bind_port"), LocalBindSocketPath: a(str, "local_bind_socket_path"),
  LocalBindSocketMode: a(str, "local_bind_socket_mode"), Config: map,
  MeshGateway: { fields: MESH_GATEWAY, aliases: ["mesh_gateway"] }, CentrallyConfigured: a(bool, "centrally_configured"),
};

const PROXY_SCHEMA: Schema = {
  DestinationServiceName: a(str, "destination_service_name"), DestinationServiceID: a(str, "destination_service_id"),
  LocalServiceAddress: a(str, "local_service_address"), LocalServicePort: a(int, "local_service_port"),
  LocalServiceSocketPath: a(str, "local_service_socket_path"), Mode: str,
  TransparentProxy: { type: "map", aliases: ["transparent_proxy"] }, Config: map,
  Upstreams: { items: { fields: UPSTREAM_SCHEMA } },
  MeshGateway: { fields: MESH_GATEWAY, aliases: ["mesh_gateway"] },
  Expose: {
    fields: {
      Checks: bool,
      Paths: {
        items: {
          fields: {
            ListenerPort: a(int, "listener_port"), Path: str, LocalPathPort: a(int, "local_path_port"),
            Protocol: str, ParsedFromCheck: a(bool, "parsed_from_check"),
          },
        },
      },
    },
  },
  AccessLogs: a(any, "access_logs"), EnvoyExtensions: a(any, "envoy_extensions"),
};

/** `PUT /v1/agent/service/register` body (`ServiceDefinition`), with Consul's snake_case aliases. */
export const SERVICE_SCHEMA: Schema = {
  Kind: str, ID: str, Name: str, Tags: strs, Address: str,
  TaggedAddresses: { type: "map", aliases: ["tagged_addresses"] }, Meta: map, Port: int,
  SocketPath: a(str, "socket_path"), EnableTagOverride: a(bool, "enable_tag_override"),
  Weights: { fields: { Passing: int, Warning: int } }, Token: str,
  Check: { fields: CHECK_TYPE_SCHEMA }, Checks: { items: { fields: CHECK_TYPE_SCHEMA } },
  Proxy: { fields: PROXY_SCHEMA }, Connect: { fields: {} }, Locality: any, Namespace: str, Partition: str,
};
// The sidecar block is a nested service definition (recursive schema).
SERVICE_SCHEMA.Connect = {
  fields: { Native: bool, SidecarService: { fields: SERVICE_SCHEMA, aliases: ["sidecar_service"] }, Proxy: any },
};

/** A catalog `NodeService` (the `Service` of PUT /v1/catalog/register): the name is `Service`, no checks or sidecar. */
export const NODE_SERVICE_SCHEMA: Schema = (() => {
  const { Name: _n, Token: _t, Check: _c, Checks: _cs, Namespace: _ns, Partition: _p, ...rest } = SERVICE_SCHEMA;
  return {
    ...rest, Service: str, Connect: { fields: { Native: bool } }, PeerName: str,
    LocallyRegisteredAsSidecar: bool, CreateIndex: int, ModifyIndex: int,
  };
})();

/** What a check registration asks for, with its ID assigned: a stored check before the catalog owns it. */
export type CheckSpec = Omit<CheckRecord, "status" | "serviceId" | "serviceName" | "serviceTags" | "createIndex" | "modifyIndex"> & {
  /** undefined: keep a re-registered check's status, else start critical (spec §6.1). */
  status: CheckStatus | undefined;
};

export type NewService = Omit<ServiceRecord, "createIndex" | "modifyIndex">;

export interface RegistrationPlan {
  service: NewService;
  checks: CheckSpec[];
  /** Present when the body carried `Connect.SidecarService`. */
  sidecar: { service: NewService; checks: CheckSpec[] } | undefined;
}

type Obj = Record<string, unknown>;
const s = (v: unknown): string => (typeof v === "string" ? v : "");
const n = (v: unknown): number => (typeof v === "number" ? v : 0);

/** A Go duration from JSON: a string ("10s") or a number of nanoseconds. Throws 400. */
function duration(v: unknown, field: string): number {
  if (v === undefined || v === null || v === "") return 0;
  if (typeof v === "number") return v / 1e6;
  if (typeof v === "string") {
    const ms = tryParseGoDuration(v);
    if (ms === undefined) throw decodeFailed(`time: invalid duration ${JSON.stringify(v)}`);
    return ms;
  }
  throw decodeFailed(`json: cannot unmarshal ${Array.isArray(v) ? "array" : typeof v} into Go struct field ${field} of type time.Duration`);
}

const VALID_STATUS = new Set(["passing", "warning", "critical"]);

function checkType(c: Obj): string {
  if (c.ScriptArgs) return "script";
  if (c.HTTP) return "http";
  if (c.TCP) return "tcp";
  if (c.UDP) return "udp";
  if (c.GRPC) return "grpc";
  if (c.H2PING) return "h2ping";
  if (c.OSService) return "os_service";
  if (c.AliasService || c.AliasNode) return "alias";
  if (c.DockerContainerID) return "docker";
  if (c.TTL) return "ttl";
  return "";
}

/** Validates one check (`CheckType.Validate`); throws 400 `Invalid check: …`. */
function toCheckSpec(c: Obj, id: string, name: string): CheckSpec {
  const status = s(c.Status);
  if (status !== "" && !VALID_STATUS.has(status)) throw new HttpError(400, "Status for checks must 'passing', 'warning', 'critical'");
  const intervalMs = duration(c.Interval, "Interval");
  const ttlMs = duration(c.TTL, "TTL");
  const intervalCheck = Boolean(c.ScriptArgs || c.HTTP || c.TCP || c.UDP || c.GRPC || c.H2PING || c.OSService);
  if (intervalMs > 0 && ttlMs > 0) throw new HttpError(400, "Invalid check: Interval and TTL cannot both be specified");
  if (intervalCheck && intervalMs <= 0) {
    throw new HttpError(400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks");
  }
  const alias = Boolean(c.AliasService || c.AliasNode);
  if (!intervalCheck && !alias && ttlMs <= 0) throw new HttpError(400, "Invalid check: TTL must be > 0 for TTL checks");
  return {
    id,
    name,
    status: status === "" ? undefined : (status as CheckStatus),
    notes: s(c.Notes),
    output: "",
    type: checkType(c),
    intervalMs,
    timeoutMs: duration(c.Timeout, "Timeout"),
    ttlMs,
    deregisterAfterMs: duration(c.DeregisterCriticalServiceAfter, "DeregisterCriticalServiceAfter"),
    tcp: s(c.TCP),
    http: s(c.HTTP),
    method: s(c.Method),
    aliasService: s(c.AliasService),
    aliasNode: s(c.AliasNode),
  };
}

/** Spec §6.3: explicit CheckID, else `service:<id>` for one check, `service:<id>:<n>` for several. */
function serviceChecks(def: Obj, serviceId: string, serviceName: string): CheckSpec[] {
  const raw: Obj[] = [];
  if (def.Check && Object.keys(def.Check as Obj).length > 0) raw.push(def.Check as Obj);
  for (const c of (def.Checks as Obj[] | undefined) ?? []) raw.push(c);
  return raw.map((c, i) => {
    const id = s(c.CheckID) || (raw.length === 1 ? `service:${serviceId}` : `service:${serviceId}:${i + 1}`);
    return toCheckSpec(c, id, s(c.Name) || `Service '${serviceName}' check`);
  });
}

function toUpstream(u: Obj): UpstreamRecord {
  return {
    destinationType: s(u.DestinationType) || "service",
    destinationNamespace: s(u.DestinationNamespace),
    destinationPartition: s(u.DestinationPartition),
    destinationPeer: s(u.DestinationPeer),
    destinationName: s(u.DestinationName),
    datacenter: s(u.Datacenter),
    localBindAddress: s(u.LocalBindAddress),
    localBindPort: n(u.LocalBindPort),
    localBindSocketPath: s(u.LocalBindSocketPath),
    localBindSocketMode: s(u.LocalBindSocketMode),
    config: u.Config as Obj | undefined,
    meshGateway: (u.MeshGateway as Obj | undefined) ?? {},
    centrallyConfigured: u.CentrallyConfigured === true,
  };
}

function toProxy(p: Obj): ProxyRecord {
  const expose = (p.Expose as Obj | undefined) ?? {};
  return {
    destinationServiceName: s(p.DestinationServiceName),
    destinationServiceID: s(p.DestinationServiceID),
    localServiceAddress: s(p.LocalServiceAddress),
    localServicePort: n(p.LocalServicePort),
    localServiceSocketPath: s(p.LocalServiceSocketPath),
    mode: s(p.Mode),
    transparentProxy: p.TransparentProxy as Obj | undefined,
    config: p.Config as Obj | undefined,
    upstreams: ((p.Upstreams as Obj[] | undefined) ?? []).map(toUpstream),
    meshGateway: (p.MeshGateway as Obj | undefined) ?? {},
    expose: Object.fromEntries(Object.entries(expose).filter(([, v]) => v !== false && !(Array.isArray(v) && v.length === 0))),
  };
}

/** A service definition (decoded) to a record; `ID` defaults to `Name`. */
function toService(def: Obj): NewService {
  const w = def.Weights as Obj | undefined;
  const kind = s(def.Kind);
  const connect = (def.Connect as Obj | undefined) ?? {};
  const meta = def.Meta as Record<string, string> | undefined;
  return {
    kind,
    id: s(def.ID) || s(def.Name),
    name: s(def.Name),
    tags: ((def.Tags as string[] | undefined) ?? []).slice(),
    meta: meta && Object.keys(meta).length > 0 ? { ...meta } : undefined,
    address: s(def.Address),
    port: n(def.Port),
    socketPath: s(def.SocketPath),
    taggedAddresses: def.TaggedAddresses as NewService["taggedAddresses"],
    weights: w ? { Passing: n(w.Passing), Warning: n(w.Warning) } : { Passing: 1, Warning: 1 },
    enableTagOverride: def.EnableTagOverride === true,
    proxy: def.Proxy || kind === "connect-proxy" ? toProxy((def.Proxy as Obj | undefined) ?? {}) : undefined,
    connectNative: connect.Native === true,
    sidecarParent: undefined,
  };
}

/** A decoded catalog NodeService as a record (`ID` defaults to `Service`, servicePreApply). */
export function toNodeService(def: Record<string, unknown>): NewService {
  return toService({ ...def, Name: def.Service });
}

function upstreamId(u: UpstreamRecord): string {
  const base = u.destinationType === "prepared_query" ? `prepared_query:${u.destinationName}` : u.destinationName;
  return u.datacenter ? `${base}?dc=${u.datacenter}` : u.destinationPeer ? `${base}?peer=${u.destinationPeer}` : base;
}

/** `NodeService.Validate` (spec §6.1): the Go error lines, empty when valid. */
export function validateService(svc: NewService, sidecarDef: Obj | undefined): string[] {
  const errs: string[] = [];
  if (svc.kind === "connect-proxy") {
    const p = svc.proxy!;
    if (p.destinationServiceName.trim() === "") errs.push("Proxy.DestinationServiceName must be non-empty for Connect proxy services");
    if (p.destinationServiceName === "*") errs.push("Proxy.DestinationServiceName must not be a wildcard for Connect proxy services");
    if (svc.port === 0 && svc.socketPath === "") errs.push("Port or SocketPath must be set for a connect-proxy");
    if (svc.connectNative) errs.push("A Proxy cannot also be Connect Native, only typical services");
    const ids = new Set<string>();
    const binds = new Set<string>();
    for (const u of p.upstreams) {
      if (u.destinationName === "") errs.push("upstream destination name cannot be empty");
      else if (u.destinationName === "*" && !u.centrallyConfigured) errs.push("upstream destination name cannot be a wildcard");
      if (u.destinationPeer && u.datacenter) errs.push("upstream cannot specify both destination peer and datacenter");
      if (!u.centrallyConfigured) {
        if (u.localBindPort === 0 && u.localBindSocketPath === "") {
          errs.push("upstream local bind port or local socket path must be defined and nonzero");
        } else if (u.localBindPort !== 0 && u.localBindSocketPath !== "") {
          errs.push("only one of upstream local bind port or local socket path can be defined and nonzero");
        }
      }
      const id = upstreamId(u);
      if (ids.has(id)) errs.push(`upstreams cannot contain duplicates of ${id}`);
      ids.add(id);
      const bind = u.localBindSocketPath || `${u.localBindAddress}:${u.localBindPort}`;
      if (binds.has(bind) && (u.localBindSocketPath || u.localBindPort)) {
        errs.push(`upstreams cannot contain duplicates by local bind address and port or unix path; "${bind}" is specified twice`);
      }
      binds.add(bind);
    }
  }
  if (sidecarDef) {
    const nested = (sidecarDef.Connect as Obj | undefined)?.SidecarService;
    if (nested) errs.push("A SidecarService cannot have a nested SidecarService");
  }
  return errs;
}

/**
 * Decodes and validates a `PUT /v1/agent/service/register` body and expands its sidecar.
 * `allocateSidecarPort(id)` returns a port, or an error text. Throws 400 HttpErrors with Consul's texts.
 */
export function planRegistration(body: unknown, allocateSidecarPort: (sidecarId: string) => number | string): RegistrationPlan {
  const def = decodeStrict(body, SERVICE_SCHEMA);
  if (!s(def.Name)) throw new HttpError(400, "Missing service name");
  const service = toService(def);
  const checks = serviceChecks(def, service.id, service.name);
  const sidecarDef = ((def.Connect as Obj | undefined)?.SidecarService as Obj | undefined) ?? undefined;
  const errs = validateService(service, sidecarDef);
  if (errs.length > 0) throw new HttpError(400, `Validation failed: ${multiError(errs)}`);
  if (service.address === "0.0.0.0" || service.address === "::" || service.address === "[::]") {
    throw new HttpError(400, "Invalid service address");
  }
  let sidecar: RegistrationPlan["sidecar"];
  if (sidecarDef) sidecar = expandSidecar(service, sidecarDef, allocateSidecarPort);
  return { service, checks, sidecar };
}

/** Spec §6.2: the sidecar service a parent's `Connect.SidecarService` block stands for. */
export function expandSidecar(
  parent: NewService,
  sidecarDef: Obj,
  allocateSidecarPort: (sidecarId: string) => number | string,
): { service: NewService; checks: CheckSpec[] } {
  const sc = toService({ ...sidecarDef, Name: s(sidecarDef.Name) || `${parent.name}-sidecar-proxy` });
  sc.id = `${parent.id}-sidecar-proxy`; // always; a user ID is overwritten
  sc.kind ||= "connect-proxy";
  sc.sidecarParent = parent.id;
  if (!sc.address) sc.address = parent.address;
  if (sc.tags.length === 0 && parent.tags.length > 0) sc.tags = parent.tags.slice();
  if (!sc.meta && parent.meta) sc.meta = { ...parent.meta };
  const p = (sc.proxy ??= toProxy({}));
  p.destinationServiceName ||= parent.name;
  p.destinationServiceID ||= parent.id;
  if (p.localServiceSocketPath === "" && (p.localServiceAddress === "" || p.localServicePort < 1)) {
    if (parent.socketPath) p.localServiceSocketPath = parent.socketPath;
    else {
      p.localServiceAddress ||= "127.0.0.1";
      if (p.localServicePort < 1) p.localServicePort = parent.port;
    }
  }
  if (sc.port < 1) {
    const port = allocateSidecarPort(sc.id);
    if (typeof port === "string") throw new HttpError(400, `Invalid SidecarService: ${port}`);
    sc.port = port;
  }
  const errs = validateService(sc, undefined);
  if (errs.length > 0) throw new HttpError(400, `Invalid SidecarService: ${multiError(errs)}`);
  let checks = serviceChecks(sidecarDef, sc.id, sc.name);
  if (checks.length === 0) {
    const addr = sc.address || p.localServiceAddress || "127.0.0.1";
    checks = serviceChecks(
      {
        Checks: [
          { Name: "Connect Sidecar Listening", TCP: formatHostPort(addr, sc.port), Interval: "10s" },
          { Name: `Connect Sidecar Aliasing ${parent.id}`, AliasService: parent.id },
        ],
      },
      sc.id,
      sc.name,
    );
  }
  return { service: sc, checks };
}

/** Decodes `PUT /v1/agent/check/register` (`CheckDefinition`); the ID defaults to the name. */
export function planCheckRegistration(body: unknown): { check: CheckSpec; serviceId: string } {
  const def = decodeStrict(body, CHECK_DEFINITION_SCHEMA);
  const name = s(def.Name);
  if (!name) throw new HttpError(400, "Missing check name");
  const id = s(def.ID) || s(def.CheckID) || name;
  return { check: toCheckSpec(def, id, name), serviceId: s(def.ServiceID) };
}
