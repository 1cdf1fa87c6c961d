import { constants } from "node:crypto";
import type { TlsOptions } from "node:tls";
import type { TlsMaterial } from "../certs/index.js";
import { TLS_GROUPS } from "../net/index.js";

// spec 9.4: TLS 1.2 suites are ECDHE with AES-GCM or ChaCha20-Poly1305 only (AEAD, forward secret).
// TLS 1.3 suites are not listed, so OpenSSL's defaults (all AEAD) stay in force.
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

// TLS 1.3: OpenSSL's default set (all AEAD), reordered so that the server (honorCipherOrder) picks
// AES-128-GCM with SHA-256: the key schedule's HMACs run on SHA-256 (SHA-NI on x86) instead of
// SHA-384, and AES-128 does 10 rounds per block instead of 14. Same set, same security floor
// (TLS_AES_128_GCM_SHA256 is TLS 1.3's mandatory suite).
export const TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"].join(":");

// How long a client may resume a session (TLS 1.3 ticket, TLS 1.2 ticket) without a full handshake.
export const SESSION_TIMEOUT_S = 300;

/**
 * The server TLS options for one set of material: the current leaf and chain, the current roots as
 * client CAs, TLS ≥ 1.2 with AEAD suites, no ALPN (spec 9.4, issue #4466). `ticketKeys` (48 bytes)
 * is shared by every context of a listener so that tickets survive a leaf rotation.
 * Client certificates are requested but not enforced by OpenSSL: the listener checks them itself so
 * that it can name the precise reason (RejectReason) in its log line and metric.
 */
export function serverTlsOptions(m: TlsMaterial, ticketKeys: Buffer): TlsOptions {
  return {
    key: m.key,
    cert: m.certChain,
    ca: m.ca,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: "TLSv1.2",
    // Node's default lets a TLS 1.2 client renegotiate (3 times per 10 min): a CPU cost the client
    // chooses, and a second handshake the identity check never sees. Refuse it outright.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    ciphers: `${TLS13_SUITES}:${TLS12_CIPHERS}`,
    ecdhCurve: TLS_GROUPS,
    honorCipherOrder: true,
    sessionTimeout: SESSION_TIMEOUT_S,
    ticketKeys,
  };
}
