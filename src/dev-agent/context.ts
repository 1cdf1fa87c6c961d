import type { Logger } from "pino";
import type { ChangeFeed } from "./change-feed.js";

/** The dev agent's resolved configuration (what a real agent reads from its config files). */
export interface DevAgentConfig {
  datacenter: string;
  nodeName: string;
  nodeId: string;
  /** The node's address as the catalog shows it (Node.Address). */
  nodeAddress: string;
  aclsEnabled: boolean;
  aclDefaultPolicy: "allow" | "deny";
  /** Secret of the initial management token (spec §11.1); generated when not given. */
  initialManagementToken: string;
  leafCertTtlMs: number;
  sidecarMinPort: number;
  sidecarMaxPort: number;
  /** Listener addresses as `tcp://ip:port` / `unix:///path`, for /v1/agent/self (spec §11.5). Filled after binding. */
  httpAddrs: string[];
  httpsAddrs: string[];
  httpsVerifyIncoming: boolean;
}

/** Shared by every dev-agent module: config, the index feed, the logger and the stop signal. */
export interface DevAgentContext {
  cfg: DevAgentConfig;
  feed: ChangeFeed;
  log: Logger;
  /** Aborts when the agent stops: timers and check loops end. */
  stopSignal: AbortSignal;
}
