// The dev agent's local services and checks, and their JSON renderings: the api structs of the
// agent endpoints (spec §6.5, §6.6) and the structs of the catalog/health endpoints (spec §7).

import { createHash } from "node:crypto";
import { formatGoDuration } from "../net/index.js";
import type { DevAgentConfig } from "./context.js";

export type CheckStatus = "passing" | "warning" | "critical" | "maintenance";

export interface UpstreamRecord {
  destinationType: string;
  destinationNamespace: string;
  destinationPartition: string;
  destinationPeer: string;
  destinationName: string;
  datacenter: string;
  localBindAddress: string;
  localBindPort: number;
  localBindSocketPath: string;
  localBindSocketMode: string;
  config: Record<string, unknown> | undefined;
  meshGateway: Record<string, unknown>;
  centrallyConfigured: boolean;
}

export interface ProxyRecord {
  destinationServiceName: string;
  destinationServiceID: string;
  localServiceAddress: string;
  localServicePort: number;
  localServiceSocketPath: string;
  mode: string;
  transparentProxy: Record<string, unknown> | undefined;
  config: Record<string, unknown> | undefined;
  upstreams: UpstreamRecord[];
  meshGateway: Record<string, unknown>;
  expose: Record<string, unknown>;
}

export interface ServiceRecord {
  /** "" for a typical service, else "connect-proxy", "mesh-gateway", … */
  kind: string;
  id: string;
  name: string;
  tags: string[];
  /** undefined when the registration gave none (the catalog then shows `null`). */
  meta: Record<string, string> | undefined;
  address: string;
  port: number;
  socketPath: string;
  taggedAddresses: Record<string, { Address: string; Port: number }> | undefined;
  weights: { Passing: number; Warning: number };
  enableTagOverride: boolean;
  proxy: ProxyRecord | undefined;
  connectNative: boolean;
  /** The ID of the parent whose `Connect.SidecarService` created this service. */
  sidecarParent: string | undefined;
  createIndex: number;
  modifyIndex: number;
}

export interface CheckRecord {
  id: string;
  name: string;
  status: CheckStatus;
  notes: string;
  output: string;
  /** "" for a node-level check. */
  serviceId: string;
  serviceName: string;
  serviceTags: string[];
  type: string;
  intervalMs: number;
  timeoutMs: number;
  ttlMs: number;
  deregisterAfterMs: number;
  tcp: string;
  http: string;
  method: string;
  aliasService: string;
  aliasNode: string;
  createIndex: number;
  modifyIndex: number;
}

/** `HealthCheckDefinition` JSON: every field omitempty, durations as Go strings. */
function renderDefinition(c: CheckRecord): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (c.http) d.HTTP = c.http;
  if (c.method) d.Method = c.method;
  if (c.tcp) d.TCP = c.tcp;
  if (c.intervalMs) d.Interval = formatGoDuration(c.intervalMs);
  if (c.timeoutMs) d.Timeout = formatGoDuration(c.timeoutMs);
  if (c.deregisterAfterMs) d.DeregisterCriticalServiceAfter = formatGoDuration(c.deregisterAfterMs);
  if (c.aliasNode) d.AliasNode = c.aliasNode;
  if (c.aliasService) d.AliasService = c.aliasService;
  if (c.ttlMs) d.TTL = formatGoDuration(c.ttlMs);
  return d;
}

/** `HealthCheck` JSON (spec §6.6, §7.1). */
export function renderCheck(c: CheckRecord, nodeName: string): Record<string, unknown> {
  return {
    Node: nodeName,
    CheckID: c.id,
    Name: c.name,
    Status: c.status,
    Notes: c.notes,
    Output: c.output,
    ServiceID: c.serviceId,
    ServiceName: c.serviceName,
    ServiceTags: c.serviceTags,
    Type: c.type,
    Interval: c.intervalMs ? formatGoDuration(c.intervalMs) : "",
    Timeout: c.timeoutMs ? formatGoDuration(c.timeoutMs) : "",
    ExposedPort: 0,
    Definition: renderDefinition(c),
    CreateIndex: c.createIndex,
    ModifyIndex: c.modifyIndex,
  };
}

/**
 * An upstream as JSON. The agent endpoints render `api.Upstream` (Datacenter omitted when empty);
 * health and catalog render `structs.Upstream`, where Datacenter is always present (spec §7.1).
 */
function upstreamJson(u: UpstreamRecord, shape: "api" | "structs"): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (u.destinationType) o.DestinationType = u.destinationType;
  if (u.destinationNamespace) o.DestinationNamespace = u.destinationNamespace;
  if (u.destinationPartition) o.DestinationPartition = u.destinationPartition;
  if (u.destinationPeer) o.DestinationPeer = u.destinationPeer;
  o.DestinationName = u.destinationName;
  if (u.datacenter || shape === "structs") o.Datacenter = u.datacenter;
  if (u.localBindAddress) o.LocalBindAddress = u.localBindAddress;
  if (u.localBindPort) o.LocalBindPort = u.localBindPort;
  if (u.localBindSocketPath) o.LocalBindSocketPath = u.localBindSocketPath;
  if (u.localBindSocketMode) o.LocalBindSocketMode = u.localBindSocketMode;
  if (u.config && Object.keys(u.config).length > 0) o.Config = u.config;
  o.MeshGateway = u.meshGateway;
  if (u.centrallyConfigured) o.CentrallyConfigured = true;
  return o;
}

function proxyHead(p: ProxyRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (p.destinationServiceName) o.DestinationServiceName = p.destinationServiceName;
  if (p.destinationServiceID) o.DestinationServiceID = p.destinationServiceID;
  if (p.localServiceAddress) o.LocalServiceAddress = p.localServiceAddress;
  if (p.localServicePort) o.LocalServicePort = p.localServicePort;
  if (p.localServiceSocketPath) o.LocalServiceSocketPath = p.localServiceSocketPath;
  return o;
}

/** `api.AgentServiceConnectProxyConfig` (spec §6.5): omitempty except MeshGateway and Expose. */
function apiProxy(p: ProxyRecord): Record<string, unknown> {
  return proxyJson(p, "api");
}

/** `structs.ConnectProxyConfig` (spec §7.1): always present, `Mode` always. */
function structsProxy(p: ProxyRecord | undefined): Record<string, unknown> {
  return p ? proxyJson(p, "structs") : { Mode: "", MeshGateway: {}, Expose: {} };
}

/** The two renderings differ only in `Mode` (omitempty in api, always in structs) and in their upstreams. */
function proxyJson(p: ProxyRecord, form: "api" | "structs"): Record<string, unknown> {
  const o = proxyHead(p);
  if (p.mode || form === "structs") o.Mode = p.mode;
  if (p.transparentProxy && Object.keys(p.transparentProxy).length > 0) o.TransparentProxy = p.transparentProxy;
  if (p.config && Object.keys(p.config).length > 0) o.Config = p.config;
  if (p.upstreams.length > 0) o.Upstreams = p.upstreams.map((u) => upstreamJson(u, form));
  o.MeshGateway = p.meshGateway;
  o.Expose = p.expose;
  return o;
}

/** True for kinds whose registrations carry a `Proxy` block on the agent endpoints. */
function showsProxy(kind: string): boolean {
  return kind === "connect-proxy" || kind.endsWith("-gateway");
}

/** `api.AgentService` (spec §6.5), without ContentHash. Key order follows Consul's. */
export function renderAgentService(s: ServiceRecord, datacenter: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (s.kind) o.Kind = s.kind;
  o.ID = s.id;
  o.Service = s.name;
  o.Tags = s.tags;
  o.Meta = s.meta ?? {};
  o.Port = s.port;
  o.Address = s.address;
  if (s.socketPath) o.SocketPath = s.socketPath;
  if (s.taggedAddresses && Object.keys(s.taggedAddresses).length > 0) o.TaggedAddresses = s.taggedAddresses;
  o.Weights = s.weights;
  o.EnableTagOverride = s.enableTagOverride;
  if (showsProxy(s.kind) && s.proxy) o.Proxy = apiProxy(s.proxy);
  if (s.connectNative) o.Connect = { Native: true };
  o.Datacenter = datacenter;
  return o;
}

/** The content hash of an agent service (spec §1.4.1): lowercase hex of a uint64, no padding. */
export function contentHash(rendered: Record<string, unknown>): string {
  const digest = createHash("sha256").update(JSON.stringify(rendered)).digest();
  return digest.readBigUInt64BE(0).toString(16);
}

/** `api.AgentService` plus `ContentHash`, in Consul's key order (ContentHash before Proxy). */
export function renderAgentServiceWithHash(s: ServiceRecord, datacenter: string): { json: Record<string, unknown>; hash: string } {
  const base = renderAgentService(s, datacenter);
  const hash = contentHash(base);
  const json: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) {
    if (k === "Proxy" || k === "Connect" || k === "Datacenter") {
      if (!("ContentHash" in json)) json.ContentHash = hash;
    }
    json[k] = v;
  }
  return { json, hash };
}

/** `structs.NodeService` (spec §7.1): Proxy and Connect always present. */
export function renderNodeService(s: ServiceRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (s.kind) o.Kind = s.kind;
  o.ID = s.id;
  o.Service = s.name;
  o.Tags = s.tags;
  o.Address = s.address;
  if (s.taggedAddresses && Object.keys(s.taggedAddresses).length > 0) o.TaggedAddresses = s.taggedAddresses;
  o.Meta = s.meta ?? null;
  if (s.port) o.Port = s.port;
  if (s.socketPath) o.SocketPath = s.socketPath;
  o.Weights = s.weights;
  o.EnableTagOverride = s.enableTagOverride;
  o.Proxy = structsProxy(s.proxy);
  o.Connect = s.connectNative ? { Native: true } : {};
  o.PeerName = "";
  o.CreateIndex = s.createIndex;
  o.ModifyIndex = s.modifyIndex;
  return o;
}

/** A catalog node (`structs.Node`): the agent's own, or one registered through /v1/catalog/register. */
export interface NodeInfo {
  id: string;
  name: string;
  address: string;
  datacenter: string;
  taggedAddresses: Record<string, string>;
  meta: Record<string, string>;
  createIndex: number;
  modifyIndex: number;
}

/** The dev agent's own node as the catalog shows it: LAN/WAN tagged addresses and the segment meta. */
export function localNodeInfo(cfg: DevAgentConfig, index: number): NodeInfo {
  const a = cfg.nodeAddress;
  return {
    id: cfg.nodeId, name: cfg.nodeName, address: a, datacenter: cfg.datacenter,
    taggedAddresses: { lan: a, lan_ipv4: a, wan: a, wan_ipv4: a }, meta: { "consul-network-segment": "" },
    createIndex: index, modifyIndex: index,
  };
}

/** `structs.Node` JSON (spec §7.1). */
export function renderNodeInfo(n: NodeInfo): Record<string, unknown> {
  return {
    ID: n.id,
    Node: n.name,
    Address: n.address,
    Datacenter: n.datacenter,
    TaggedAddresses: n.taggedAddresses,
    Meta: n.meta,
    CreateIndex: n.createIndex,
    ModifyIndex: n.modifyIndex,
  };
}

/** The dev agent's one node, as the catalog shows it (`structs.Node`, spec §7.1). */
export function renderNode(cfg: DevAgentConfig, index: number): Record<string, unknown> {
  return renderNodeInfo(localNodeInfo(cfg, index));
}

/** `structs.ServiceNode` (spec §7.2) of `s` on node `n`. */
export function renderServiceNode(s: ServiceRecord, n: NodeInfo): Record<string, unknown> {
  const node = renderNodeInfo(n);
  const o: Record<string, unknown> = {
    ID: node.ID,
    Node: node.Node,
    Address: node.Address,
    Datacenter: node.Datacenter,
    TaggedAddresses: node.TaggedAddresses,
    NodeMeta: node.Meta,
    ServiceKind: s.kind,
    ServiceID: s.id,
    ServiceName: s.name,
    ServiceTags: s.tags,
    ServiceAddress: s.address,
  };
  if (s.taggedAddresses && Object.keys(s.taggedAddresses).length > 0) o.ServiceTaggedAddresses = s.taggedAddresses;
  Object.assign(o, {
    ServiceWeights: s.weights,
    ServiceMeta: s.meta ?? {},
    ServicePort: s.port,
    ServiceSocketPath: s.socketPath,
    ServiceEnableTagOverride: s.enableTagOverride,
    ServiceProxy: structsProxy(s.proxy),
    ServiceConnect: s.connectNative ? { Native: true } : {},
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  });
  return o;
}

/** Valid top-level `?filter=` selectors of /v1/agent/services (the api.AgentService fields). */
export const AGENT_SERVICE_FIELDS = [
  "Kind", "ID", "Service", "Tags", "Meta", "Port", "Address", "SocketPath", "TaggedAddresses", "Weights",
  "EnableTagOverride", "CreateIndex", "ModifyIndex", "ContentHash", "Proxy", "Connect", "PeerName", "Namespace",
  "Partition", "Datacenter", "Locality",
] as const;

/** Valid top-level `?filter=` selectors of /v1/agent/checks (the HealthCheck fields). */
export const CHECK_FIELDS = [
  "Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName", "ServiceTags", "Type",
  "Interval", "Timeout", "ExposedPort", "Definition", "CreateIndex", "ModifyIndex", "Namespace", "Partition",
] as const;
