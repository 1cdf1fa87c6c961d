// The one vocabulary of why a proxied connection ended, for both directions: the `reason` label of
// connections_closed_total and connections_rejected_total, and the `reason` of every connection log
// line. Each list is `as const` so a reason used anywhere is checked by the compiler against it.

/** The inbound peer's certificate did not name a service of our trust domain (certs/peer-identity). */
export const PEER_REJECT_REASONS = [
  "no_client_cert",
  "cert_expired", // the chain verified except for a validity window
  "bad_chain", // any other verification failure (unknown CA, bad signature, wrong EKU, ...)
  "no_spiffe_id", // not exactly one URI SAN, or it is not a SPIFFE ID Consul would accept
  "wrong_trust_domain",
  "not_a_service",
] as const;

/** Why one dial of an upstream instance did not end in mTLS with the expected server. */
export const DIAL_FAILURES = [
  "connect_failed", // TCP connect refused, unreachable, reset before TLS
  "connect_timeout", // the attempt's share of connect_timeout_ms ran out
  "tls_error", // the handshake failed for another reason (alert, protocol, reset mid-handshake)
  "bad_chain", // the server's chain does not verify against our roots
  "wrong_server_identity", // verified, but not the service we expect (spec §7.1, §9.5)
] as const;

/** Why an inbound connection was refused before any byte reached the app. */
export const INBOUND_REJECT_REASONS = [
  ...PEER_REJECT_REASONS,
  "denied", // an intention denies the source
  "authz_unavailable", // no decision could be had (agent down, cache too stale)
  "handshake_timeout", // accept → allow verdict took longer than the handshake deadline
  "tls_error",
  "app_unreachable",
  "max_conns",
  "draining", // the listener was closing before the app was dialled
] as const;

/** Why an upstream connection was refused before any byte reached an instance. */
export const UPSTREAM_REJECT_REASONS = [
  "no_healthy_instances", // discovery knows no instance to try
  "certs_not_ready", // our leaf and roots did not arrive within connect_timeout_ms
  "discovery_unavailable", // the first discovery result did not arrive within connect_timeout_ms
  "client_gone", // the client went away while we were connecting
  "shutdown", // the listener was destroyed while we were connecting
  "max_conns", // the listener already had its limit of live connections (-max-conns, per listener)
  ...DIAL_FAILURES, // the last dial failure, when every candidate failed or the budget ran out
] as const;

/** How a piped (proxied) connection ended. */
export const PIPE_CLOSE_REASONS = [
  "done", // both directions ended in order (FIN both ways)
  "client_reset", // the client side reset (ECONNRESET / EPIPE) or was destroyed under us
  "server_reset",
  "client_error", // any other error on the client side
  "server_error",
  "client_timeout", // the client stopped answering: keepalive probes or retransmissions went unanswered (ETIMEDOUT)
  "server_timeout",
  "idle_timeout", // no byte either way for idleTimeoutMs
  "revoked", // the caller aborted with reason "revoked" (authorization withdrawn)
  "shutdown", // the caller aborted for any other reason
] as const;

export type PeerRejectReason = (typeof PEER_REJECT_REASONS)[number];
export type DialFailure = (typeof DIAL_FAILURES)[number];
export type InboundRejectReason = (typeof INBOUND_REJECT_REASONS)[number];
export type UpstreamRejectReason = (typeof UPSTREAM_REJECT_REASONS)[number];
export type PipeCloseReason = (typeof PIPE_CLOSE_REASONS)[number];
/** A bug in our own code ended the connection: never the peer's fault. */
export type InternalError = "internal_error";
/**
 * Why an inbound connection ended: refused, how its pipe ended, or "internal_error". A client that
 * leaves before its handshake ends without sending a byte (a TCP health check, say), or with a reset,
 * is "client_reset"; one that sent bytes and then a FIN sent no complete handshake: "tls_error".
 */
export type InboundCloseReason = InboundRejectReason | PipeCloseReason | InternalError;
export type UpstreamCloseReason = UpstreamRejectReason | PipeCloseReason | InternalError;
export type CloseReason = InboundCloseReason | UpstreamCloseReason;
export type RejectReason = InboundRejectReason | UpstreamRejectReason;

const PIPE_REASONS: ReadonlySet<string> = new Set<string>(PIPE_CLOSE_REASONS);
const REJECTS: ReadonlySet<string> = new Set<string>([...INBOUND_REJECT_REASONS, ...UPSTREAM_REJECT_REASONS]);

/**
 * How a socket error ends a connection on `side`: a reset (ECONNRESET, EPIPE, ECONNABORTED), a peer
 * that stopped answering (ETIMEDOUT: keepalive probes or retransmissions unanswered), or another error.
 */
export function errorCloseReason<S extends "client" | "server">(err: NodeJS.ErrnoException, side: S): `${S}_reset` | `${S}_timeout` | `${S}_error` {
  const code = err.code;
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ECONNABORTED") return `${side}_reset`;
  return code === "ETIMEDOUT" ? `${side}_timeout` : `${side}_error`;
}

export function isPipeCloseReason(r: unknown): r is PipeCloseReason {
  return typeof r === "string" && PIPE_REASONS.has(r);
}

/**
 * True when a connection that ended with `reason` counts as refused (connections_rejected_total): it
 * never reached its destination, and the reason is a refusal (not a client that left, a bug, ...).
 */
export function isRefusal(reason: CloseReason, reachedDestination: boolean): reason is RejectReason {
  return !reachedDestination && REJECTS.has(reason);
}
