// The resolved proxy configuration an agent serves for a connect-proxy (spec §12.2; Consul's
// agent/consul/config_endpoint.go computeResolvedServiceConfig and agent/configentry
// MergeServiceConfig): proxy-defaults "global" and the destination's service-defaults are merged
// into the registration, keys the registration sets winning (mergo.Merge without override).

import type { ProxyRecord, ServiceRecord, UpstreamRecord } from "./catalog-model.js";
import type { DefaultsStore } from "./config-entries.js";

type Defaults = Pick<DefaultsStore, "get">;

/** computeResolvedServiceConfig's ProxyConfig, Mode and mesh gateway mode for `service`. */
function resolvedFor(defaults: Defaults, service: string): { config: Record<string, unknown>; mode: string; meshGatewayMode: string; globalProtocol: string } {
  const global = defaults.get("proxy-defaults", "global")?.fields;
  const config: Record<string, unknown> = { ...((global?.Config as Record<string, unknown> | undefined) ?? {}) };
  let mode = typeof global?.Mode === "string" ? global.Mode : "";
  let meshGatewayMode = String((global?.MeshGateway as Record<string, unknown> | undefined)?.Mode ?? "");
  const globalProtocol = typeof config.protocol === "string" ? config.protocol : "";
  const sd = defaults.get("service-defaults", service)?.fields;
  if (sd) {
    const gw = String((sd.MeshGateway as Record<string, unknown> | undefined)?.Mode ?? "");
    if (gw !== "") meshGatewayMode = gw;
    if (typeof sd.Protocol === "string" && sd.Protocol !== "") config.protocol = sd.Protocol;
    if (typeof sd.Mode === "string" && sd.Mode !== "") mode = sd.Mode;
    const ints: Array<[string, string]> = [
      ["MaxInboundConnections", "max_inbound_connections"],
      ["LocalConnectTimeoutMs", "local_connect_timeout_ms"],
      ["LocalRequestTimeoutMs", "local_request_timeout_ms"],
    ];
    for (const [field, key] of ints) {
      const n = Number(sd[field] ?? 0);
      if (n > 0) config[key] = n;
    }
  }
  return { config, mode, meshGatewayMode, globalProtocol };
}

/** Fills missing keys of `into` from `from` (mergo.Merge's default: the destination wins). */
function fill(into: Record<string, unknown> | undefined, from: Record<string, unknown>): Record<string, unknown> | undefined {
  if (Object.keys(from).length === 0) return into;
  return { ...from, ...(into ?? {}) };
}

function resolveUpstream(u: UpstreamRecord, defaults: Defaults, globalProtocol: string): UpstreamRecord {
  if (u.destinationType !== "" && u.destinationType !== "service") return u;
  // an upstream's protocol: proxy-defaults' protocol, then the upstream's own service-defaults
  const sd = defaults.get("service-defaults", u.destinationName)?.fields.Protocol;
  const protocol = typeof sd === "string" && sd !== "" ? sd : globalProtocol;
  return protocol === "" ? u : { ...u, config: fill(u.config, { protocol }) };
}

/**
 * The registration as the agent serves it: for a connect-proxy, proxy-defaults and the destination
 * service's service-defaults merged in. Other services are returned unchanged.
 */
export function resolveProxyService(svc: ServiceRecord, defaults: Defaults): ServiceRecord {
  if (svc.kind !== "connect-proxy" || !svc.proxy) return svc;
  const r = resolvedFor(defaults, svc.proxy.destinationServiceName);
  const p = svc.proxy;
  const meshMode = String(p.meshGateway.Mode ?? "");
  const proxy: ProxyRecord = {
    ...p,
    config: fill(p.config, r.config),
    mode: p.mode === "" ? r.mode : p.mode,
    meshGateway: meshMode === "" && r.meshGatewayMode !== "" ? { ...p.meshGateway, Mode: r.meshGatewayMode } : p.meshGateway,
    upstreams: p.upstreams.map((u) => resolveUpstream(u, defaults, r.globalProtocol)),
  };
  return { ...svc, proxy };
}
