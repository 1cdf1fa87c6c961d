// How the sidecar compares two proxy settings. Reading a registration into ProxySettings is
// src/agent's (proxy-settings.ts: shared with the doctor); it is re-exported here for sidecar.ts.
import type { AppAddress, ProxySettings } from "../agent/index.js";

export { proxySettingsFromService } from "../agent/index.js";
export type { AppAddress, ProxySettings } from "../agent/index.js";

/** True when two settings differ in what the public listener uses for new connections. */
export function appSettingsChanged(a: ProxySettings, b: ProxySettings): boolean {
  return (
    formatApp(a.app) !== formatApp(b.app) ||
    a.handshakeTimeoutMs !== b.handshakeTimeoutMs ||
    a.localConnectTimeoutMs !== b.localConnectTimeoutMs
  );
}

export function sameAddress(a: { host: string; port: number } | undefined, b: { host: string; port: number } | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.host === b.host && a.port === b.port);
}

/** "host:port" or "unix:/path", for logs and /status. */
export function formatApp(app: AppAddress | undefined): string {
  if (app === undefined) return "";
  return "socketPath" in app ? `unix:${app.socketPath}` : app.host.includes(":") ? `[${app.host}]:${app.port}` : `${app.host}:${app.port}`;
}
