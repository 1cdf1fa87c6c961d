// A new proxy registration carried out on the running sidecar: the actions planConfigChange() returns,
// one at a time, each keeping the old value of what it could not change (logged).
import type { ProxySettings } from "../agent/index.js";
import type { PublicListener } from "../listener/index.js";
import { formatAddress } from "../net/index.js";
import type { Logger } from "../ops/index.js";
import type { UpstreamsManager } from "../upstream/index.js";
import { keepPrevious, planConfigChange, type ConfigAction } from "./config-change.js";

/** The running parts a registration change can touch. */
export interface LiveParts {
  log: Logger;
  /** The public listener now running (replaced or removed by a bind change). */
  publicListener: PublicListener | undefined;
  upstreams: UpstreamsManager;
  openPublicListener(s: ProxySettings, bind: { host: string; port: number }): Promise<PublicListener>;
  /** Takes a listener no longer current, whose live connections the sidecar's drain or destroy must still end. */
  retirePublicListener(l: PublicListener): void;
  /** Moves the admin server (Config.metrics_bind_addr); logs and keeps it where it is on failure. */
  moveAdmin(addr: { host: string; port: number } | undefined): Promise<void>;
}

/** Applies `next` over `prev`; resolves with the settings now in effect. */
export async function applyRegistration(prev: ProxySettings, next: ProxySettings, live: LiveParts): Promise<ProxySettings> {
  let inEffect = next;
  for (const action of planConfigChange(prev, next, live.publicListener !== undefined)) {
    if (!(await applyAction(action, prev, next, live))) inEffect = keepPrevious(action, prev, inEffect);
  }
  return inEffect;
}

/** Carries out one action; false when what it changes must keep its old value (logged). */
async function applyAction(action: ConfigAction, prev: ProxySettings, next: ProxySettings, live: LiveParts): Promise<boolean> {
  const { log } = live;
  switch (action.t) {
    case "keep_identity":
      log.error(
        { was: action.was, now: action.now },
        "Proxy.DestinationServiceName changed; the identity cannot change live, restart the sidecar to run as the new service",
      );
      return false;
    case "rebind_public":
    case "open_public":
    case "stop_public":
      try {
        await applyBind(action, prev, next, live);
        return true;
      } catch (err) {
        log.error({ err, bind: next.bind }, "could not bind the new public listener address; keeping the old one");
        return false;
      }
    case "update_app": {
      const pub = live.publicListener;
      if (pub === undefined) return true;
      try {
        pub.update(action);
      } catch (err) {
        log.error({ err }, "refused the new app settings; keeping the old ones");
        return false;
      }
      log.info(
        { app: formatAddress(action.app), handshakeTimeoutMs: action.handshakeTimeoutMs, localConnectTimeoutMs: action.localConnectTimeoutMs, protocol: action.protocol },
        "public listener settings updated for new connections",
      );
      return true;
    }
    case "apply_upstreams":
      try {
        await live.upstreams.apply(action.upstreams);
        log.info({ upstreams: action.upstreams.map((u) => u.destinationName) }, "upstreams updated");
      } catch (err) {
        log.error({ err }, "applying the upstreams failed");
      }
      return true; // the listeners that did bind serve; the next registration is applied afresh
    case "move_admin":
      await live.moveAdmin(action.addr);
      return true;
  }
}

async function applyBind(
  action: Extract<ConfigAction, { t: "rebind_public" | "open_public" | "stop_public" }>,
  prev: ProxySettings,
  next: ProxySettings,
  live: LiveParts,
): Promise<void> {
  if (action.t === "rebind_public") {
    await live.publicListener!.rebind(action.bind); // planned only while one runs
    live.log.info({ was: prev.bind, now: action.bind }, "public listener re-bound; live connections kept");
  } else if (action.t === "stop_public") {
    const old = live.publicListener!;
    live.publicListener = undefined;
    live.log.info("bind port is now 0: the public listener stops accepting");
    live.retirePublicListener(old);
  } else {
    live.publicListener = await live.openPublicListener(next, action.bind);
  }
}
