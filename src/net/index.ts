export { ok, fail, assertNever } from "./result.js";
export type { Result } from "./result.js";
export { ConfigError } from "./config-error.js";
export { tryParseGoDuration, parseGoDuration, formatGoDuration } from "./duration.js";
export { parseHostPort, isLoopbackHost } from "./address.js";
export { connectDirect, cut, pipe } from "./pipe.js";
export { TLS_GROUPS, checkTlsGroups } from "./tls-groups.js";
export type { PipeCloseReason, PipeOptions, PipeResult } from "./pipe.js";
export { canBind, pickFreePort, findFreePort } from "./free-port.js";
