export { ok, fail, assertNever } from "./result.js";
export type { Result } from "./result.js";
export { ConfigError } from "./config-error.js";
export { tryParseGoDuration, parseGoDuration, formatGoDuration } from "./duration.js";
export { formatAddress, formatHost, formatHostPort, isLoopbackHost, parseHostPort, unbracketHost } from "./address.js";
export { delay, settlesWithin } from "./wait.js";
export { backoffDelayMs } from "./backoff.js";
export { errorCloseReason, isPipeCloseReason, isRefusal } from "./close-reason.js";
export type {
  CloseReason,
  DialFailure,
  InboundCloseReason,
  InboundRejectReason,
  InternalError,
  PeerRejectReason,
  PipeCloseReason,
  RejectReason,
  UpstreamCloseReason,
  UpstreamRejectReason,
} from "./close-reason.js";
export { bytesPiped, cut, pipe } from "./pipe.js";
export { exposedGc, linearRegExp, rawSocketOf, selfTestNodeInternals } from "./node-internals.js";
export type { FullGc } from "./node-internals.js";
export { TLS_GROUPS, checkTlsGroups } from "./tls-groups.js";
export type { PipeOptions, PipeResult } from "./pipe.js";
export { createHttpStreamSet, streamHttp } from "./http-stream.js";
export type { HttpExchange, HttpHead, HttpStream, HttpStreamOptions, HttpStreamSet } from "./http-stream.js";
export { canBind, ephemeralLow, pickFreePort } from "./free-port.js";
