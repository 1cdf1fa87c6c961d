// Configuration entries (spec §12.2; Consul's agent/config_endpoint.go, agent/structs/config_entry.go,
// config_entry_ce.go): PUT /v1/config (with ?cas=), GET /v1/config/:kind[/:name], DELETE, for
// `proxy-defaults`, `service-defaults` and `service-intentions`. The intentions entries live in
// intention-store.ts (one store with the intentions API); the two defaults kinds live here.

import { blockingRead } from "./blocking.js";
import type { DevAgentContext } from "./context.js";
import { decodeCollectingUnknown, type Schema } from "./decode.js";
import { checkDatacenter, filteredHeader } from "./health.js";
import { HttpError } from "./http-error.js";
import { CONFIG_ENTRIES_TABLE, type IntentionInput, type IntentionStore } from "./intention-store.js";
import { metaErrors, renderIntentionsEntry, SERVICE_INTENTIONS_SCHEMA, sourcesFromEntryBody, validateIntentionsEntry } from "./intentions-entry.js";
import { multiError, WILDCARD } from "./intentions-model.js";
import type { AgentRequest, Reply, Route } from "./router.js";

export type DefaultsKind = "proxy-defaults" | "service-defaults";

/** A stored proxy-defaults or service-defaults entry: canonical fields as written, plus Raft indexes. */
export interface DefaultsEntry {
  kind: DefaultsKind;
  name: string;
  fields: Record<string, unknown>;
  createIndex: number;
  modifyIndex: number;
}

/** Every kind Consul knows (structs.MakeConfigEntry); only three can be written to the dev agent. */
const KNOWN_KINDS = new Set([
  "service-defaults", "proxy-defaults", "service-router", "service-splitter", "service-resolver", "ingress-gateway",
  "terminating-gateway", "service-intentions", "mesh", "exported-services", "api-gateway", "inline-certificate",
  "http-route", "tcp-route", "sameness-group", "jwt-provider",
]);
const HTTP_LIKE = new Set(["http", "http2", "grpc"]);

const TPROXY: Schema = { OutboundListenerPort: { aliases: ["outbound_listener_port"] }, DialedDirectly: { aliases: ["dialed_directly"] } };
const MESH_GATEWAY: Schema = { Mode: {} };
const EXPOSE: Schema = {
  Checks: {},
  Paths: { items: { fields: { ListenerPort: { aliases: ["listener_port"] }, Path: {}, LocalPathPort: { aliases: ["local_path_port"] }, Protocol: {} } } },
};
const COMMON: Schema = {
  Kind: {}, Name: {}, Mode: {},
  TransparentProxy: { fields: TPROXY, aliases: ["transparent_proxy"] },
  MeshGateway: { fields: MESH_GATEWAY, aliases: ["mesh_gateway"] },
  Expose: { fields: EXPOSE },
  Meta: {}, CreateIndex: {}, ModifyIndex: {},
};
/** structs.ProxyConfigEntry. */
const PROXY_DEFAULTS_SCHEMA: Schema = { ...COMMON, Config: {} };
/** structs.ServiceConfigEntry. */
const SERVICE_DEFAULTS_SCHEMA: Schema = {
  ...COMMON,
  Protocol: {},
  ExternalSNI: { aliases: ["external_sni"] },
  UpstreamConfig: { aliases: ["upstream_config"] },
  Destination: {},
  MaxInboundConnections: { aliases: ["max_inbound_connections"] },
  LocalConnectTimeoutMs: { aliases: ["local_connect_timeout_ms"] },
  LocalRequestTimeoutMs: { aliases: ["local_request_timeout_ms"] },
  BalanceInboundConnections: { aliases: ["balance_inbound_connections"] },
};
const SCHEMAS: Record<string, Schema> = {
  "proxy-defaults": PROXY_DEFAULTS_SCHEMA,
  "service-defaults": SERVICE_DEFAULTS_SCHEMA,
  "service-intentions": SERVICE_INTENTIONS_SCHEMA,
};

/** The proxy-defaults and service-defaults entries. */
export interface DefaultsStore {
  get(kind: DefaultsKind, name: string): DefaultsEntry | undefined;
  list(kind: DefaultsKind): DefaultsEntry[];
  /** Upserts; with `cas`, only when it equals the ModifyIndex (0: only when absent). False when refused. */
  put(kind: DefaultsKind, name: string, fields: Record<string, unknown>, cas?: number): boolean;
  delete(kind: DefaultsKind, name: string, cas?: number): boolean;
}

/** Creates the empty store; every write bumps the "config-entries" table. */
export function createDefaultsStore(feed: { bump(...tables: string[]): number }): DefaultsStore {
  const entries = new Map<string, DefaultsEntry>();
  const key = (kind: string, name: string) => `${kind}/${name}`;
  return {
    get: (kind, name) => entries.get(key(kind, name)),
    list: (kind) => [...entries.values()].filter((e) => e.kind === kind).sort((a, b) => (a.name < b.name ? -1 : 1)),
    put(kind, name, fields, cas) {
      const prev = entries.get(key(kind, name));
      if (cas !== undefined && (prev?.modifyIndex ?? 0) !== cas) return false;
      const index = feed.bump(CONFIG_ENTRIES_TABLE);
      entries.set(key(kind, name), { kind, name, fields, createIndex: prev?.createIndex ?? index, modifyIndex: index });
      return true;
    },
    delete(kind, name, cas) {
      const prev = entries.get(key(kind, name));
      if (cas !== undefined && (prev?.modifyIndex ?? 0) !== cas) return false;
      if (!prev) return cas === undefined;
      entries.delete(key(kind, name));
      feed.bump(CONFIG_ENTRIES_TABLE);
      return true;
    },
  };
}

/**
 * The protocol Consul resolves for `service` (its discovery chain's protocol): service-defaults
 * Protocol, else proxy-defaults `Config.protocol`, else "tcp".
 */
export function protocolOf(defaults: Pick<DefaultsStore, "get">, service: string): string {
  const sd = defaults.get("service-defaults", service)?.fields.Protocol;
  if (typeof sd === "string" && sd !== "") return sd;
  const global = defaults.get("proxy-defaults", "global")?.fields.Config as Record<string, unknown> | undefined;
  const pd = global?.protocol;
  return typeof pd === "string" && pd !== "" ? pd.toLowerCase() : "tcp";
}

/** State store validateProposedConfigEntryInGraph: L7 permissions need an HTTP-like protocol. */
export function checkL7Protocol(destination: string, sources: readonly Pick<IntentionInput, "permissions">[], protocol: string): void {
  if (destination === WILDCARD || !sources.some((s) => (s.permissions?.length ?? 0) > 0)) return;
  if (!HTTP_LIKE.has(protocol)) {
    throw new HttpError(500, `service ${JSON.stringify(destination)} has protocol ${JSON.stringify(protocol)}, which is incompatible with L7 intentions permissions`);
  }
}

/** The store-level check for intentions writes: Validate(), then the protocol rule. */
export function intentionsEntryCheck(defaults: Pick<DefaultsStore, "get">) {
  return (destination: string, meta: Record<string, string> | undefined, sources: readonly IntentionInput[]): void => {
    validateIntentionsEntry(destination, meta, sources, sources.every((s) => !!s.id));
    checkL7Protocol(destination, sources, protocolOf(defaults, destination));
  };
}

function renderDefaults(e: DefaultsEntry): Record<string, unknown> {
  const f = e.fields;
  const o: Record<string, unknown> = { Kind: e.kind, Name: e.name };
  if (e.kind === "service-defaults") o.Protocol = f.Protocol ?? "";
  else o.Config = f.Config ?? null;
  if (f.Mode) o.Mode = f.Mode;
  // struct-valued fields ignore omitempty in Go's encoding/json
  o.TransparentProxy = f.TransparentProxy ?? {};
  o.MeshGateway = f.MeshGateway ?? {};
  o.Expose = f.Expose ?? {};
  for (const k of ["ExternalSNI", "UpstreamConfig", "Destination", "MaxInboundConnections", "LocalConnectTimeoutMs", "LocalRequestTimeoutMs", "BalanceInboundConnections"]) {
    if (f[k] !== undefined && f[k] !== "" && f[k] !== 0) o[k] = f[k];
  }
  if (f.Meta && Object.keys(f.Meta).length > 0) o.Meta = f.Meta;
  o.CreateIndex = e.createIndex;
  o.ModifyIndex = e.modifyIndex;
  return o;
}

/** ?cas=: Consul parses it with strconv.ParseUint and returns the error as is (500). */
function casParam(req: AgentRequest): number | undefined {
  const raw = req.query.get("cas");
  if (raw === null || raw === "") return undefined;
  if (!/^\d+$/.test(raw)) throw new HttpError(500, `strconv.ParseUint: parsing ${JSON.stringify(raw)}: invalid syntax`);
  return Number(raw);
}

function decodingFailed(text: string): HttpError {
  return new HttpError(400, `Request decoding failed: ${text}`);
}

/** mapstructure's Unused keys through validateUnusedKeys (config_entry_ce.go). */
function unknownKeyErrors(keys: readonly string[]): string[] {
  return keys
    .filter((k) => k !== "Kind" && k !== "kind")
    .sort()
    .map((k) => (k.toLowerCase().endsWith("namespace") ? `invalid config key ${JSON.stringify(k)}, namespaces are a consul enterprise feature` : `invalid config key ${JSON.stringify(k)}`));
}

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

/** The `/v1/config` routes over both stores. */
export function configRoutes(defaults: DefaultsStore, intentions: IntentionStore, ctx: DevAgentContext): Route[] {
  /** CanRead / CanWrite per kind (config_entry*.go). */
  const allowed = (req: AgentRequest, kind: string, name: string, level: "read" | "write"): boolean => {
    const acl = req.acl();
    if (kind === "proxy-defaults") return level === "read" || acl.allowed("mesh", "write");
    if (kind === "service-defaults") return acl.allowed("service", level, name);
    if (kind === "service-intentions") return acl.allowed("intentions", level, name);
    return acl.allowed("mesh", level); // kinds the dev agent never holds
  };
  const requireAccess = (req: AgentRequest, kind: string, name: string, level: "read" | "write"): void => {
    if (allowed(req, kind, name, level)) return;
    const acl = req.acl();
    if (kind === "proxy-defaults") acl.require("mesh", "write");
    else if (kind === "service-defaults") acl.require("service", level, name);
    else if (kind === "service-intentions") acl.require("intentions", level, name);
    else acl.require("mesh", level);
  };

  /** Every L7 intentions entry must still resolve to an HTTP-like protocol after a defaults write. */
  const checkAllL7 = (proposed: Pick<DefaultsStore, "get">): void => {
    for (const e of intentions.entries()) checkL7Protocol(e.destination.name, e.sources, protocolOf(proposed, e.destination.name));
  };
  const withProposal = (kind: DefaultsKind, name: string, fields: Record<string, unknown> | undefined): Pick<DefaultsStore, "get"> => ({
    get: (k, n) => (k === kind && n === name ? (fields ? { kind, name, fields, createIndex: 0, modifyIndex: 0 } : undefined) : defaults.get(k, n)),
  });

  const apply = (req: AgentRequest): Reply => {
    checkDatacenter(req, ctx);
    const raw = req.body;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw decodingFailed("json: cannot unmarshal into map[string]interface {}");
    const r = raw as Record<string, unknown>;
    const kindVal = "Kind" in r ? r.Kind : r.kind;
    if (kindVal === undefined) throw decodingFailed("Payload does not contain a kind/Kind key at the top level");
    if (typeof kindVal !== "string") throw decodingFailed("Kind value in payload is not a string");
    if (!KNOWN_KINDS.has(kindVal)) throw decodingFailed(`invalid config entry kind: ${kindVal}`);
    const schema = SCHEMAS[kindVal];
    if (!schema) throw decodingFailed(`the dev agent does not store config entries of kind ${JSON.stringify(kindVal)}`);
    const { out, unknown } = decodeCollectingUnknown(raw, schema);
    const unknownErrs = unknownKeyErrors(unknown);
    if (unknownErrs.length > 0) throw decodingFailed(multiError(unknownErrs));
    const cas = casParam(req);
    const meta = out.Meta as Record<string, string> | undefined;

    if (kindVal === "service-intentions") {
      const name = str(out.Name);
      const sources = sourcesFromEntryBody(name, out);
      validateIntentionsEntry(name, meta, sources);
      requireAccess(req, kindVal, name, "write");
      return { json: intentions.putEntry({ destination: { partition: "default", ns: "default", name }, meta, sources }, cas) };
    }
    const kind = kindVal as DefaultsKind;
    let name = str(out.Name);
    if (kind === "proxy-defaults") {
      if (name !== "" && name !== "global") throw new HttpError(500, `invalid name (${JSON.stringify(name)}), only "global" is supported`);
      name = "global";
    } else {
      if (out.Protocol !== undefined) out.Protocol = str(out.Protocol).toLowerCase();
      if (name === "") throw new HttpError(500, "Name is required");
      if (name === WILDCARD) throw new HttpError(500, "service-defaults name must be the name of a service, and not a wildcard");
    }
    const errs = metaErrors(meta);
    if (kind === "service-defaults") {
      const balance = str(out.BalanceInboundConnections);
      if (balance !== "" && balance !== "exact_balance") errs.push(`invalid value for balance_inbound_connections: ${balance}`);
      if (out.UpstreamConfig !== undefined && out.Destination !== undefined) {
        errs.push("UpstreamConfig and Destination are mutually exclusive for service defaults");
      }
    }
    if (errs.length > 0) throw new HttpError(500, kind === "proxy-defaults" ? errs[0]! : multiError(errs));
    requireAccess(req, kind, name, "write");
    const { Kind: _k, Name: _n, CreateIndex: _c, ModifyIndex: _m, ...fields } = out;
    checkAllL7(withProposal(kind, name, fields));
    return { json: defaults.put(kind, name, fields, cas) };
  };

  const read = async (req: AgentRequest): Promise<Reply> => {
    checkDatacenter(req, ctx);
    const [kind = "", name] = splitKindName(req.rest);
    if (name === undefined) {
      if (!KNOWN_KINDS.has(kind)) throw new HttpError(500, `invalid config entry kind: ${kind}`);
      const { index, value } = await blockingRead(req, [CONFIG_ENTRIES_TABLE], () => ({ index: ctx.feed.indexOf(CONFIG_ENTRIES_TABLE), value: listKind(kind) }));
      const visible = value.filter((e) => allowed(req, kind, e.Name as string, "read"));
      const headers = filteredHeader(req, visible.length < value.length);
      return { json: visible, index, meta: true, ...(headers ? { headers } : {}) };
    }
    if (!KNOWN_KINDS.has(kind)) throw new HttpError(500, `invalid config entry kind: ${kind}`);
    requireAccess(req, kind, name, "read");
    const { index, value } = await blockingRead(req, [CONFIG_ENTRIES_TABLE], () => ({ index: ctx.feed.indexOf(CONFIG_ENTRIES_TABLE), value: getOne(kind, name) }));
    if (!value) throw new HttpError(404, `Config entry not found for ${JSON.stringify(kind)} / ${JSON.stringify(name)}`);
    return { json: value, index, meta: true };
  };

  const listKind = (kind: string): Record<string, unknown>[] => {
    if (kind === "service-intentions") return intentions.entries().map(renderIntentionsEntry);
    if (kind === "proxy-defaults" || kind === "service-defaults") return defaults.list(kind).map(renderDefaults);
    return [];
  };
  const getOne = (kind: string, name: string): Record<string, unknown> | undefined => {
    if (kind === "service-intentions") {
      const e = intentions.entry(name);
      return e && renderIntentionsEntry(e);
    }
    if (kind === "proxy-defaults" || kind === "service-defaults") {
      const e = defaults.get(kind, name);
      return e && renderDefaults(e);
    }
    return undefined;
  };

  const remove = (req: AgentRequest): Reply => {
    checkDatacenter(req, ctx);
    const [kind = "", name] = splitKindName(req.rest);
    if (name === undefined) throw new HttpError(404, "Must provide both a kind and name to delete");
    if (!KNOWN_KINDS.has(kind)) throw new HttpError(400, `invalid config entry kind: ${kind}`);
    const cas = casParam(req);
    if (kind === "proxy-defaults" && name !== "global") throw new HttpError(500, `invalid name (${JSON.stringify(name)}), only "global" is supported`);
    requireAccess(req, kind, name, "write");
    let deleted = true;
    if (kind === "service-intentions") deleted = intentions.deleteEntry(name, cas);
    else if (kind === "proxy-defaults" || kind === "service-defaults") {
      checkAllL7(withProposal(kind, name, undefined));
      deleted = defaults.delete(kind, name, cas);
    }
    // config_endpoint.go: the `deleted` boolean for CAS deletes, an empty object otherwise
    return { json: cas !== undefined ? deleted : {} };
  };

  return [
    { path: "/v1/config", methods: ["PUT"], handler: apply },
    { path: "/v1/config/", methods: ["GET", "DELETE"], handler: (req) => (req.method === "DELETE" ? remove(req) : read(req)) },
  ];
}

/** `kind` or `kind/name` (strings.SplitN(path, "/", 2)). */
function splitKindName(rest: string): [string, string | undefined] {
  const i = rest.indexOf("/");
  return i < 0 ? [rest, undefined] : [rest.slice(0, i), rest.slice(i + 1)];
}
