// The client side of mTLS towards upstream instances: one secure context per material change, TLS
// session reuse per instance, the dial itself, and the check of the server's SPIFFE identity.
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import type { CertStore, TlsMaterial } from "../certs/index.js";
import { parseSpiffeId, uriSans } from "../certs/index.js";
import { TLS_GROUPS, type DialFailure } from "../net/index.js";
import type { Logger } from "../ops/index.js";
import type { Instance } from "./instance-set.js";

/** The client TLS configuration built from one TlsMaterial. */
export interface ClientTlsContext {
  /** Increases with each material change; TLS sessions from another generation are not reused. */
  readonly generation: number;
  readonly secureContext: SecureContext;
  /** Lowercase; the server must present an identity in it (stricter than Consul, spec §9.5). */
  readonly trustDomain: string;
}

export interface ClientTls {
  /** The context for the current material, rebuilt only when the material changed; undefined before certs are ready. */
  current(): ClientTlsContext | undefined;
}

/** Builds client contexts lazily from `certs`: once per material change, never per connection. */
export function createClientTls(certs: CertStore, log: Logger): ClientTls {
  let material: TlsMaterial | undefined;
  let ctx: ClientTlsContext | undefined;
  let generation = 0;
  return {
    current() {
      const m = certs.current();
      if (m === undefined) return ctx;
      if (m === material) return ctx;
      material = m;
      try {
        // No ALPN (spec §9.4/§9.8: advertising h2 broke HTTP/2 apps behind an L4 proxy); TLS 1.2 at least.
        const secureContext = createSecureContext({ key: m.key, cert: m.certChain, ca: m.ca, minVersion: "TLSv1.2", ecdhCurve: TLS_GROUPS });
        ctx = { generation: ++generation, secureContext, trustDomain: m.trustDomain.toLowerCase() };
      } catch (err) {
        // checkMaterial vetted it, so this is unexpected; keep the previous context (STYLE §8).
        log.error({ err: { message: (err as Error).message }, leafSerial: m.leafSerial }, "could not build the upstream TLS context; keeping the previous one");
      }
      return ctx;
    },
  };
}

export interface DialOptions {
  /** This attempt's time budget (TCP connect + handshake). */
  timeoutMs: number;
  /** Aborts the attempt (client gone, shutdown). */
  signal: AbortSignal;
  /** Called with the handshake's duration in seconds (TCP connected → secure). */
  onHandshake: (seconds: number) => void;
}

/** A dial's outcome; `detail` is for the log line (an error code, the server URI we got), never key material. */
export type DialOutcome = { ok: true; value: TLSSocket } | { ok: false; reason: DialFailure; detail: string };

/**
 * Dials one instance with mTLS: our leaf and chain, every root trusted, OpenSSL verifying the
 * server's chain (rejectUnauthorized), SNI `<svc>.<ns>.<dc>.internal.<td>` (spec §8.5), no ALPN,
 * the last session of this instance offered for resumption. Then checks the server's SPIFFE ID.
 * Resolves with the handshaken socket (paused, allowHalfOpen) or why it failed; never rejects.
 * An aborted signal resolves with `connect_timeout` and the abort reason as detail.
 */
export function dialInstance(inst: Instance, tls: ClientTlsContext, opts: DialOptions): Promise<DialOutcome> {
  return new Promise((resolve) => {
    inst.dialAttempts.inc();
    const session = inst.sessionGeneration === tls.generation ? inst.session : undefined;
    const common = {
      secureContext: tls.secureContext,
      servername: `${inst.service}.${inst.namespace}.${inst.datacenter}.internal.${tls.trustDomain}`,
      rejectUnauthorized: true,
      checkServerIdentity: skipHostnameCheck,
      allowHalfOpen: true,
      session,
    };
    const sock =
      inst.socketPath !== ""
        ? tlsConnect({ ...common, path: inst.socketPath })
        : tlsConnect({ ...common, host: inst.host, port: inst.port });
    sock.on("error", ignore); // permanent: a late error after we settled must not crash the process
    let tcpAtMs = 0;
    let settled = false;

    const finish = (r: DialOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", onAbort);
      sock.off("connect", onConnect).off("secureConnect", onSecure).off("error", onError).off("close", onClose);
      if (!r.ok) {
        sock.off("session", onSession);
        sock.destroy();
      }
      resolve(r);
    };
    const onConnect = (): void => {
      tcpAtMs = performance.now();
    };
    // A session is kept only from a handshake whose server we verified (TLS 1.2 announces it
    // before 'secureConnect', TLS 1.3 after): resuming it later proves the same server.
    let verified = false;
    let pendingSession: Buffer | undefined;
    const onSession = (s: Buffer): void => {
      if (!verified) return void (pendingSession = s);
      inst.session = s; // TLS 1.3 tickets arrive after the handshake; keep the latest
      inst.sessionGeneration = tls.generation;
    };
    const onSecure = (): void => {
      if (tcpAtMs !== 0) opts.onHandshake((performance.now() - tcpAtMs) / 1000);
      if (!sock.authorized) return finish({ ok: false, reason: "bad_chain", detail: String(sock.authorizationError) });
      // Checked here, not in checkServerIdentity, which Node skips for resumed sessions. A resumed
      // session carries no peer certificate in Node; it was verified when the session was made,
      // and it came from this instance's own cache (same address, identity and material).
      if (!(session !== undefined && sock.isSessionReused())) {
        const got = uriSans(sock.getPeerX509Certificate()?.subjectAltName)[0]; // Consul reads URIs[0] (spec §9.5)
        if (!identityMatches(got, inst, tls.trustDomain)) {
          inst.session = undefined;
          return finish({ ok: false, reason: "wrong_server_identity", detail: `got ${got ?? "no URI SAN"}` });
        }
      }
      verified = true;
      if (pendingSession !== undefined) onSession(pendingSession);
      sock.pause();
      finish({ ok: true, value: sock });
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      finish({ ok: false, reason: classify(err, tcpAtMs !== 0), detail: err.code ?? err.message });
    };
    const onClose = (): void => {
      finish({ ok: false, reason: tcpAtMs !== 0 ? "tls_error" : "connect_failed", detail: "closed during the handshake" });
    };
    const onAbort = (): void => {
      finish({ ok: false, reason: "connect_timeout", detail: String(opts.signal.reason) });
    };
    const timer = setTimeout(() => finish({ ok: false, reason: "connect_timeout", detail: `${opts.timeoutMs} ms` }), opts.timeoutMs);

    sock.on("connect", onConnect).on("secureConnect", onSecure).on("error", onError).on("close", onClose).on("session", onSession);
    if (opts.signal.aborted) return onAbort();
    opts.signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Node's hostname check does not apply: identity is the URI SAN, checked after the handshake. */
function skipHostnameCheck(): undefined {
  return undefined;
}

function ignore(): void {}

// OpenSSL verification results that mean "this chain does not lead to one of our roots".
const CHAIN_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE", "CERT_UNTRUSTED", "CERT_REJECTED", "INVALID_CA", "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED", "CERT_CHAIN_TOO_LONG", "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY", "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function classify(err: NodeJS.ErrnoException, tcpConnected: boolean): DialFailure {
  const code = err.code ?? "";
  if (CHAIN_CODES.has(code)) return "bad_chain";
  if (!tcpConnected) return code === "ETIMEDOUT" ? "connect_timeout" : "connect_failed";
  return "tls_error";
}

/**
 * True when `uri` is the service we expect: same trust domain (Consul does not compare it; we do),
 * namespace, datacenter and service, case-insensitively, in the default partition.
 */
export function identityMatches(uri: string | undefined, inst: Instance, trustDomain: string): boolean {
  if (uri === undefined) return false;
  const id = parseSpiffeId(uri);
  if (!id.ok || id.value.kind !== "service") return false;
  const v = id.value;
  return (
    v.trustDomain === trustDomain &&
    v.partition.toLowerCase() === "default" &&
    v.namespace.toLowerCase() === inst.namespace &&
    v.datacenter.toLowerCase() === inst.datacenter &&
    v.service.toLowerCase() === inst.service
  );
}
