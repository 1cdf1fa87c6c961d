import type { SpiffeUri } from "../agent/index.js";
import type { Result } from "../net/index.js";

/** A Consul Connect identity, parsed from a certificate's URI SAN (spec §8.1). */
export type SpiffeId =
  | { kind: "service"; trustDomain: string; partition: string; namespace: string; datacenter: string; service: string }
  /** `datacenter` is "" for the 1.2-era form `/agent/<node>`. */
  | { kind: "agent"; trustDomain: string; partition: string; datacenter: string; node: string }
  | { kind: "server"; trustDomain: string; datacenter: string }
  | { kind: "mesh-gateway"; trustDomain: string; partition: string; datacenter: string }
  | { kind: "signing"; trustDomain: string };

export type ServiceSpiffeId = Extract<SpiffeId, { kind: "service" }>;
export type SpiffeParseError = "not_spiffe" | "bad_format";

// spec §8.1; the regexps match the raw (still escaped) path, and captured segments are unescaped after.
const SERVICE_RE = /^(?:\/ap\/([^/]+))?\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;
const AGENT_RE = /^(?:\/ap\/([^/]+))?\/agent\/client\/dc\/([^/]+)\/id\/([^/]+)$/;
const AGENT_12_RE = /^\/agent\/([^/]+)$/;
const SERVER_RE = /^\/agent\/server\/dc\/([^/]+)$/;
const MESH_GATEWAY_RE = /^(?:\/ap\/([^/]+))?\/gateway\/mesh\/dc\/([^/]+)$/;
// A SPIFFE trust domain: letters, digits, '.', '-', '_' (uppercase is accepted and lowercased).
const TRUST_DOMAIN_RE = /^[A-Za-z0-9._-]+$/;
const SCHEME = "spiffe://";
const DEFAULT = "default";

/**
 * Parses a SPIFFE URI into a Consul identity. Never throws: a non-spiffe scheme gives "not_spiffe",
 * anything else Consul would not accept gives "bad_format". The trust domain comes back lowercase,
 * escaped path segments unescaped, and a missing partition as "default".
 */
export function parseSpiffeId(uri: string): Result<SpiffeId, SpiffeParseError> {
  if (uri.length < SCHEME.length || uri.slice(0, SCHEME.length).toLowerCase() !== SCHEME) {
    return { ok: false, reason: "not_spiffe" };
  }
  const slash = uri.indexOf("/", SCHEME.length);
  const host = slash < 0 ? uri.slice(SCHEME.length) : uri.slice(SCHEME.length, slash);
  const path = slash < 0 ? "" : uri.slice(slash);
  // No userinfo, port, query or fragment: none has a meaning in a SPIFFE ID.
  if (!TRUST_DOMAIN_RE.test(host) || path.includes("?") || path.includes("#")) return BAD_FORMAT;
  const trustDomain = host.toLowerCase();
  if (path === "") return host.includes(".") ? { ok: true, value: { kind: "signing", trustDomain } } : BAD_FORMAT;

  let m = SERVICE_RE.exec(path);
  if (m) {
    const [partition, namespace, datacenter, service] = unescapeAll([m[1] ?? DEFAULT, m[2]!, m[3]!, m[4]!]);
    if (service === undefined) return BAD_FORMAT;
    return { ok: true, value: { kind: "service", trustDomain, partition: partition!, namespace: namespace!, datacenter: datacenter!, service } };
  }
  m = AGENT_RE.exec(path);
  if (m) {
    const [partition, datacenter, node] = unescapeAll([m[1] ?? DEFAULT, m[2]!, m[3]!]);
    if (node === undefined) return BAD_FORMAT;
    return { ok: true, value: { kind: "agent", trustDomain, partition: partition!, datacenter: datacenter!, node } };
  }
  m = SERVER_RE.exec(path);
  if (m) {
    const [datacenter] = unescapeAll([m[1]!]);
    if (datacenter === undefined) return BAD_FORMAT;
    return { ok: true, value: { kind: "server", trustDomain, datacenter } };
  }
  m = MESH_GATEWAY_RE.exec(path);
  if (m) {
    const [partition, datacenter] = unescapeAll([m[1] ?? DEFAULT, m[2]!]);
    if (datacenter === undefined) return BAD_FORMAT;
    return { ok: true, value: { kind: "mesh-gateway", trustDomain, partition: partition!, datacenter } };
  }
  m = AGENT_12_RE.exec(path);
  if (m) {
    const [node] = unescapeAll([m[1]!]);
    if (node === undefined) return BAD_FORMAT;
    return { ok: true, value: { kind: "agent", trustDomain, partition: DEFAULT, datacenter: "", node } };
  }
  return BAD_FORMAT;
}

/**
 * Formats an identity as the URI Consul would put in a certificate: path segments are escaped, and
 * the `/ap/<partition>` prefix appears only for a partition other than "default" (spec §8.1).
 */
export function formatSpiffeId(id: SpiffeId): SpiffeUri {
  const base = SCHEME + id.trustDomain;
  switch (id.kind) {
    case "service":
      return (base + ap(id.partition) + `/ns/${esc(id.namespace || DEFAULT)}/dc/${esc(id.datacenter)}/svc/${esc(id.service)}`) as SpiffeUri;
    case "agent":
      if (id.datacenter === "") return (base + `/agent/${esc(id.node)}`) as SpiffeUri; // 1.2-era form
      return (base + ap(id.partition) + `/agent/client/dc/${esc(id.datacenter)}/id/${esc(id.node)}`) as SpiffeUri;
    case "server":
      return (base + `/agent/server/dc/${esc(id.datacenter)}`) as SpiffeUri;
    case "mesh-gateway":
      return (base + ap(id.partition) + `/gateway/mesh/dc/${esc(id.datacenter)}`) as SpiffeUri;
    case "signing":
      return base as SpiffeUri;
  }
}

const BAD_FORMAT: { ok: false; reason: "bad_format" } = { ok: false, reason: "bad_format" };

function ap(partition: string): string {
  return partition === "" || partition === DEFAULT ? "" : `/ap/${esc(partition)}`;
}

function esc(segment: string): string {
  return encodeURIComponent(segment.toWellFormed()); // a lone surrogate would make it throw
}

/**
 * Unescapes captured path segments in place. Returns an empty array when any escape is malformed,
 * so the caller's destructuring sees `undefined` and refuses.
 */
function unescapeAll(segments: string[]): string[] {
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (!s.includes("%")) continue;
    try {
      segments[i] = decodeURIComponent(s);
    } catch {
      return [];
    }
  }
  return segments;
}
