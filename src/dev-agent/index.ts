import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { pino, type Logger } from "pino";
import { ChangeFeed } from "./change-feed.js";
import type { DevAgentConfig, DevAgentContext } from "./context.js";
import { createRequestHandler, listen, type BoundListener } from "./http-server.js";
import { createAclStore, aclRoutes } from "./acl.js";
import { createCa, caRoutes } from "./ca.js";
import { selfRoutes } from "./self.js";
import { createCatalog, catalogRoutes, type ServiceRecord } from "./catalog.js";
import { createIntentionStore, intentionRoutes, authorizeRoutes } from "./intentions.js";
import { queryRoutes } from "./query.js";
import { configRoutes, createDefaultsStore, intentionsEntryCheck } from "./config-entries.js";
import { CONFIG_ENTRIES_TABLE } from "./intention-store.js";
import { resolveProxyService } from "./proxy-config.js";
import { createConfigServices, type ConfigSource, type LoadedConfig } from "./config-services.js";

export type { ConfigSource, LoadedConfig } from "./config-services.js";

export interface DevAgentOptions {
  /** "host:port" (default "127.0.0.1:0" in-process, 127.0.0.1:8500 from the CLI) or "unix:///path". */
  httpAddr?: string;
  datacenter?: string;
  nodeName?: string;
  aclsEnabled?: boolean;
  aclDefaultPolicy?: "allow" | "deny";
  initialManagementToken?: string;
  leafCertTtlMs?: number;
  /**
   * In-process only (tests, the soak): after a root rotation each cached leaf is reissued at a random
   * point in [0, this), Consul's caChangeJitterWindow (30 s, spec §3.2). Consul has no setting for it,
   * so neither the CA configuration nor the CLI takes one.
   */
  leafReissueWindowMs?: number;
  sidecarMinPort?: number;
  sidecarMaxPort?: number;
  https?: { addr: string; certFile: string; keyFile: string; caFile?: string; verifyIncoming?: boolean };
  /** -config-file / -config-dir: service definitions loaded before the agent listens, and on reloadConfig(). */
  configSources?: ConfigSource[];
  log?: Logger;
}

export interface DevAgent {
  /** "127.0.0.1:PORT" or "unix:///path": what CONSUL_HTTP_ADDR should say. */
  address: string;
  httpUrl: string;
  httpsUrl: string | undefined;
  managementToken: string;
  datacenter: string;
  trustDomain: string;
  /** What the config sources registered at the last good load (empty without sources). */
  loadedConfig(): LoadedConfig;
  /** Consul's reload (SIGHUP): reads the config sources again; rejects with ConfigError and keeps the last good load. */
  reloadConfig(): Promise<LoadedConfig>;
  stop(): Promise<void>;
}

/** Starts a Consul-compatible dev agent in this process. Rejects when a listener cannot bind. */
export async function startDevAgent(opts: DevAgentOptions = {}): Promise<DevAgent> {
  const stop = new AbortController();
  const log = opts.log ?? pino({ level: "silent" });
  const cfg: DevAgentConfig = {
    datacenter: opts.datacenter ?? "dc1",
    nodeName: opts.nodeName ?? hostname(),
    nodeId: randomUUID(),
    nodeAddress: "127.0.0.1",
    aclsEnabled: opts.aclsEnabled ?? false,
    aclDefaultPolicy: opts.aclDefaultPolicy ?? "allow",
    initialManagementToken: opts.initialManagementToken ?? randomUUID(),
    leafCertTtlMs: opts.leafCertTtlMs ?? 72 * 3_600_000,
    sidecarMinPort: opts.sidecarMinPort ?? 21000,
    sidecarMaxPort: opts.sidecarMaxPort ?? 21255,
    httpAddrs: [],
    httpsAddrs: [],
    httpsVerifyIncoming: opts.https?.verifyIncoming ?? false,
  };
  const ctx: DevAgentContext = { cfg, feed: new ChangeFeed(), log, stopSignal: stop.signal };

  const acl = createAclStore(ctx);
  const ca = await createCa(ctx, opts.leafReissueWindowMs !== undefined ? { leafReissueWindowMs: opts.leafReissueWindowMs } : {});
  const catalog = createCatalog(ctx);
  const defaults = createDefaultsStore(ctx.feed);
  const serviceView = { resolve: (s: ServiceRecord) => resolveProxyService(s, defaults), tables: [CONFIG_ENTRIES_TABLE] };
  const intentions = createIntentionStore(ctx.feed, intentionsEntryCheck(defaults));
  const configServices = createConfigServices(catalog, opts.configSources ?? [], log);
  const routes = [
    ...aclRoutes(acl, ctx),
    ...caRoutes(ca, ctx),
    ...selfRoutes(ctx),
    ...catalogRoutes(catalog, ctx, serviceView),
    ...intentionRoutes(intentions, ctx),
    ...authorizeRoutes(intentions, ctx),
    ...configRoutes(defaults, intentions, ctx),
    ...queryRoutes(catalog, ctx),
  ];
  const handler = createRequestHandler(
    {
      routes,
      feed: ctx.feed,
      log,
      resolveAcl: (token) => acl.resolve(token),
      defaultAclPolicy: () => cfg.aclDefaultPolicy,
    },
    stop.signal,
  );

  const listeners: BoundListener[] = [];
  try {
    // As Consul's agent: a bad service definition file stops it before it serves anything.
    if ((opts.configSources ?? []).length > 0) await configServices.load();
    const http = await listen({ addr: opts.httpAddr ?? "127.0.0.1:0" }, handler);
    listeners.push(http);
    cfg.httpAddrs.push(http.address.startsWith("unix://") ? http.address : `tcp://${http.address}`);
    let httpsUrl: string | undefined;
    if (opts.https) {
      const h = opts.https;
      const bound = await listen(
        {
          addr: h.addr,
          tls: {
            cert: readFileSync(h.certFile),
            key: readFileSync(h.keyFile),
            ...(h.caFile ? { ca: readFileSync(h.caFile) } : {}),
            requestCert: h.verifyIncoming ?? false,
            rejectUnauthorized: h.verifyIncoming ?? false,
          },
        },
        handler,
      );
      listeners.push(bound);
      cfg.httpsAddrs.push(`tcp://${bound.address}`);
      httpsUrl = `https://${bound.address}`;
    }
    log.info({ http: http.address, https: httpsUrl, datacenter: cfg.datacenter, trustDomain: ca.trustDomain }, "dev agent started");
    let stopped: Promise<void> | undefined;
    return {
      address: http.address,
      httpUrl: http.address.startsWith("unix://") ? http.address : `http://${http.address}`,
      httpsUrl,
      managementToken: acl.managementToken,
      datacenter: cfg.datacenter,
      trustDomain: ca.trustDomain,
      loadedConfig: () => configServices.loaded(),
      reloadConfig: () => configServices.load(),
      stop: () =>
        (stopped ??= (async () => {
          stop.abort();
          catalog.close();
          ca.close();
          await Promise.all(listeners.map((l) => l.close()));
        })()),
    };
  } catch (err) {
    stop.abort();
    catalog.close();
    ca.close();
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
}
