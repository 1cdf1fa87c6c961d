// Checklist steps 5 and 6, checked live on this host: the public port (inside the agent's range
// or set on purpose; free, or held by this very sidecar), and the app (on loopback, and NOT
// answering on any of this host's other addresses).
import type { NetworkInterfaceInfo } from "node:os";
import type { AgentSelfInfo, CaRoots, LeafCert } from "../agent/index.js";
import { isLoopbackHost } from "../net/index.js";
import type { Outcome, ProxyView } from "./evidence.js";
import { hostPort, nonLoopbackAddresses, probeBind, probePeerUri, probeTcp, type EphemeralPorts } from "./probe.js";
import type { Check } from "./types.js";

export const DEFAULT_SIDECAR_PORT_RANGE = { min: 21000, max: 21255 } as const; // spec §6.2

/** Is the public port one the firewall plan expects: the agent's automatic range, or set on purpose? */
export function checkPublicPort(
  proxy: ProxyView | undefined,
  agentSelf: Outcome<AgentSelfInfo>,
  fallbackRange: { min: number; max: number } | undefined,
  ephemeral: EphemeralPorts | undefined,
): Check {
  const base = { id: "public-port", step: "sidecar-ports" } as const;
  if (proxy === undefined) return { ...base, verdict: "SKIP", seen: "no sidecar resolved" };
  if (proxy.bind === undefined) return { ...base, verdict: "SKIP", seen: "no public listener (bind port 0): this sidecar only serves upstreams" };
  const self = agentSelf.t === "ok" ? agentSelf.value : undefined;
  const fromAgent = self?.sidecarMinPort !== undefined && self.sidecarMaxPort !== undefined;
  const range = fromAgent ? { min: self.sidecarMinPort!, max: self.sidecarMaxPort! } : (fallbackRange ?? DEFAULT_SIDECAR_PORT_RANGE);
  const rangeText = `${range.min}–${range.max}${
    fromAgent ? " (the agent's sidecar range)" : fallbackRange ? " (the given sidecar range)" : " (the default sidecar range; /v1/agent/self not read)"
  }`;
  const { host, port } = proxy.bind;
  const where = hostPort(host, port);
  if (port < 1024) {
    return {
      ...base,
      verdict: "WARN",
      seen: `public listener ${where} is a privileged port: the sidecar needs root or CAP_NET_BIND_SERVICE`,
      fix: `register the sidecar with a port in ${range.min}–${range.max} (drop Port from Connect.SidecarService and the agent picks one)`,
    };
  }
  if (isLoopbackHost(host)) {
    return {
      ...base,
      verdict: "WARN",
      seen: `public listener ${where} is on loopback: no other host can reach this service through the mesh`,
      fix: 'register the sidecar on the host\'s address: Connect.SidecarService { Address = "<host IP>" } or Proxy.Config { bind_address = "0.0.0.0" }',
    };
  }
  if (ephemeral !== undefined && port >= ephemeral.min && port <= ephemeral.max && !ephemeral.reserved(port)) {
    return {
      ...base,
      verdict: "WARN",
      seen: `public listener ${where} is inside this host's ephemeral port range ${ephemeral.min}–${ephemeral.max}: an outgoing connection can hold it when the sidecar (re)binds`,
      fix: `sysctl -w net.ipv4.ip_local_reserved_ports=${port} (persist it in /etc/sysctl.d), or use the sidecar range ${DEFAULT_SIDECAR_PORT_RANGE.min}–${DEFAULT_SIDECAR_PORT_RANGE.max}`,
    };
  }
  const inRange = port >= range.min && port <= range.max;
  const how = inRange
    ? `inside ${rangeText}`
    : proxy.portExplicit
      ? `set explicitly (Proxy.Config.bind_port / -listen), outside ${rangeText}`
      : fromAgent
        ? `outside ${rangeText}, so set explicitly in the registration`
        : `outside ${rangeText}; set explicitly, or the agent's own range differs`;
  return { ...base, verdict: "PASS", seen: `public listener ${where}, ${how}: open ${inRange ? `${range.min}–${range.max}` : `port ${port}`} to the mesh, nothing else` };
}

/** The running sidecar's own view of its port: it holds it, so there is nothing to probe. */
export function ownPublicListenerCheck(bound: { host: string; port: number }): Check {
  return { id: "public-port-bind", step: "sidecar-ports", verdict: "PASS", seen: `${hostPort(bound.host, bound.port)} is held by this sidecar process` };
}

/** Can the sidecar bind its port: free, or already held by this service's sidecar (its TLS URI says)? */
export async function checkPublicPortBind(
  proxy: ProxyView | undefined,
  leaf: Outcome<LeafCert> | undefined,
  roots: Outcome<CaRoots>,
  timeoutMs: number,
): Promise<Check> {
  const base = { id: "public-port-bind", step: "sidecar-ports" } as const;
  if (proxy?.bind === undefined) return { ...base, verdict: "SKIP", seen: "no public listener" };
  const { host, port } = proxy.bind;
  const where = hostPort(host, port);
  const bind = await probeBind(host, port);
  switch (bind) {
    case "free":
      return { ...base, verdict: "PASS", seen: `${where} is free: the sidecar can bind it (it is not running now)` };
    case "no_access":
      return { ...base, verdict: "FAIL", seen: `cannot bind ${where}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)`, fix: "setcap cap_net_bind_service=+ep \"$(command -v node)\", or use a port of 1024 or more" };
    case "not_local":
      return { ...base, verdict: "FAIL", seen: `cannot bind ${where}: ${host} is not an address of this host`, fix: 'set Proxy.Config { bind_address = "0.0.0.0" } or the host\'s own address in the sidecar registration' };
    case "error":
      return { ...base, verdict: "WARN", seen: `cannot tell whether ${where} is free`, fix: `ss -ltnp 'sport = :${port}'` };
    case "in_use":
      break;
  }
  const dialHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  const tls: { cert?: string; key?: string; ca?: string[] } = {};
  if (leaf?.t === "ok") {
    tls.cert = leaf.value.certPem;
    tls.key = leaf.value.privateKeyPem;
  }
  if (roots.t === "ok") tls.ca = roots.value.roots.map((r) => r.rootCertPem);
  const peer = await probePeerUri(dialHost, port, tls, timeoutMs);
  const expected = leaf?.t === "ok" ? leaf.value.serviceUri.toLowerCase() : undefined;
  const suffix = `/svc/${proxy.service.toLowerCase()}`;
  const trustDomain = roots.t === "ok" ? roots.value.trustDomain.toLowerCase() : undefined;
  const uri = peer.uri?.toLowerCase();
  const ours =
    uri !== undefined &&
    (uri === expected || (uri.endsWith(suffix) && (trustDomain === undefined || uri.startsWith(`spiffe://${trustDomain}/`))));
  if (ours) return { ...base, verdict: "PASS", seen: `${where} is held by ${proxy.service}'s sidecar: it presents ${peer.uri}` };
  if (peer.error === "ECONNREFUSED") {
    return {
      ...base,
      verdict: "WARN",
      seen: `${where} cannot be bound, yet nothing listens there: an outgoing connection holds the port right now`,
      fix: `sysctl -w net.ipv4.ip_local_reserved_ports=${port} so outgoing connections never take it`,
    };
  }
  return {
    ...base,
    verdict: "FAIL",
    seen: `${where} is held by something that is not ${proxy.service}'s sidecar (${peer.uri ? `it presents ${peer.uri}` : `no ${proxy.service} certificate: ${peer.error}`})`,
    fix: `find the holder: ss -ltnp 'sport = :${port}'; stop it, or register the sidecar on another port`,
  };
}

/** The proxy's local service address must be loopback (or a unix socket). */
export function checkAppAddress(proxy: ProxyView | undefined): Check {
  const base = { id: "app-address", step: "app-behind-proxy" } as const;
  if (proxy === undefined) return { ...base, verdict: "SKIP", seen: "no sidecar resolved" };
  const app = proxy.app;
  if (app === undefined) return { ...base, verdict: "SKIP", seen: "no local app (no public listener)" };
  if ("socketPath" in app) return { ...base, verdict: "PASS", seen: `the app is reached over the unix socket ${app.socketPath}` };
  const where = hostPort(app.host, app.port);
  if (isLoopbackHost(app.host)) return { ...base, verdict: "PASS", seen: `the proxy's local service address ${where} is loopback` };
  return {
    ...base,
    verdict: "FAIL",
    seen: `the proxy's local service address ${where} is not loopback: the app must listen off loopback, where callers can skip the sidecar`,
    fix: `bind the app to 127.0.0.1:${app.port} and register the sidecar with Proxy { LocalServiceAddress = "127.0.0.1"  LocalServicePort = ${app.port} } (static mode: -service-addr 127.0.0.1:${app.port})`,
  };
}

/**
 * Tries the app port on every non-loopback address of THIS host (os.networkInterfaces(), never
 * another host): any answer means callers can reach the app without mTLS or intentions.
 */
export async function checkAppExposure(
  proxy: ProxyView | undefined,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
  timeoutMs: number,
): Promise<Check> {
  const base = { id: "app-exposure", step: "app-behind-proxy" } as const;
  const app = proxy?.app;
  if (app === undefined) return { ...base, verdict: "SKIP", seen: "no local app to probe" };
  if ("socketPath" in app) return { ...base, verdict: "PASS", seen: `the app listens on the unix socket ${app.socketPath}: no network address can reach it` };
  const addrs = nonLoopbackAddresses(interfaces);
  // Probe only this host: the app's own address when loopback, and this host's interface addresses.
  if (!isLoopbackHost(app.host) && !addrs.includes(app.host)) {
    return { ...base, verdict: "SKIP", seen: `the app is at ${hostPort(app.host, app.port)}, not on this host: not probed (see app-address)` };
  }
  if (addrs.length === 0) return { ...base, verdict: "SKIP", seen: "this host has no non-loopback address to probe" };
  const [local, ...others] = await Promise.all([
    probeTcp(app.host, app.port, timeoutMs),
    ...addrs.map((a) => probeTcp(a, app.port, timeoutMs)),
  ]);
  const answered = addrs.filter((_, i) => others[i] === "open");
  const tried = addrs.map((a) => hostPort(a, app.port)).join(", ");
  if (answered.length > 0) {
    return {
      ...base,
      verdict: "FAIL",
      seen: `the app answers on ${answered.map((a) => hostPort(a, app.port)).join(", ")}: callers can reach it without mTLS or intentions`,
      fix: `bind the app to 127.0.0.1 only (e.g. server.listen(${app.port}, "127.0.0.1"), --host 127.0.0.1), not 0.0.0.0 or ::`,
    };
  }
  if (local !== "open") {
    return {
      ...base,
      verdict: "WARN",
      seen: `the app does not answer at ${hostPort(app.host, app.port)} either (${local}), so its exposure cannot be judged; tried ${tried}`,
      fix: "start the app, then rerun the doctor",
    };
  }
  return { ...base, verdict: "PASS", seen: `the app answers at ${hostPort(app.host, app.port)} and on none of ${tried}` };
}
