// A new proxy registration, as the actions that take the running sidecar from one ProxySettings to
// the next. Pure: the sidecar carries the actions out, one at a time, and keeps the old value of
// whatever an action could not apply.
import type { AppAddress, ListenerProtocol, ProxySettings, Upstream } from "../agent/index.js";
import { formatAddress } from "../net/index.js";

type HostPort = { host: string; port: number };

export type ConfigAction =
  /** Proxy.DestinationServiceName changed: our identity cannot change live, so the old one stays. */
  | { t: "keep_identity"; was: string; now: string }
  /** Bind the public listener's new address, then stop the old one accepting; live connections stay. */
  | { t: "rebind_public"; bind: HostPort }
  /** The bind port is now 0: stop accepting (spec §9.3: no public listener). */
  | { t: "stop_public" }
  | { t: "open_public"; bind: HostPort }
  /** New connections use these; live ones are untouched. */
  | { t: "update_app"; app: AppAddress; handshakeTimeoutMs: number; localConnectTimeoutMs: number; protocol: ListenerProtocol }
  | { t: "apply_upstreams"; upstreams: Upstream[] }
  /** Config.metrics_bind_addr moved (ignored when -metrics-addr was given). */
  | { t: "move_admin"; addr: HostPort | undefined };

/**
 * The actions that apply `next` over `prev`, in the order they must run: identity, the public
 * listener's address, its app settings (on the listener that address left us with), upstreams, the
 * admin server. `hasPublic` says whether a public listener runs now.
 */
export function planConfigChange(prev: ProxySettings, next: ProxySettings, hasPublic: boolean): ConfigAction[] {
  const actions: ConfigAction[] = [];
  if (next.service !== prev.service) actions.push({ t: "keep_identity", was: prev.service, now: next.service });
  if (!sameAddress(prev.bind, next.bind)) {
    if (hasPublic && next.bind !== undefined) actions.push({ t: "rebind_public", bind: next.bind });
    else if (hasPublic) actions.push({ t: "stop_public" });
    else if (next.bind !== undefined && next.app !== undefined) actions.push({ t: "open_public", bind: next.bind });
  }
  if (next.app !== undefined && appSettingsChanged(prev, next)) {
    actions.push({
      t: "update_app",
      app: next.app,
      handshakeTimeoutMs: next.handshakeTimeoutMs,
      localConnectTimeoutMs: next.localConnectTimeoutMs,
      protocol: next.protocol,
    });
  }
  if (JSON.stringify(prev.upstreams) !== JSON.stringify(next.upstreams)) actions.push({ t: "apply_upstreams", upstreams: next.upstreams });
  if (!sameAddress(prev.metricsBindAddr, next.metricsBindAddr)) actions.push({ t: "move_admin", addr: next.metricsBindAddr });
  return actions;
}

/** True when two settings differ in what the public listener uses for new connections. */
function appSettingsChanged(a: ProxySettings, b: ProxySettings): boolean {
  return (
    (a.app === undefined ? "" : formatAddress(a.app)) !== (b.app === undefined ? "" : formatAddress(b.app)) ||
    a.handshakeTimeoutMs !== b.handshakeTimeoutMs ||
    a.localConnectTimeoutMs !== b.localConnectTimeoutMs ||
    a.protocol !== b.protocol
  );
}

export function sameAddress(a: HostPort | undefined, b: HostPort | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.host === b.host && a.port === b.port);
}

/** `next` with the fields of `action` put back to `prev`'s: what runs when the action could not be applied. */
export function keepPrevious(action: ConfigAction, prev: ProxySettings, next: ProxySettings): ProxySettings {
  switch (action.t) {
    case "keep_identity":
      return { ...next, service: prev.service };
    case "rebind_public":
    case "stop_public":
    case "open_public":
      return { ...next, bind: prev.bind };
    case "update_app":
      return {
        ...next,
        app: prev.app,
        handshakeTimeoutMs: prev.handshakeTimeoutMs,
        localConnectTimeoutMs: prev.localConnectTimeoutMs,
        protocol: prev.protocol,
      };
    case "apply_upstreams":
    case "move_admin":
      return next; // nothing to put back: each reports its own failure and keeps what runs
  }
}
