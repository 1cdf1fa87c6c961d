// Domain types for what the agent tells us. Consul's PascalCase JSON stays inside the
// parsers in this folder (parse.ts); everything past them uses these camelCase shapes
// and trusts them (STYLE §2).

/** A spiffe:// URI as text, exactly as it appears in a certificate SAN. */
export type SpiffeUri = string & { readonly __brand: "SpiffeUri" };

/** `GET /v1/agent/connect/ca/roots` (spec §2). */
export interface CaRoots {
  activeRootId: string;
  /** `<cluster-uuid>.consul`, lowercase; empty before Connect is bootstrapped. */
  trustDomain: string;
  roots: CaRoot[];
}

export interface CaRoot {
  /** SHA-1 fingerprint, lowercase colon-hex. */
  id: string;
  name: string;
  serialNumber: number;
  signingKeyId: string;
  notBefore: Date;
  notAfter: Date;
  /** PEM of the root certificate. */
  rootCertPem: string;
  intermediateCertPems: string[];
  active: boolean;
}

/** `GET /v1/agent/connect/ca/leaf/:service` (spec §3). */
export interface LeafCert {
  /** Lowercase colon-hex. */
  serialNumber: string;
  /** Leaf PEM followed by any intermediates. */
  certPem: string;
  /** EC PRIVATE KEY PEM. Never logged. */
  privateKeyPem: string;
  service: string;
  serviceUri: SpiffeUri;
  validAfter: Date;
  validBefore: Date;
  modifyIndex: number;
}

/** One upstream of a proxy registration (spec §6.1). */
export interface Upstream {
  destinationType: "service" | "prepared_query";
  destinationName: string;
  destinationNamespace: string;
  datacenter: string;
  localBindAddress: string;
  localBindPort: number;
  localBindSocketPath: string;
  localBindSocketMode: string;
  /** Opaque `Config` map; the sidecar reads `connect_timeout_ms` from it. */
  config: Record<string, unknown>;
}

/** The `Proxy` block of a connect-proxy registration. */
export interface ProxyConfig {
  destinationServiceName: string;
  destinationServiceId: string;
  localServiceAddress: string;
  localServicePort: number;
  localServiceSocketPath: string;
  mode: string;
  /** Opaque `Config` map (built-in proxy keys: spec §6.1, §9.2). */
  config: Record<string, unknown>;
  upstreams: Upstream[];
}

/** `GET /v1/agent/service/:id` and the values of `/v1/agent/services` (spec §6.5, §6.6). */
export interface AgentService {
  kind: string; // "" for a typical service, "connect-proxy", ...
  id: string;
  service: string;
  tags: string[];
  meta: Record<string, string>;
  address: string;
  port: number;
  socketPath: string;
  datacenter: string;
  proxy: ProxyConfig | undefined;
  connectNative: boolean;
  /** Present on `/v1/agent/service/:id` only. */
  contentHash: string;
}

/** One entry of `/v1/health/connect/:service` or of a prepared query's `Nodes` (spec §7.1). */
export interface HealthEntry {
  node: { id: string; name: string; address: string; datacenter: string };
  service: {
    kind: string;
    id: string;
    service: string;
    address: string;
    port: number;
    socketPath: string;
    proxyDestinationServiceName: string;
    connectNative: boolean;
  };
  checks: Array<{ checkId: string; status: "passing" | "warning" | "critical" | "maintenance" | string }>;
}

export interface Intention {
  id: string;
  sourceNs: string;
  sourceName: string;
  destinationNs: string;
  destinationName: string;
  action: "allow" | "deny" | "";
  /**
   * L7 permissions, in evaluation order (spec §12.3). Non-empty makes this an L7 intention: authorize
   * answers deny for it, and a proxy whose protocol is http enforces it per request.
   */
  permissions: IntentionPermission[];
  precedence: number;
  modifyIndex: number;
}

/** One `Permissions[]` item of an L7 intention (spec §12.3). */
export interface IntentionPermission {
  action: "allow" | "deny";
  /** Undefined: the permission matches every request. */
  http: HttpPermissionMatch | undefined;
}

export interface HttpPermissionMatch {
  /** At most one of the three is set (Consul validates it). */
  pathExact: string | undefined;
  pathPrefix: string | undefined;
  pathRegex: string | undefined;
  /** Empty: any method. Upper case, as Consul compares them. */
  methods: string[];
  headers: HttpHeaderMatch[];
}

export interface HttpHeaderMatch {
  /** Lower case: HTTP header names compare case-insensitively. */
  name: string;
  /** Exactly one kind; "present" with no value. */
  match:
    | { t: "present" }
    | { t: "exact"; value: string }
    | { t: "prefix"; value: string }
    | { t: "suffix"; value: string }
    | { t: "regex"; value: string };
  invert: boolean;
}

/** `POST /v1/agent/connect/authorize` (spec §4). */
export interface AuthorizeResult {
  authorized: boolean;
  reason: string;
}

/**
 * `GET /v1/acl/token/self` (spec §11.2), read loosely for an audit: a missing field is empty.
 */
export interface TokenInfo {
  accessorId: string;
  description: string;
  policies: Array<{ id: string; name: string }>;
  roles: Array<{ id: string; name: string }>;
  serviceIdentities: Array<{ serviceName: string; datacenters: string[] }>;
  nodeIdentities: Array<{ nodeName: string; datacenter: string }>;
  templatedPolicies: Array<{ templateName: string; name: string | undefined }>;
}

/** The audit fields of `/v1/agent/self` (spec §11.5); undefined = the agent did not say. */
export interface AgentSelfInfo {
  version: string | undefined;
  aclsEnabled: boolean | undefined;
  aclDefaultPolicy: string | undefined;
  rpcVerifyIncoming: boolean | undefined;
  rpcVerifyOutgoing: boolean | undefined;
  rpcVerifyServerHostname: boolean | undefined;
  /** DebugConfig listener addresses as Consul writes them: `tcp://ip:port`, `unix:///path`. */
  httpAddrs: string[] | undefined;
  httpsAddrs: string[] | undefined;
  caProvider: string | undefined;
  sidecarMinPort: number | undefined;
  sidecarMaxPort: number | undefined;
  gossipEncrypted: string | undefined;
}

/** `GET /v1/acl/policy/:id` (spec §11.4), read loosely: a missing field is empty. */
export interface PolicyInfo {
  id: string;
  name: string;
  rules: string;
}
