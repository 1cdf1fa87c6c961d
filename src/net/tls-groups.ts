import { createSecureContext } from "node:tls";
import { ConfigError } from "./config-error.js";

/** The default key-exchange groups of the mesh hop; see TLS_GROUPS. */
export const DEFAULT_TLS_GROUPS = "X25519:P-256:X25519MLKEM768";

/**
 * Key-exchange groups for both sides of the mesh hop (the public listener and upstream dials), in
 * preference order. OpenSSL 3.5 (Node 24) puts the hybrid X25519MLKEM768 first and its clients send
 * key shares for both X25519MLKEM768 and X25519, so every handshake, resumed ones included (TLS 1.3
 * resumption is PSK with (EC)DHE), paid an ML-KEM key generation, encapsulation and decapsulation on
 * top of the X25519 exchange: about a third of the CPU of a new connection in the bench.
 * X25519 first (as Envoy and HAProxy negotiate) keeps ephemeral ECDHE, so forward secrecy is
 * unchanged; P-256 for peers without X25519; the hybrid stays accepted last for interop, not preferred.
 * Trade-off: no post-quantum protection of recorded traffic by default. An operator who wants it sets
 * CONNECT_SIDECAR_TLS_GROUPS=X25519MLKEM768:X25519:P-256 (read once at start, like any process setting).
 */
export const TLS_GROUPS = process.env.CONNECT_SIDECAR_TLS_GROUPS?.trim() || DEFAULT_TLS_GROUPS;

/** Throws ConfigError naming CONNECT_SIDECAR_TLS_GROUPS when OpenSSL does not accept the group list. */
export function checkTlsGroups(): void {
  try {
    // ca: [] because without a CA list Node gives the context its ~150 bundled root certificates; this
    // context only tries the group list. (Node parses that bundle once per process all the same, 4–13 ms
    // and ~1.5 MB, at the first context given any CA: SecureContext::AddCACert compares the context's
    // store with the bundled one, which builds it. No public API avoids that.)
    createSecureContext({ ecdhCurve: TLS_GROUPS, ca: [] });
  } catch (err) {
    throw new ConfigError(
      "CONNECT_SIDECAR_TLS_GROUPS",
      process.env.CONNECT_SIDECAR_TLS_GROUPS?.trim()
        ? `OpenSSL refuses the group list "${TLS_GROUPS}" (${(err as Error).message}); use names such as X25519:P-256:X25519MLKEM768, or unset it for that default`
        : `this Node's OpenSSL ${process.versions.openssl} refuses the default group list "${TLS_GROUPS}" (${(err as Error).message}); ` +
          `set CONNECT_SIDECAR_TLS_GROUPS=X25519:P-256, or run a Node built with OpenSSL 3.5 or later`,
    );
  }
}
