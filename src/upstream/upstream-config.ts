// One upstream entry, checked once and turned into what a listener needs (STYLE §2): the bind, the
// destination, the connect timeout. Consul's quirks we do not copy are noted where they differ.
import { protocolOf, type ListenerProtocol, type Upstream } from "../agent/index.js";
import { ConfigError, formatAddress } from "../net/index.js";

/** spec §6.1: per-upstream `Config.connect_timeout_ms`, default 10 000. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const MAX_CONNECT_TIMEOUT_MS = 10 * 60_000;
const SOCKET_MODE_RE = /^0?[0-7]{3}$/;

export type UpstreamBind =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string; mode: number | undefined };

/** A checked upstream: what to listen on, where to go, how long a connect may take. */
export interface UpstreamSpec {
  upstream: Upstream;
  /** Identity of the listening socket: "tcp:127.0.0.1:9191" or "unix:/path". */
  bindKey: string;
  /** Identity of the destination: type, namespace, name, datacenter. */
  destinationKey: string;
  bind: UpstreamBind;
  /** Covers waiting for certs and discovery, every dial and every handshake of one connection. */
  connectTimeoutMs: number;
  /** Metric/log label: `upstream:<DestinationName>` (architecture: listener label values). */
  listenerLabel: string;
  /**
   * Config.protocol as the agent resolved it (the destination's service-defaults Protocol, else
   * proxy-defaults', unless the registration sets one): "http" parses requests; else bytes.
   */
  protocol: ListenerProtocol;
}

/**
 * Checks one upstream and derives its spec. Throws ConfigError naming the field (`upstreams[i].…`)
 * for an empty name, a missing bind, a bad socket mode or a bad connect_timeout_ms. Port 0 (an
 * ephemeral port, for tests) only with `allowEphemeralPort`: the agent never sends it (spec §6.1).
 */
export function toUpstreamSpec(u: Upstream, field: string, opts: { allowEphemeralPort: boolean }): UpstreamSpec {
  if (u.destinationName === "") throw new ConfigError(`${field}.DestinationName`, "upstream destination name cannot be empty");
  if (u.destinationName === "*") throw new ConfigError(`${field}.DestinationName`, "upstream destination name cannot be a wildcard");
  let bind: UpstreamBind;
  if (u.localBindSocketPath !== "") {
    bind = { kind: "unix", path: u.localBindSocketPath, mode: parseSocketMode(u.localBindSocketMode, `${field}.LocalBindSocketMode`) };
  } else if (u.localBindPort >= 0 && u.localBindPort <= 65535 && (u.localBindPort > 0 || opts.allowEphemeralPort)) {
    const host = u.localBindAddress === "" ? "127.0.0.1" : u.localBindAddress;
    bind = { kind: "tcp", host, port: u.localBindPort };
  } else {
    throw new ConfigError(`${field}.LocalBindPort`, "upstream local bind port or local socket path must be defined and nonzero");
  }
  const ns = u.destinationNamespace === "" ? "default" : u.destinationNamespace;
  return {
    upstream: u,
    bindKey: bind.kind === "tcp" ? `tcp:${formatAddress(bind)}` : formatAddress({ socketPath: bind.path }),
    destinationKey: `${u.destinationType}|${ns}|${u.destinationName}|${u.datacenter}`,
    bind,
    connectTimeoutMs: parseConnectTimeoutMs(u.config.connect_timeout_ms, `${field}.Config.connect_timeout_ms`),
    listenerLabel: `upstream:${u.destinationName}`,
    protocol: protocolOf(u.config, `${field}.Config.protocol`),
  };
}

/**
 * `connect_timeout_ms` as a number or a numeric string (agent JSON gives float64 numbers: Consul's
 * int type assertion then silently ignores the value, spec §9.5; we honour it). Absent → default.
 */
export function parseConnectTimeoutMs(v: unknown, field: string): number {
  if (v === undefined || v === null || v === "") return DEFAULT_CONNECT_TIMEOUT_MS;
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n) || n <= 0 || n > MAX_CONNECT_TIMEOUT_MS) {
    throw new ConfigError(field, `must be a number of milliseconds between 1 and ${MAX_CONNECT_TIMEOUT_MS}, got ${JSON.stringify(v)}`);
  }
  return Math.ceil(n);
}

/** "0600" / "600" → 0o600; "" → undefined (leave the umask's mode). */
function parseSocketMode(text: string, field: string): number | undefined {
  if (text === "") return undefined;
  if (!SOCKET_MODE_RE.test(text)) throw new ConfigError(field, `must be an octal file mode such as "0600", got ${JSON.stringify(text)}`);
  return Number.parseInt(text, 8);
}

