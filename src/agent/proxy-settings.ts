// Turns a connect-proxy registration into the settings the sidecar runs with (spec §9.2): the one
// reading of a registration's Proxy block and its opaque Config map, shared by the sidecar (what it
// runs) and the doctor (what it checks). It lives here, beside the decoders, because the Config
// keys are Consul JSON (weakly typed by Consul's mapstructure); it is pure (no I/O).
// Unlike Consul's built-in proxy, the Config keys bind_address, bind_port and
// local_service_address are honoured in agent mode when present (spec §6.1, §9.2).
import { ConfigError, parseHostPort, unbracketHost } from "../net/index.js";
import type { AgentService, Upstream } from "./types.js";

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000; // spec §6.1
export const DEFAULT_LOCAL_CONNECT_TIMEOUT_MS = 1_000; // spec §6.1

export type AppAddress = { host: string; port: number } | { socketPath: string };

/**
 * The protocol Consul resolved for a listener (Proxy.Config.protocol, or an upstream's
 * Config.protocol: spec §12.2). Only "http" is parsed; "http2" and "grpc" are proxied at layer 4.
 */
export type ListenerProtocol = "tcp" | "http" | "http2" | "grpc";

/** Reads a `protocol` Config key as Consul does (case-insensitive, empty is tcp). Throws ConfigError. */
export function protocolOf(cfg: Record<string, unknown>, field: string): ListenerProtocol {
  const v = cfg.protocol;
  if (v === undefined || v === null || v === "") return "tcp";
  const p = typeof v === "string" ? v.toLowerCase() : "";
  if (p === "tcp" || p === "http" || p === "http2" || p === "grpc") return p;
  throw new ConfigError(field, `${JSON.stringify(v)} is not a protocol Consul knows; set tcp, http, http2 or grpc`);
}

/**
 * Who the proxy is, the three ways `proxy` and `doctor` are told (spec §9.1 precedence: proxy-id >
 * sidecar-for > service): a registration by ID, the sidecar of a service ID, or static flags.
 * `Static` adds what one command alone reads in static mode.
 */
export type ProxyIdentity<Static extends object = object> =
  | { t: "proxy-id"; proxyId: string }
  | { t: "sidecar-for"; serviceId: string }
  | ({
      t: "static";
      service: string;
      /** -listen: the public listener, if any. */
      listen: { host: string; port: number } | undefined;
      /** -service-addr: the local app. */
      app: { host: string; port: number } | undefined;
    } & Static);

/** Everything the sidecar applies from one proxy registration (or from static flags). */
export interface ProxySettings {
  proxyId: string | undefined;
  /** The proxied service: its name is our identity and the authorize target. */
  service: string;
  /** The agent's datacenter as the registration reports it; undefined in static mode. */
  datacenter: string | undefined;
  /** The public listener; undefined when the bind port is 0 (spec §9.3: then there is none). */
  bind: { host: string; port: number } | undefined;
  app: AppAddress | undefined;
  handshakeTimeoutMs: number;
  localConnectTimeoutMs: number;
  /** Config.protocol: how the public listener treats its connections. */
  protocol: ListenerProtocol;
  upstreams: Upstream[];
  /** Config.metrics_bind_addr, if set. */
  metricsBindAddr: { host: string; port: number } | undefined;
}

/**
 * Reads a connect-proxy registration. Throws ConfigError naming the registration field at fault
 * (`Kind`, `Proxy.Config.handshake_timeout_ms`, …); the caller logs it and keeps what it had.
 */
export function proxySettingsFromService(svc: AgentService): ProxySettings {
  return readProxyRegistration(svc).settings;
}

/**
 * proxySettingsFromService, and whether the bind port was set on purpose (Proxy.Config.bind_port)
 * rather than taken from the registration's Port, which the agent may have picked from its range.
 */
export function readProxyRegistration(svc: AgentService): { settings: ProxySettings; bindPortExplicit: boolean } {
  // spec §9.2: "service is not a valid connect proxy"
  if (svc.kind !== "connect-proxy" || svc.proxy === undefined) {
    throw new ConfigError("Kind", `service ${JSON.stringify(svc.id)} is not a valid connect proxy (Kind is ${JSON.stringify(svc.kind)}); register it with Kind "connect-proxy"`);
  }
  const proxy = svc.proxy;
  if (proxy.destinationServiceName === "") {
    throw new ConfigError("Proxy.DestinationServiceName", "is empty; set it to the name of the service this proxy fronts");
  }
  const cfg = proxy.config;
  const bindHost = optionalString(cfg, "bind_address") ?? (svc.address === "" ? "0.0.0.0" : svc.address);
  const bindPortConfig = optionalNumber(cfg, "bind_port", { max: 65535 });
  const bindPort = bindPortConfig ?? svc.port;
  const bind = bindPort === 0 ? undefined : { host: unbracketHost(bindHost), port: bindPort };

  let app: AppAddress | undefined;
  const localServiceAddress = optionalString(cfg, "local_service_address");
  if (localServiceAddress !== undefined) {
    app = parseHostPort(localServiceAddress, "Proxy.Config.local_service_address");
  } else if (proxy.localServiceSocketPath !== "") {
    app = { socketPath: proxy.localServiceSocketPath };
  } else if (proxy.localServicePort !== 0) {
    // Go dials ":port" as the local host; say so explicitly.
    app = { host: proxy.localServiceAddress === "" ? "127.0.0.1" : unbracketHost(proxy.localServiceAddress), port: proxy.localServicePort };
  }
  if (bind !== undefined && app === undefined) {
    throw new ConfigError(
      "Proxy.LocalServicePort",
      "is 0 and no LocalServiceSocketPath is set, so the public listener has no app to forward to; set Proxy.LocalServicePort",
    );
  }
  const metricsText = optionalString(cfg, "metrics_bind_addr");
  const settings: ProxySettings = {
    proxyId: svc.id,
    service: proxy.destinationServiceName,
    datacenter: svc.datacenter === "" ? undefined : svc.datacenter,
    bind,
    app,
    handshakeTimeoutMs: optionalNumber(cfg, "handshake_timeout_ms", { min: 1 }) ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    localConnectTimeoutMs: optionalNumber(cfg, "local_connect_timeout_ms", { min: 1 }) ?? DEFAULT_LOCAL_CONNECT_TIMEOUT_MS,
    protocol: protocolOf(cfg, "Proxy.Config.protocol"),
    upstreams: proxy.upstreams,
    metricsBindAddr: metricsText === undefined ? undefined : parseHostPort(metricsText, "Proxy.Config.metrics_bind_addr"),
  };
  return { settings, bindPortExplicit: bindPortConfig !== undefined };
}

// Consul decodes Config with weakly-typed mapstructure: numbers may arrive as numeric strings.
function optionalNumber(cfg: Record<string, unknown>, key: string, range: { min?: number; max?: number } = {}): number | undefined {
  const v = cfg[key];
  if (v === undefined || v === null || v === "") return undefined;
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isFinite(n) || n < min || n > max || !Number.isInteger(n)) {
    throw new ConfigError(
      `Proxy.Config.${key}`,
      `${JSON.stringify(v)} is not a whole number between ${min} and ${max}; set a number such as ${key.endsWith("_ms") ? "1000" : "21000"}`,
    );
  }
  return n;
}

function optionalString(cfg: Record<string, unknown>, key: string): string | undefined {
  const v = cfg[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new ConfigError(`Proxy.Config.${key}`, `${JSON.stringify(v)} is not a string; set it as text`);
  return v;
}

