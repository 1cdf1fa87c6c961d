// The front door of src/upstream: outbound listeners, one per Proxy.Upstreams[] entry (STYLE §1).
export { createUpstreams, UpstreamBindError } from "./upstreams.js";
export type { UpstreamsManager, UpstreamsDeps, UpstreamStatus, UpstreamInstanceStatus } from "./upstreams.js";
export { parseUpstreamFlag } from "./upstream-flag.js";
export { DEFAULT_CONNECT_TIMEOUT_MS, parseConnectTimeoutMs } from "./upstream-config.js";
