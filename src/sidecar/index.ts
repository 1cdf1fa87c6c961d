// The front door of src/sidecar: one sidecar process, composed (STYLE §1).
export { runSidecar, AGENT_UNREACHABLE_GRACE_MS } from "./sidecar.js";
export type { Sidecar } from "./sidecar.js";
export type { SidecarOptions, SidecarDeps, ProxySource } from "./options.js";
export { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_LOCAL_CONNECT_TIMEOUT_MS } from "./options.js";
export { pickRegistrationPort, registrationId, HEARTBEAT_INTERVAL_MS } from "./registration.js";
export type { Registration } from "./registration.js";
