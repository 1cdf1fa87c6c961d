// The public listener's HTTP/1.1 mode (protocol "http"): an authorized TLS socket's requests are
// found by llhttp and forwarded to the app as they came (net/http-stream.ts), each checked against
// the source's L7 intention when its head is complete. A denied request gets 403 and its body is
// dropped; the connection stays usable. The app is dialled at the first allowed request (a source
// whose requests are all denied never touches it), and again after it closed an idle connection.
// The caller (inbound-connection.ts) has done the TLS handshake, the identity check and the
// layer-4 authorization; a layer-4 deny never reaches here.
import type { TLSSocket } from "node:tls";
import type { SpiffeUri } from "../agent/index.js";
import type { Authorizer, L7Source } from "../authz/index.js";
import { permissionVerdict } from "../authz/index.js";
import { createHttpStreamSet, streamHttp, type HttpHead, type PipeResult } from "../net/index.js";
import { recordHttpExchange, type HttpMetrics, type Logger } from "../ops/index.js";
import { dialApp, type AppAddress } from "./dial-app.js";

/** What one HTTP connection's requests share: read once at accept, like every inbound setting. */
export interface HttpConn {
  readonly source: L7Source & { uri: SpiffeUri };
  readonly app: AppAddress;
  readonly localConnectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveMs: number;
  readonly signal: AbortSignal;
}

export interface HttpInboundDeps {
  readonly authz: Authorizer;
  readonly log: Logger;
  readonly metrics: HttpMetrics;
  /** One info line per request. */
  readonly accessLog: boolean;
  readonly listener: string;
}

export interface HttpInbound {
  /**
   * Serves `tls` as HTTP/1.1 until it closes; resolves with how it ended and the bytes each way.
   * Undefined when this Node's HTTP parser is not usable: the caller proxies at layer 4.
   */
  serve(tls: TLSSocket, conn: HttpConn): Promise<PipeResult> | undefined;
  /**
   * The listener drains: idle connections are closed now, busy ones after their response (which says
   * `Connection: close`), so a drain does not wait for clients' keep-alive connections to time out.
   */
  drain(): void;
}

export function createHttpInbound(deps: HttpInboundDeps): HttpInbound {
  const streams = createHttpStreamSet();

  /** The L7 verdict for one request of `c`: its intention's permissions, first match wins (spec §12.3). */
  function allowed(c: HttpConn, head: HttpHead): boolean {
    const i = deps.authz.intentionFor(c.source);
    if (i === undefined || i.permissions.length === 0) {
      // Layer 4 decides: the cached verdict (an allow → deny flip revokes the connection anyway).
      return i === undefined ? deps.authz.peek(c.source.uri) === "allow" : i.action === "allow";
    }
    const q = head.url.indexOf("?");
    const path = q === -1 ? head.url : head.url.slice(0, q);
    // No permission matched: the default policy decides (spec §12.3), "deny" while it is not known.
    return (permissionVerdict(i.permissions, { method: head.method, path, headers: headerRecord(head.headers) }) ?? deps.authz.l7Default()) === "allow";
  }

  return {
    serve(tls, c) {
      const stream = streamHttp(tls, {
        dial: async () => {
          const app = await dialApp({ app: c.app, timeoutMs: c.localConnectTimeoutMs, signal: c.signal, abortReason: () => "shutdown" as const });
          return app.ok ? app.value : undefined;
        },
        allow: (head) => allowed(c, head),
        onDenied: () => deps.metrics.denied(),
        onExchange: recordHttpExchange({ metrics: deps.metrics, log: deps.log, accessLog: deps.accessLog, fields: { listener: deps.listener, source: c.source.uri } }),
        signal: c.signal,
        idleTimeoutMs: c.idleTimeoutMs,
        keepAliveMs: c.keepAliveMs,
      });
      return stream === undefined ? undefined : streams.track(stream);
    },
    drain: () => streams.drain(),
  };
}

/**
 * A request's fields by lower-case name, for the header rules: a field sent more than once is a
 * list, which the matcher joins with "," as Envoy does.
 */
function headerRecord(flat: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i]!.toLowerCase();
    const v = flat[i + 1]!;
    const had = out[k];
    out[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  }
  return out;
}
