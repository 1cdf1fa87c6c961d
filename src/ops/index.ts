export { createMetrics } from "./metrics.js";
export type { Metrics } from "./metrics.js";
export { createLogger } from "./logger.js";
export type { Logger, LoggerOptions } from "./logger.js";
export { startAdminServer, formatHostPort } from "./admin-server.js";
export type { AdminServer, AdminServerOptions, AdminServerDeps } from "./admin-server.js";
export { describeReadiness } from "./status.js";
export type { Readiness, ReadinessWait, SidecarStatus } from "./status.js";
export { applyProxyRuntimeFlags, missingRuntimeFlags, PROXY_NODE_FLAGS, RUNTIME_FLAGS_ENV } from "./runtime-flags.js";
