import type { TLSSocket } from "node:tls";
import type { SpiffeUri } from "../agent/index.js";
import type { PeerRejectReason, Result } from "../net/index.js";
import { colonHexSerial, uriSans } from "./cert-fields.js";
import { parseSpiffeId, type ServiceSpiffeId } from "./spiffe-id.js";

/** A verified peer: who it is, and which certificate said so (for authorize and for revocation). */
export interface PeerIdentity {
  /** The URI SAN as written in the certificate. */
  uri: SpiffeUri;
  id: ServiceSpiffeId;
  /** Lowercase colon-hex, as `POST /v1/agent/connect/authorize` takes it. */
  serial: string;
  /** SHA-256 fingerprint, uppercase colon-hex as node:crypto prints it. */
  fingerprint: string;
}

export interface PeerIdentifier {
  /**
   * The identity of the peer of a handshaken TLS socket whose server verified against the roots
   * (`requestCert: true`; `rejectUnauthorized` may be false: verification errors map to reasons here).
   * Synchronous, no I/O; never throws.
   */
  identify(sock: TLSSocket, trustDomain: string): Result<PeerIdentity, PeerRejectReason>;
  /** Number of cached certificates. */
  size(): number;
}

const EXPIRED_CODES: ReadonlySet<string> = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);
const DEFAULT_MAX_ENTRIES = 1024;

// What one certificate says, independent of the trust domain asked about: parsed once per certificate.
// `peer` is undefined when the identity is not a service's.
type Parsed = { trustDomain: string; peer: PeerIdentity | undefined } | "no_spiffe_id";

/**
 * Makes a peer identifier with a bounded LRU (default 1024 certificates) of parsed identities keyed
 * by certificate fingerprint, so no certificate is parsed twice while it stays in use.
 */
export function createPeerIdentifier(opts: { maxEntries?: number } = {}): PeerIdentifier {
  const maxEntries = Math.max(1, opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
  const cache = new Map<string, Parsed>();

  return {
    identify(sock, trustDomain) {
      // The X509Certificate handle, not getPeerCertificate(): that one builds a JS object of every
      // field with three digests (SHA-1/256/512) per call, about a tenth of a new connection's CPU
      // in the public listener. Here a hit costs one SHA-256 (the cache key); fields are read on a miss.
      const cert = sock.getPeerX509Certificate();
      if (cert === undefined) return { ok: false, reason: "no_client_cert" };
      if (!sock.authorized) {
        const code = String(sock.authorizationError ?? "");
        return { ok: false, reason: EXPIRED_CODES.has(code) ? "cert_expired" : "bad_chain" };
      }
      const fingerprint = cert.fingerprint256;
      let parsed = cache.get(fingerprint);
      if (parsed === undefined) {
        parsed = parsePeer(cert.subjectAltName, cert.serialNumber, fingerprint);
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      } else {
        cache.delete(fingerprint); // move to the most recently used end
      }
      cache.set(fingerprint, parsed);
      if (parsed === "no_spiffe_id") return { ok: false, reason: parsed };
      const td = parsed.trustDomain; // already lowercase
      if (td !== trustDomain && td !== trustDomain.toLowerCase()) return { ok: false, reason: "wrong_trust_domain" };
      if (parsed.peer === undefined) return { ok: false, reason: "not_a_service" };
      return { ok: true, value: parsed.peer };
    },
    size: () => cache.size,
  };
}

function parsePeer(subjectAltName: string | undefined, serialNumber: string, fingerprint: string): Parsed {
  const uris = uriSans(subjectAltName);
  if (uris.length !== 1) return "no_spiffe_id"; // spec §8.2: exactly one URI
  const uri = uris[0]!;
  const id = parseSpiffeId(uri);
  if (!id.ok) return "no_spiffe_id";
  const trustDomain = id.value.trustDomain;
  if (id.value.kind !== "service") return { trustDomain, peer: undefined };
  return { trustDomain, peer: { uri: uri as SpiffeUri, id: id.value, serial: colonHexSerial(serialNumber), fingerprint } };
}
