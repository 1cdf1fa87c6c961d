// Validating parsers: Consul JSON (`unknown`) → the camelCase shapes of types.ts (STYLE §2).
// A wrong type throws AgentError("bad_body") naming the field, e.g. `roots.Roots[0].RootCert`.
// Messages never carry values (a leaf body holds a private key). Optional fields and the nulls
// Consul really sends (spec §2, §3, §6.5, §7.1) are tolerated.
import { isLoopbackHost } from "../net/index.js";
import { AgentError } from "./errors.js";
import type {
  AgentSelfInfo,
  AgentService,
  AuthorizeResult,
  CaRoot,
  CaRoots,
  HealthEntry,
  Intention,
  IntentionPermission,
  HttpHeaderMatch,
  LeafCert,
  PolicyInfo,
  ProxyConfig,
  SpiffeUri,
  TokenInfo,
  Upstream,
} from "./types.js";

type Obj = Record<string, unknown>;

/** `GET /v1/agent/connect/ca/roots` (spec §2). Throws AgentError("bad_body"). */
export function parseCaRoots(body: unknown): CaRoots {
  const o = asObject(body, "roots");
  return {
    activeRootId: optString(o.ActiveRootID, "roots.ActiveRootID").toLowerCase(),
    trustDomain: optString(o.TrustDomain, "roots.TrustDomain").toLowerCase(),
    // Go marshals an empty slice as null before Connect is bootstrapped.
    roots: optArray(o.Roots, "roots.Roots").map((r, i) => parseCaRoot(r, `roots.Roots[${i}]`)),
  };
}

function parseCaRoot(v: unknown, f: string): CaRoot {
  const o = asObject(v, f);
  return {
    id: asString(o.ID, `${f}.ID`).toLowerCase(),
    name: optString(o.Name, `${f}.Name`),
    serialNumber: optUint(o.SerialNumber, `${f}.SerialNumber`), // spec §2: a JSON number
    signingKeyId: optString(o.SigningKeyID, `${f}.SigningKeyID`).toLowerCase(),
    notBefore: asDate(o.NotBefore, `${f}.NotBefore`),
    notAfter: asDate(o.NotAfter, `${f}.NotAfter`),
    rootCertPem: asPem(o.RootCert, `${f}.RootCert`),
    intermediateCertPems: optArray(o.IntermediateCerts, `${f}.IntermediateCerts`).map((p, i) =>
      asPem(p, `${f}.IntermediateCerts[${i}]`),
    ),
    active: optBool(o.Active, `${f}.Active`),
  };
}

/** `GET /v1/agent/connect/ca/leaf/:service` (spec §3). CertPEM may hold several blocks. Throws AgentError("bad_body"). */
export function parseLeafCert(body: unknown): LeafCert {
  const o = asObject(body, "leaf");
  const privateKeyPem = asString(o.PrivateKeyPEM, "leaf.PrivateKeyPEM");
  if (!privateKeyPem.includes("-----BEGIN ")) throw bad("leaf.PrivateKeyPEM", "is not PEM");
  return {
    serialNumber: asString(o.SerialNumber, "leaf.SerialNumber").toLowerCase(),
    certPem: asPem(o.CertPEM, "leaf.CertPEM"),
    privateKeyPem,
    service: asString(o.Service, "leaf.Service"),
    serviceUri: asString(o.ServiceURI, "leaf.ServiceURI") as SpiffeUri,
    validAfter: asDate(o.ValidAfter, "leaf.ValidAfter"),
    validBefore: asDate(o.ValidBefore, "leaf.ValidBefore"),
    modifyIndex: optUint(o.ModifyIndex, "leaf.ModifyIndex"),
  };
}

/** `GET /v1/agent/service/:id` (spec §6.5). Throws AgentError("bad_body"). */
export function parseAgentService(body: unknown, f = "service"): AgentService {
  const o = asObject(body, f);
  const proxy = o.Proxy;
  const connect = o.Connect === undefined || o.Connect === null ? {} : asObject(o.Connect, `${f}.Connect`);
  return {
    kind: optString(o.Kind, `${f}.Kind`),
    id: asString(o.ID, `${f}.ID`),
    service: asString(o.Service, `${f}.Service`),
    tags: optArray(o.Tags, `${f}.Tags`).map((t, i) => asString(t, `${f}.Tags[${i}]`)),
    meta: optStringMap(o.Meta, `${f}.Meta`),
    address: optString(o.Address, `${f}.Address`),
    port: optPort(o.Port, `${f}.Port`),
    socketPath: optString(o.SocketPath, `${f}.SocketPath`),
    datacenter: optString(o.Datacenter, `${f}.Datacenter`),
    proxy: proxy === undefined || proxy === null ? undefined : parseProxyConfig(proxy, `${f}.Proxy`),
    connectNative: optBool(connect.Native, `${f}.Connect.Native`),
    contentHash: optString(o.ContentHash, `${f}.ContentHash`),
  };
}

/** `GET /v1/agent/services`: an object keyed by service ID (spec §6.6). Throws AgentError("bad_body"). */
export function parseAgentServices(body: unknown): Map<string, AgentService> {
  const o = asObject(body, "services");
  const out = new Map<string, AgentService>();
  for (const [id, v] of Object.entries(o)) out.set(id, parseAgentService(v, `services[${JSON.stringify(id)}]`));
  return out;
}

function parseProxyConfig(v: unknown, f: string): ProxyConfig {
  const o = asObject(v, f);
  return {
    destinationServiceName: optString(o.DestinationServiceName, `${f}.DestinationServiceName`),
    destinationServiceId: optString(o.DestinationServiceID, `${f}.DestinationServiceID`),
    localServiceAddress: optString(o.LocalServiceAddress, `${f}.LocalServiceAddress`),
    localServicePort: optPort(o.LocalServicePort, `${f}.LocalServicePort`),
    localServiceSocketPath: optString(o.LocalServiceSocketPath, `${f}.LocalServiceSocketPath`),
    mode: optString(o.Mode, `${f}.Mode`),
    config: optObject(o.Config, `${f}.Config`),
    upstreams: optArray(o.Upstreams, `${f}.Upstreams`).map((u, i) => parseUpstream(u, `${f}.Upstreams[${i}]`)),
  };
}

function parseUpstream(v: unknown, f: string): Upstream {
  const o = asObject(v, f);
  // spec §9.2: DestinationType defaults to "service", DestinationNamespace to "default", and
  // LocalBindAddress to 127.0.0.1 unless a socket path is set.
  const type = optString(o.DestinationType, `${f}.DestinationType`) || "service";
  if (type !== "service" && type !== "prepared_query") throw bad(`${f}.DestinationType`, "must be service or prepared_query");
  const socketPath = optString(o.LocalBindSocketPath, `${f}.LocalBindSocketPath`);
  return {
    destinationType: type,
    destinationName: asString(o.DestinationName, `${f}.DestinationName`),
    destinationNamespace: optString(o.DestinationNamespace, `${f}.DestinationNamespace`) || "default",
    datacenter: optString(o.Datacenter, `${f}.Datacenter`),
    localBindAddress: optString(o.LocalBindAddress, `${f}.LocalBindAddress`) || (socketPath ? "" : "127.0.0.1"),
    localBindPort: optPort(o.LocalBindPort, `${f}.LocalBindPort`),
    localBindSocketPath: socketPath,
    localBindSocketMode: optString(o.LocalBindSocketMode, `${f}.LocalBindSocketMode`),
    config: optObject(o.Config, `${f}.Config`),
  };
}

/** `GET /v1/health/connect/:service` (spec §7.1): always an array. Throws AgentError("bad_body"). */
export function parseHealthEntries(body: unknown, f = "health"): HealthEntry[] {
  return optArray(body, f).map((e, i) => parseHealthEntry(e, `${f}[${i}]`));
}

function parseHealthEntry(v: unknown, f: string): HealthEntry {
  const o = asObject(v, f);
  const node = asObject(o.Node, `${f}.Node`);
  const svc = asObject(o.Service, `${f}.Service`);
  const proxy = svc.Proxy === undefined || svc.Proxy === null ? {} : asObject(svc.Proxy, `${f}.Service.Proxy`);
  const connect = svc.Connect === undefined || svc.Connect === null ? {} : asObject(svc.Connect, `${f}.Service.Connect`);
  return {
    node: {
      id: optString(node.ID, `${f}.Node.ID`),
      name: asString(node.Node, `${f}.Node.Node`),
      address: optString(node.Address, `${f}.Node.Address`),
      datacenter: optString(node.Datacenter, `${f}.Node.Datacenter`),
    },
    service: {
      kind: optString(svc.Kind, `${f}.Service.Kind`),
      id: asString(svc.ID, `${f}.Service.ID`),
      service: asString(svc.Service, `${f}.Service.Service`),
      address: optString(svc.Address, `${f}.Service.Address`),
      port: optPort(svc.Port, `${f}.Service.Port`),
      socketPath: optString(svc.SocketPath, `${f}.Service.SocketPath`),
      proxyDestinationServiceName: optString(proxy.DestinationServiceName, `${f}.Service.Proxy.DestinationServiceName`),
      connectNative: optBool(connect.Native, `${f}.Service.Connect.Native`),
    },
    checks: optArray(o.Checks, `${f}.Checks`).map((c, i) => {
      const co = asObject(c, `${f}.Checks[${i}]`);
      return { checkId: asString(co.CheckID, `${f}.Checks[${i}].CheckID`), status: asString(co.Status, `${f}.Checks[${i}].Status`) };
    }),
  };
}

/** `GET /v1/query/:name/execute` (spec §7.3): the `Nodes` list. Throws AgentError("bad_body"). */
export function parsePreparedQueryNodes(body: unknown): HealthEntry[] {
  const o = asObject(body, "query");
  return parseHealthEntries(o.Nodes, "query.Nodes");
}

/**
 * `GET /v1/connect/intentions/match?by=…&name=<name>` (spec §5.3): the list under the exact
 * `name` key, highest precedence first; a missing key is an empty list. Throws AgentError("bad_body").
 */
export function parseIntentionMatch(body: unknown, name: string): Intention[] {
  const o = asObject(body, "match");
  const f = `match[${JSON.stringify(name)}]`;
  // hasOwn: a destination named "constructor" or "toString" must not read Object.prototype.
  return optArray(Object.hasOwn(o, name) ? o[name] : undefined, f).map((v, i) => parseIntention(v, `${f}[${i}]`));
}

function parseIntention(v: unknown, f: string): Intention {
  const o = asObject(v, f);
  const action = optString(o.Action, `${f}.Action`).toLowerCase();
  if (action !== "allow" && action !== "deny" && action !== "") throw bad(`${f}.Action`, "must be allow or deny");
  return {
    id: optString(o.ID, `${f}.ID`),
    sourceNs: optString(o.SourceNS, `${f}.SourceNS`),
    sourceName: asString(o.SourceName, `${f}.SourceName`),
    destinationNs: optString(o.DestinationNS, `${f}.DestinationNS`),
    destinationName: asString(o.DestinationName, `${f}.DestinationName`),
    action,
    permissions: optArray(o.Permissions, `${f}.Permissions`).map((p, i) => parsePermission(p, `${f}.Permissions[${i}]`)),
    precedence: optUint(o.Precedence, `${f}.Precedence`),
    modifyIndex: optUint(o.ModifyIndex, `${f}.ModifyIndex`),
  };
}

function parsePermission(v: unknown, f: string): IntentionPermission {
  const o = asObject(v, f);
  const action = asString(o.Action, `${f}.Action`).toLowerCase();
  if (action !== "allow" && action !== "deny") throw bad(`${f}.Action`, "must be allow or deny");
  if (o.HTTP === undefined || o.HTTP === null) return { action, http: undefined };
  const h = asObject(o.HTTP, `${f}.HTTP`);
  const opt = (k: string): string | undefined => {
    const s = optString(h[k], `${f}.HTTP.${k}`);
    return s === "" ? undefined : s;
  };
  return {
    action,
    http: {
      pathExact: opt("PathExact"),
      pathPrefix: opt("PathPrefix"),
      pathRegex: opt("PathRegex"),
      methods: optArray(h.Methods, `${f}.HTTP.Methods`).map((m, i) => asString(m, `${f}.HTTP.Methods[${i}]`).toUpperCase()),
      headers: optArray(h.Header, `${f}.HTTP.Header`).map((x, i) => parseHeaderMatch(x, `${f}.HTTP.Header[${i}]`)),
    },
  };
}

function parseHeaderMatch(v: unknown, f: string): HttpHeaderMatch {
  const o = asObject(v, f);
  const name = asString(o.Name, `${f}.Name`).toLowerCase();
  const invert = optBool(o.Invert, `${f}.Invert`);
  for (const [key, t] of [["Exact", "exact"], ["Prefix", "prefix"], ["Suffix", "suffix"], ["Regex", "regex"]] as const) {
    const value = optString(o[key], `${f}.${key}`);
    if (value !== "") return { name, match: { t, value }, invert };
  }
  // Consul: Present, or no value at all, tests presence.
  return { name, match: { t: "present" }, invert };
}

/** `POST /v1/agent/connect/authorize` (spec §4). Throws AgentError("bad_body"). */
export function parseAuthorizeResult(body: unknown): AuthorizeResult {
  const o = asObject(body, "authorize");
  return {
    authorized: asBool(o.Authorized, "authorize.Authorized"),
    reason: optString(o.Reason, "authorize.Reason"),
  };
}

/** `GET /v1/connect/intentions/check` (spec §5.3). Throws AgentError("bad_body"). */
export function parseIntentionCheck(body: unknown): boolean {
  return asBool(asObject(body, "check").Allowed, "check.Allowed");
}

/**
 * The Notes of check `checkId` in `GET /v1/agent/checks` (spec §6.6: an object keyed by check ID), or
 * undefined when the agent has no such check. Throws AgentError("bad_body").
 */
export function parseCheckNotes(body: unknown, checkId: string): string | undefined {
  const checks = asObject(body, "checks");
  const c = checks[checkId];
  if (c === undefined) return undefined;
  return optString(asObject(c, `checks[${JSON.stringify(checkId)}]`).Notes, `checks[${JSON.stringify(checkId)}].Notes`);
}

// ---- audit reads (the doctor's): loose, a missing or mistyped field is "cannot tell", never an error ----

/** `GET /v1/acl/token/self` (spec §11.2). Never throws. */
export function parseTokenInfo(body: unknown): TokenInfo {
  const o = looseObj(body);
  const links = (v: unknown) => looseArr(v).map((l) => ({ id: looseStr(looseObj(l).ID), name: looseStr(looseObj(l).Name) }));
  return {
    accessorId: looseStr(o.AccessorID),
    description: looseStr(o.Description),
    policies: links(o.Policies),
    roles: links(o.Roles),
    serviceIdentities: looseArr(o.ServiceIdentities).map((s) => ({
      serviceName: looseStr(looseObj(s).ServiceName),
      datacenters: looseArr(looseObj(s).Datacenters).map(looseStr),
    })),
    nodeIdentities: looseArr(o.NodeIdentities).map((n) => ({ nodeName: looseStr(looseObj(n).NodeName), datacenter: looseStr(looseObj(n).Datacenter) })),
    templatedPolicies: looseArr(o.TemplatedPolicies).map((tp) => {
      const vars = looseObj(looseObj(tp).TemplateVariables);
      const name = vars.name ?? vars.Name; // responses write the key in lowercase (spec §11.2)
      return { templateName: looseStr(looseObj(tp).TemplateName), name: typeof name === "string" ? name : undefined };
    }),
  };
}

/** The audit fields of `GET /v1/agent/self` (spec §11.5). Never throws. */
export function parseAgentSelf(body: unknown): AgentSelfInfo {
  const o = looseObj(body);
  const config = looseObj(o.Config);
  const debug = looseObj(o.DebugConfig);
  const stats = looseObj(o.Stats);
  const resolver = looseObj(debug.ACLResolverSettings);
  // spec §11.5: since 1.12 under TLS.InternalRPC; before, top-level Verify* keys
  const rpc = debug.TLS !== undefined ? looseObj(looseObj(debug.TLS).InternalRPC) : debug;
  const aclStat = looseOptStr(looseObj(stats.consul).acl);
  return {
    version: looseOptStr(config.Version),
    aclsEnabled:
      looseOptBool(debug.ACLsEnabled) ?? looseOptBool(resolver.ACLsEnabled) ?? (aclStat === undefined ? undefined : aclStat !== "disabled"),
    aclDefaultPolicy: looseOptStr(resolver.ACLDefaultPolicy),
    rpcVerifyIncoming: looseOptBool(rpc.VerifyIncoming),
    rpcVerifyOutgoing: looseOptBool(rpc.VerifyOutgoing),
    rpcVerifyServerHostname: looseOptBool(rpc.VerifyServerHostname),
    httpAddrs: Array.isArray(debug.HTTPAddrs) ? debug.HTTPAddrs.map(looseStr) : undefined,
    httpsAddrs: Array.isArray(debug.HTTPSAddrs) ? debug.HTTPSAddrs.map(looseStr) : undefined,
    caProvider: looseOptStr(debug.ConnectCAProvider),
    sidecarMinPort: looseOptNum(debug.ConnectSidecarMinPort),
    sidecarMaxPort: looseOptNum(debug.ConnectSidecarMaxPort),
    gossipEncrypted: looseOptStr(looseObj(stats.serf_lan).encrypted),
  };
}

/** `GET /v1/acl/policy/:id` (spec §11.4). Never throws. */
export function parseAclPolicy(body: unknown, id: string): PolicyInfo {
  const o = looseObj(body);
  return { id, name: looseStr(o.Name), rules: looseStr(o.Rules) };
}

/** True when a DebugConfig listener address (`tcp://ip:port`, `unix:///path`) is on this host only. */
export function isLocalListener(addr: string): boolean {
  if (addr.startsWith("unix://")) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:]+):\d+$/.exec(addr);
  return m !== null && isLoopbackHost(m[1]!);
}

function looseObj(v: unknown): Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {};
}
function looseArr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function looseStr(v: unknown): string {
  return typeof v === "string" ? v : "";
}
function looseOptStr(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
function looseOptBool(v: unknown): boolean | undefined {
  return typeof v === "boolean" ? v : undefined;
}
function looseOptNum(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

// ---- primitives: each names the field and the expected type, never the value ----

function bad(field: string, what: string): AgentError {
  return new AgentError("bad_body", `${field} ${what}`);
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

function expected(field: string, type: string, v: unknown): AgentError {
  return new AgentError("bad_body", `${field}: expected ${type}, got ${typeName(v)}`);
}

function asObject(v: unknown, f: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw expected(f, "object", v);
  return v as Obj;
}

function optObject(v: unknown, f: string): Record<string, unknown> {
  return v === undefined || v === null ? {} : asObject(v, f);
}

function asString(v: unknown, f: string): string {
  if (typeof v !== "string") throw expected(f, "string", v);
  return v;
}

function optString(v: unknown, f: string): string {
  return v === undefined || v === null ? "" : asString(v, f);
}

function asBool(v: unknown, f: string): boolean {
  if (typeof v !== "boolean") throw expected(f, "boolean", v);
  return v;
}

function optBool(v: unknown, f: string): boolean {
  return v === undefined || v === null ? false : asBool(v, f);
}

function optUint(v: unknown, f: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw expected(f, "non-negative integer", v);
  return v;
}

function optPort(v: unknown, f: string): number {
  const n = optUint(v, f);
  if (n > 65535) throw bad(f, "is not a port number");
  return n;
}

function asArray(v: unknown, f: string): unknown[] {
  if (!Array.isArray(v)) throw expected(f, "array", v);
  return v;
}

function optArray(v: unknown, f: string): unknown[] {
  return v === undefined || v === null ? [] : asArray(v, f);
}

function optStringMap(v: unknown, f: string): Record<string, string> {
  const o = optObject(v, f);
  // fromEntries defines own keys: a plain `out[k] =` would drop a "__proto__" key.
  return Object.fromEntries(Object.entries(o).map(([k, val]) => [k, asString(val, `${f}[${JSON.stringify(k)}]`)]));
}

function asDate(v: unknown, f: string): Date {
  const s = asString(v, f);
  const d = new Date(s);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(s) || Number.isNaN(d.getTime())) throw bad(f, "is not an RFC 3339 time");
  return d;
}

function asPem(v: unknown, f: string): string {
  const s = asString(v, f);
  if (!s.includes("-----BEGIN CERTIFICATE-----")) throw bad(f, "holds no PEM certificate");
  return s;
}
