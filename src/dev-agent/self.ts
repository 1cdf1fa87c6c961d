import { arch, platform } from "node:os";
import type { DevAgentContext } from "./context.js";
import type { Route } from "./router.js";

// What the dev agent claims to be. Clients read Config.Version; keep it a real Consul release.
const VERSION = "1.20.1";
const REVISION = "0000000000000000000000000000000000000000";
const BUILD_DATE = "2024-10-29T00:00:00Z";
const SERVER_RPC = "127.0.0.1:8300";

/** The port of a `tcp://host:port` listener address, or `fallback` for unix sockets / none. */
function portOf(addrs: readonly string[], fallback: number): number {
  const m = /:(\d+)$/.exec(addrs[0] ?? "");
  return addrs[0]?.startsWith("tcp://") && m ? Number(m[1]) : fallback;
}

/** Agent self-description and status endpoints (spec §11.5, §11.6). */
export function selfRoutes(ctx: DevAgentContext): Route[] {
  const { cfg } = ctx;
  return [
    {
      path: "/v1/agent/self",
      methods: ["GET"],
      handler: (req) => {
        req.acl().require("agent", "read", cfg.nodeName);
        return { json: agentSelf(ctx) };
      },
    },
    { path: "/v1/status/leader", methods: ["GET"], handler: () => ({ json: SERVER_RPC }) },
    { path: "/v1/status/peers", methods: ["GET"], handler: () => ({ json: [SERVER_RPC] }) },
  ];
}

function agentSelf(ctx: DevAgentContext): Record<string, unknown> {
  const { cfg } = ctx;
  const aclState = cfg.aclsEnabled ? "enabled" : "disabled";
  const tlsBlock = (verifyIncoming: boolean) => ({
    CAFile: "",
    CAPath: "",
    CertFile: "",
    KeyFile: "hidden",
    TLSMinVersion: "TLSv1_2",
    CipherSuites: [],
    VerifyIncoming: verifyIncoming,
    VerifyOutgoing: false,
    VerifyServerHostname: false,
    UseAutoCert: false,
  });
  return {
    Config: {
      Datacenter: cfg.datacenter,
      PrimaryDatacenter: cfg.datacenter,
      NodeName: cfg.nodeName,
      NodeID: cfg.nodeId,
      Revision: REVISION,
      Server: true,
      Version: VERSION,
      BuildDate: BUILD_DATE,
      BindAddr: cfg.nodeAddress,
    },
    // spec §11.5: every string field named *key*, *token* or *secret* reads "hidden", set or not
    DebugConfig: {
      ACLsEnabled: cfg.aclsEnabled,
      ACLResolverSettings: {
        ACLsEnabled: cfg.aclsEnabled,
        ACLDefaultPolicy: cfg.aclDefaultPolicy,
        ACLDownPolicy: "extend-cache",
        ACLPolicyTTL: "30s",
        ACLRoleTTL: "30s",
        ACLTokenTTL: "30s",
        Datacenter: cfg.datacenter,
        EnterpriseMeta: {},
        NodeName: cfg.nodeName,
      },
      ACLInitialManagementToken: "hidden",
      ACLTokens: {
        ACLAgentRecoveryToken: "hidden",
        ACLAgentToken: "hidden",
        ACLConfigFileRegistrationToken: "hidden",
        ACLDNSToken: "hidden",
        ACLDefaultToken: "hidden",
        ACLReplicationToken: "hidden",
        DataDir: "",
        EnablePersistence: false,
        EnterpriseConfig: {},
      },
      ACLEnableKeyListPolicy: false,
      AdvertiseAddrLAN: cfg.nodeAddress,
      BindAddr: cfg.nodeAddress,
      Bootstrap: false,
      BootstrapExpect: 0,
      ClientAddrs: ["127.0.0.1"],
      ConnectCAConfig: {},
      ConnectCAProvider: "consul",
      ConnectEnabled: true,
      ConnectMeshGatewayWANFederationEnabled: false,
      ConnectSidecarMaxPort: cfg.sidecarMaxPort,
      ConnectSidecarMinPort: cfg.sidecarMinPort,
      ConnectTestCALeafRootChangeSpread: "0s",
      DNSPort: 8600,
      DataDir: "",
      Datacenter: cfg.datacenter,
      DevMode: true,
      DisableRemoteExec: true,
      EnableDebug: false,
      EnableLocalScriptChecks: false,
      EnableRemoteScriptChecks: false,
      EncryptKey: "hidden",
      EncryptVerifyIncoming: true,
      EncryptVerifyOutgoing: true,
      ExposeMaxPort: 21755,
      ExposeMinPort: 21500,
      GRPCAddrs: [],
      GRPCPort: -1,
      GRPCTLSAddrs: [],
      GRPCTLSPort: -1,
      HTTPAddrs: [...cfg.httpAddrs],
      HTTPPort: portOf(cfg.httpAddrs, 8500),
      HTTPSAddrs: [...cfg.httpsAddrs],
      HTTPSPort: cfg.httpsAddrs.length ? portOf(cfg.httpsAddrs, -1) : -1,
      NodeID: cfg.nodeId,
      NodeName: cfg.nodeName,
      PrimaryDatacenter: cfg.datacenter,
      Revision: REVISION,
      SerfPortLAN: 8301,
      SerfPortWAN: 8302,
      ServerMode: true,
      ServerPort: 8300,
      TLS: {
        AutoTLS: false,
        Domain: "consul",
        EnableAgentTLSForChecks: false,
        GRPC: tlsBlock(false),
        HTTPS: tlsBlock(cfg.httpsVerifyIncoming),
        InternalRPC: tlsBlock(false),
        NodeName: cfg.nodeName,
        ServerMode: true,
        ServerName: "",
      },
      Version: VERSION,
      VersionMetadata: "",
      VersionPrerelease: "",
    },
    Coord: null,
    Member: renderMember(ctx),
    // Stats: a map of maps of strings (spec §11.5)
    Stats: {
      agent: { check_monitors: "0", check_ttls: "0", checks: "0", services: "0" },
      build: { prerelease: "", revision: REVISION.slice(0, 8), version: VERSION, version_metadata: "" },
      consul: {
        acl: aclState,
        bootstrap: "true",
        known_datacenters: "1",
        leader: "true",
        leader_addr: SERVER_RPC,
        server: "true",
      },
      raft: { applied_index: String(ctx.feed.current()), commit_index: String(ctx.feed.current()), state: "Leader" },
      runtime: { arch: arch(), os: platform(), version: process.version, max_procs: "1", goroutines: "1", cpu_count: "1" },
      serf_lan: { encrypted: "false", members: "1", failed: "0", left: "0", health_score: "0" },
      serf_wan: { encrypted: "false", members: "1", failed: "0", left: "0", health_score: "0" },
    },
    Meta: { "consul-network-segment": "", "consul-version": VERSION },
  };
}

/**
 * The agent's serf member (`api.AgentMember`), as /v1/agent/self and /v1/agent/members show it.
 * With `wan`, the WAN pool's view: name `<node>.<dc>` on the serf WAN port (Consul names WAN members so).
 */
export function renderMember(ctx: DevAgentContext, opts: { wan?: boolean } = {}): Record<string, unknown> {
  const { cfg } = ctx;
  return {
    Name: opts.wan ? `${cfg.nodeName}.${cfg.datacenter}` : cfg.nodeName,
    Addr: cfg.nodeAddress,
    Port: opts.wan ? 8302 : 8301,
    Tags: {
      acls: cfg.aclsEnabled ? "1" : "0",
      build: `${VERSION}:${REVISION.slice(0, 8)}`,
      dc: cfg.datacenter,
      ft_fs: "1",
      ft_si: "1",
      id: cfg.nodeId,
      port: "8300",
      raft_vsn: "3",
      role: "consul",
      segment: "",
      vsn: "2",
      vsn_max: "3",
      vsn_min: "2",
      wan_join_port: "8302",
    },
    Status: 1,
    ProtocolMin: 1,
    ProtocolMax: 5,
    ProtocolCur: 2,
    DelegateMin: 2,
    DelegateMax: 5,
    DelegateCur: 4,
  };
}
