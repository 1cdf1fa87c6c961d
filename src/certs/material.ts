import { createPrivateKey, X509Certificate } from "node:crypto";
import type { CaRoots, LeafCert, SpiffeUri } from "../agent/index.js";
import type { Result } from "../net/index.js";
import { colonHexSerial, uriSans } from "./cert-fields.js";
import { parseSpiffeId } from "./spiffe-id.js";

/** Everything a TLS server or client needs from one leaf + roots pair, checked and built once. */
export interface TlsMaterial {
  leaf: LeafCert;
  roots: CaRoots;
  /** Lowercase, from the roots endpoint; peers must present this trust domain. */
  trustDomain: string;
  /** Our own identity: the leaf's URI SAN as written in the certificate. */
  serviceUri: SpiffeUri;
  /** Private key PEM (never log it). */
  key: string;
  /** Leaf PEM then any intermediate PEMs: present the whole chain. */
  certChain: string;
  /** Every root PEM, active or not (spec §2 "Client use"). */
  ca: string[];
  leafNotAfter: Date;
  /** Lowercase colon-hex. */
  leafSerial: string;
  /** SHA-1 of each root, lowercase colon-hex: the same text as Consul's root ID. */
  rootFingerprints: string[];
}

export type MaterialRejectReason =
  | "expired" // the leaf, an intermediate or the anchoring root is past NotAfter
  | "not_yet_valid"
  | "key_mismatch" // the private key is unreadable or is not the leaf's
  | "bad_chain" // unreadable PEM, or no path from the leaf through CertPEM's intermediates to a root
  | "no_roots"
  | "no_trust_domain" // Connect is not bootstrapped yet (spec §2)
  | "wrong_trust_domain"; // the leaf's SPIFFE ID is not a service in the roots' trust domain

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
// Longest chain we follow from the leaf: leaf, up to three intermediates, a root.
const MAX_INTERMEDIATES = 3;

/**
 * Checks a leaf against the roots at `nowMs` (validity windows, key match, chain to one of the
 * roots, trust domain) and builds the TLS material once. A failure returns the first reason found.
 */
export function checkMaterial(leaf: LeafCert, roots: CaRoots, nowMs: number): Result<TlsMaterial, MaterialRejectReason> {
  const trust = checkRoots(roots);
  if (!trust.ok) return trust;
  const { anchors } = trust.value;

  const certPems = splitPem(leaf.certPem);
  const chain = parseAll(certPems);
  if (chain === undefined || chain.length === 0) return { ok: false, reason: "bad_chain" };
  const leafX509 = chain[0]!;

  const window = checkWindow(leafX509, nowMs);
  if (window !== undefined) return { ok: false, reason: window };

  const path = verifyChain(leafX509, chain.slice(1), anchors);
  if (!path.ok) return path;
  for (const cert of path.value) {
    const w = checkWindow(cert, nowMs);
    if (w !== undefined) return { ok: false, reason: w };
  }

  const uris = uriSans(leafX509.subjectAltName);
  const id = uris.length === 1 ? parseSpiffeId(uris[0]!) : undefined;
  if (id === undefined || !id.ok || id.value.kind !== "service" || id.value.trustDomain !== roots.trustDomain.toLowerCase()) {
    return { ok: false, reason: "wrong_trust_domain" };
  }

  let keyMatches: boolean;
  try {
    keyMatches = leafX509.checkPrivateKey(createPrivateKey(leaf.privateKeyPem));
  } catch {
    keyMatches = false; // unreadable key; the message could quote key material, so it is not kept
  }
  if (!keyMatches) return { ok: false, reason: "key_mismatch" };

  return {
    ok: true,
    value: {
      leaf,
      serviceUri: uris[0] as SpiffeUri,
      key: leaf.privateKeyPem,
      certChain: certPems.join("\n") + "\n",
      leafNotAfter: leafX509.validToDate,
      leafSerial: colonHexSerial(leafX509.serialNumber),
      ...trust.value.trust,
    },
  };
}

/** The fields of TlsMaterial that come from the roots alone. */
type Trust = Pick<TlsMaterial, "roots" | "trustDomain" | "ca" | "rootFingerprints">;

/** Roots that can anchor trust: at least one, readable, with a trust domain (spec §2). */
function checkRoots(roots: CaRoots): Result<{ anchors: X509Certificate[]; trust: Trust }, "no_roots" | "no_trust_domain" | "bad_chain"> {
  if (roots.roots.length === 0) return { ok: false, reason: "no_roots" };
  if (roots.trustDomain === "") return { ok: false, reason: "no_trust_domain" };
  const anchors = parseAll(roots.roots.map((r) => r.rootCertPem));
  if (anchors === undefined) return { ok: false, reason: "bad_chain" };
  const trust: Trust = {
    roots,
    trustDomain: roots.trustDomain.toLowerCase(),
    ca: roots.roots.map((r) => r.rootCertPem),
    rootFingerprints: anchors.map((a) => a.fingerprint.toLowerCase()),
  };
  return { ok: true, value: { anchors, trust } };
}

/**
 * `current` trusting `roots` instead, for a roots update that checkMaterial refused only because our
 * leaf (or the chain above it) is outside its validity window. Trust follows the roots; the leaf is
 * only what we present, and its replacement is on its way. Undefined when the roots are unusable or
 * name another trust domain (then the leaf is not ours to keep presenting under them).
 */
export function withRoots(current: TlsMaterial, roots: CaRoots): TlsMaterial | undefined {
  const trust = checkRoots(roots);
  if (!trust.ok || trust.value.trust.trustDomain !== current.trustDomain) return undefined;
  return { ...current, ...trust.value.trust };
}

/**
 * Finds a path from `leaf` through `intermediates` to one of `anchors`, checking each signature.
 * Returns the certificates above the leaf on that path (intermediates then the root), or "bad_chain".
 */
export function verifyChain(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  anchors: X509Certificate[],
): Result<X509Certificate[], "bad_chain"> {
  const path: X509Certificate[] = [];
  let cur = leaf;
  for (let depth = 0; depth <= MAX_INTERMEDIATES; depth++) {
    const root = anchors.find((a) => issued(a, cur));
    if (root !== undefined) {
      path.push(root);
      return { ok: true, value: path };
    }
    const next = intermediates.find((c) => c.ca && !path.includes(c) && issued(c, cur));
    if (next === undefined) break;
    path.push(next);
    cur = next;
  }
  return { ok: false, reason: "bad_chain" };
}

/** The PEM certificate blocks of `text`, in order. */
export function splitPem(text: string): string[] {
  return text.match(PEM_CERT_RE) ?? [];
}

function issued(issuer: X509Certificate, subject: X509Certificate): boolean {
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey); // "subject was issued by issuer"
  } catch {
    return false;
  }
}

function parseAll(pems: string[]): X509Certificate[] | undefined {
  try {
    return pems.map((p) => new X509Certificate(p));
  } catch {
    return undefined;
  }
}

function checkWindow(cert: X509Certificate, nowMs: number): "expired" | "not_yet_valid" | undefined {
  if (nowMs < cert.validFromDate.getTime()) return "not_yet_valid";
  if (nowMs > cert.validToDate.getTime()) return "expired";
  return undefined;
}
