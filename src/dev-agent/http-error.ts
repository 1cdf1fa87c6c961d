/** An error with the HTTP status and plain-text body Consul would send (spec §1.7). */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/** 400 with Consul's decode-failure prefix (spec §1.6). */
export function decodeFailed(detail: string, prefix = "Request decode failed"): HttpError {
  return new HttpError(400, `${prefix}: ${detail}`);
}
