// The front door of src/agent: the only folder that knows Consul URLs and JSON (STYLE §1).
export { resolveAgentConfig, parseAgentAddress, readTokenFile } from "./config.js";
export type { AgentAddress, AgentConfig, AgentFlags, AgentTlsConfig } from "./config.js";
export { createAgentClient } from "./client.js";
export type { AgentClient, AgentClientDeps, AgentClientOptions, AgentRequest, AgentResponse } from "./client.js";
export { AgentError } from "./errors.js";
export type { AgentErrorCode } from "./errors.js";
export { watch, DEFAULT_WATCH_WAIT_MS } from "./watch.js";
export type { WatchOptions, WatchSpec } from "./watch.js";
export {
  caRootsWatch,
  leafWatch,
  agentServiceWatch,
  healthConnectWatch,
  intentionMatchWatch,
  authorize,
  getAgentService,
  listAgentServices,
  findSidecarFor,
  registerService,
  deregisterService,
  updateTtlCheck,
  serviceMaintenanceReason,
  setServiceMaintenance,
  executePreparedQuery,
  getCaRoots,
  getLeafCert,
  getIntentionMatch,
  checkDefaultIntention,
  checkIntention,
  getTokenSelf,
  getAgentSelf,
  getAclPolicy,
} from "./endpoints.js";
export {
  parseCaRoots,
  parseLeafCert,
  parseAgentService,
  parseAgentServices,
  parseHealthEntries,
  parseIntentionMatch,
  parseAuthorizeResult,
  parsePreparedQueryNodes,
  parseAgentSelf,
  isLocalListener,
} from "./parse.js";
export {
  proxySettingsFromService,
  readProxyRegistration,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_LOCAL_CONNECT_TIMEOUT_MS,
  protocolOf,
} from "./proxy-settings.js";
export type { AppAddress, ListenerProtocol, ProxyIdentity, ProxySettings } from "./proxy-settings.js";
export type * from "./types.js";
