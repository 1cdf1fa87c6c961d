// The one exception type that crosses the agent boundary (STYLE §5). Callers branch on `code`;
// messages name the endpoint and Consul's own text, never the token.

/** Stable failure classes of an agent call. */
export type AgentErrorCode =
  | "unreachable" // no HTTP answer: refused, reset, TLS failure, timeout
  | "http_status" // an HTTP answer outside 2xx that none of the codes below covers
  | "bad_body" // the answer was not the JSON shape we expect, or too large
  | "acl_denied" // 403 "Permission denied…"
  | "acl_not_found" // 403 "ACL not found" / "token does not exist"
  | "not_found" // 404
  | "aborted"; // the caller's signal fired, or the client was closed

/** A failed agent call; `status` is the HTTP status when the agent answered. */
export class AgentError extends Error {
  override name = "AgentError";
  readonly code: AgentErrorCode;
  readonly status: number | undefined;
  constructor(code: AgentErrorCode, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = opts.status;
  }
}

/** Longest piece of an error body that goes into a message. */
const MAX_ERROR_TEXT_CHARS = 512;

/**
 * Maps a non-2xx answer to an AgentError (spec §1.7). `endpoint` is "METHOD /path" without any
 * query string; `text` is Consul's plain-text body. Returns the error, never throws.
 */
export function errorFromStatus(endpoint: string, status: number, text: string): AgentError {
  const reason = text.trim().slice(0, MAX_ERROR_TEXT_CHARS);
  const message = `${endpoint}: ${status} ${reason || "(empty body)"}`;
  return new AgentError(codeForStatus(status, reason), message, { status });
}

function codeForStatus(status: number, text: string): AgentErrorCode {
  if (status === 404) return "not_found";
  if (status === 403) {
    // "token does not exist: ACL not found" (current), "ACL not found" (≤1.14): spec §1.7, §11 item 26.
    if (text.includes("ACL not found") || text.includes("does not exist")) return "acl_not_found";
    if (text.includes("Permission denied")) return "acl_denied";
  }
  return "http_status";
}

/** Replaces every occurrence of `secret` in `text`: Consul error bodies must not leak a token. */
export function redact(text: string, secret: string): string {
  return secret.length > 0 ? text.split(secret).join("<redacted>") : text;
}
