// Service and check definitions as Consul's agent reads them from its config files (agent/config
// config.go: ServiceDefinition, CheckDefinition, ServiceProxy, Upstream), decoded into the
// `PUT /v1/agent/service/register` and `/v1/agent/check/register` bodies that catalog-register.ts plans.
// Consul decodes a file into a map, turns every one-element list of maps into a map (HCL writes each
// block as a list: lib.PatchSliceOfMaps, except the fields that are lists), then maps it onto its
// structs with mapstructure: keys match case-insensitively, a value of the wrong type is a decoding
// error, and every key left over is "invalid config key <path>".
import { multiError } from "./intentions-model.js";

type Scalar = "string" | "int" | "bool" | "map" | "strings" | "any";
type ConfigField =
  | { api: string; t: Scalar }
  | { api: string; t: "object" | "list"; fields: ConfigSchema };
type ConfigSchema = Record<string, ConfigField>;

const f = (api: string, t: Scalar): ConfigField => ({ api, t });
const obj = (api: string, fields: ConfigSchema): ConfigField => ({ api, t: "object", fields });
const list = (api: string, fields: ConfigSchema): ConfigField => ({ api, t: "list", fields });

const MESH_GATEWAY: ConfigSchema = { mode: f("Mode", "string") };

// config.CheckDefinition. `id` is the check's ID; `service_id` and `token` belong to checks outside a service.
const CHECK: ConfigSchema = {
  id: f("CheckID", "string"), name: f("Name", "string"), notes: f("Notes", "string"), status: f("Status", "string"),
  args: f("ScriptArgs", "strings"), http: f("HTTP", "string"), header: f("Header", "map"), method: f("Method", "string"),
  body: f("Body", "string"), disable_redirects: f("DisableRedirects", "bool"), output_max_size: f("OutputMaxSize", "int"),
  tcp: f("TCP", "string"), tcp_use_tls: f("TCPUseTLS", "bool"), udp: f("UDP", "string"), interval: f("Interval", "string"),
  docker_container_id: f("DockerContainerID", "string"), shell: f("Shell", "string"), grpc: f("GRPC", "string"),
  grpc_use_tls: f("GRPCUseTLS", "bool"), h2ping: f("H2PING", "string"), h2ping_use_tls: f("H2PingUseTLS", "bool"),
  os_service: f("OSService", "string"), tls_server_name: f("TLSServerName", "string"), tls_skip_verify: f("TLSSkipVerify", "bool"),
  alias_node: f("AliasNode", "string"), alias_service: f("AliasService", "string"), timeout: f("Timeout", "string"),
  ttl: f("TTL", "string"), success_before_passing: f("SuccessBeforePassing", "int"),
  failures_before_warning: f("FailuresBeforeWarning", "int"), failures_before_critical: f("FailuresBeforeCritical", "int"),
  deregister_critical_service_after: f("DeregisterCriticalServiceAfter", "string"),
};
const NODE_CHECK: ConfigSchema = { ...CHECK, service_id: f("ServiceID", "string"), token: f("Token", "string") };

const UPSTREAM: ConfigSchema = {
  destination_type: f("DestinationType", "string"), destination_namespace: f("DestinationNamespace", "string"),
  destination_partition: f("DestinationPartition", "string"), destination_peer: f("DestinationPeer", "string"),
  destination_name: f("DestinationName", "string"), datacenter: f("Datacenter", "string"),
  local_bind_address: f("LocalBindAddress", "string"), local_bind_port: f("LocalBindPort", "int"),
  local_bind_socket_path: f("LocalBindSocketPath", "string"), local_bind_socket_mode: f("LocalBindSocketMode", "string"),
  config: f("Config", "map"), mesh_gateway: obj("MeshGateway", MESH_GATEWAY),
};

const PROXY: ConfigSchema = {
  destination_service_name: f("DestinationServiceName", "string"), destination_service_id: f("DestinationServiceID", "string"),
  local_service_address: f("LocalServiceAddress", "string"), local_service_port: f("LocalServicePort", "int"),
  local_service_socket_path: f("LocalServiceSocketPath", "string"), mode: f("Mode", "string"),
  transparent_proxy: f("TransparentProxy", "map"), config: f("Config", "map"), upstreams: list("Upstreams", UPSTREAM),
  mesh_gateway: obj("MeshGateway", MESH_GATEWAY),
  expose: obj("Expose", {
    checks: f("Checks", "bool"),
    paths: list("Paths", {
      listener_port: f("ListenerPort", "int"), path: f("Path", "string"), local_path_port: f("LocalPathPort", "int"),
      protocol: f("Protocol", "string"),
    }),
  }),
};

const SERVICE: ConfigSchema = {
  kind: f("Kind", "string"), id: f("ID", "string"), name: f("Name", "string"), tags: f("Tags", "strings"),
  address: f("Address", "string"), tagged_addresses: f("TaggedAddresses", "map"), meta: f("Meta", "map"),
  port: f("Port", "int"), socket_path: f("SocketPath", "string"), check: obj("Check", CHECK), checks: list("Checks", CHECK),
  token: f("Token", "string"), weights: obj("Weights", { passing: f("Passing", "int"), warning: f("Warning", "int") }),
  enable_tag_override: f("EnableTagOverride", "bool"), proxy: obj("Proxy", PROXY), connect: obj("Connect", {}),
};
// connect { sidecar_service { … } } is a nested service definition.
SERVICE.connect = obj("Connect", { native: f("Native", "bool"), sidecar_service: obj("SidecarService", SERVICE) });

// The keys of a service-definition file; the rest of an agent's configuration is the dev agent's flags.
const FILE: ConfigSchema = {
  service: obj("Service", SERVICE), services: list("Services", SERVICE),
  check: obj("Check", NODE_CHECK), checks: list("Checks", NODE_CHECK),
};

// lib.TranslateKeys in config.Parse: CamelCase spellings Consul maps onto the snake_case keys.
const KEY_ALIASES: Record<string, string> = {
  deregistercriticalserviceafter: "deregister_critical_service_after", dockercontainerid: "docker_container_id",
  scriptargs: "args", serviceid: "service_id", tlsskipverify: "tls_skip_verify",
};

/** What one file defines, as HTTP API bodies, in the file's order. */
export interface FileDefinitions {
  /** `PUT /v1/agent/service/register` bodies. */
  services: Array<Record<string, unknown>>;
  /** `PUT /v1/agent/check/register` bodies (checks outside a service). */
  checks: Array<Record<string, unknown>>;
}

/** A file's content that is not what Consul's agent would accept; the message is Consul's text. */
export class ServiceDefinitionError extends Error {
  override name = "ServiceDefinitionError";
}

type Raw = Record<string, unknown>;

function goType(v: unknown): string {
  if (typeof v === "number") return "float64";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (Array.isArray(v)) return "[]interface {}";
  return v === null ? "<nil>" : "map[string]interface {}";
}

const GO_TYPES: Record<Scalar | "object" | "list", string> = {
  string: "string", int: "int", bool: "bool", map: "map[string]interface {}", strings: "[]string", any: "interface {}",
  object: "struct", list: "[]struct",
};

const isObject = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Decodes one parsed file (a JSON or HCL document as a plain object) into its service and check
 * definitions. Throws ServiceDefinitionError with mapstructure's decoding errors, else with every
 * "invalid config key" (Consul's texts).
 */
export function decodeDefinitionFile(doc: Raw): FileDefinitions {
  const typeErrors: string[] = [];
  const unused: string[] = [];

  const decodeValue = (v: unknown, field: ConfigField, path: string): unknown => {
    if (v === null || v === undefined) return undefined;
    if (field.t === "list") {
      if (!Array.isArray(v)) return mismatch(v, field, path);
      return v.map((item, i) => decodeObject(item, field.fields, `${path}[${i}]`));
    }
    // PatchSliceOfMaps: a one-element list of maps (an HCL block) is the map itself.
    const one = Array.isArray(v) && v.length > 0 && isObject(v[0]) && (field.t === "object" || field.t === "map") ? single(v, path) : v;
    switch (field.t) {
      case "object":
        return decodeObject(one, field.fields, path);
      case "map":
        return isObject(one) ? one : mismatch(one, field, path);
      case "string":
        return typeof one === "string" ? one : mismatch(one, field, path);
      case "int":
        return typeof one === "number" && Number.isInteger(one) ? one : mismatch(one, field, path);
      case "bool":
        return typeof one === "boolean" ? one : mismatch(one, field, path);
      case "strings":
        return Array.isArray(one) && one.every((s) => typeof s === "string") ? one : mismatch(one, field, path);
      case "any":
        return one;
    }
  };

  const single = (v: unknown[], path: string): unknown => {
    if (v.length > 1) typeErrors.push(`${path}: []map[string]interface{} with more than one element not supported`);
    return v[0];
  };

  const mismatch = (v: unknown, field: ConfigField, path: string): undefined => {
    typeErrors.push(`'${path}' expected type '${GO_TYPES[field.t]}', got unconvertible type '${goType(v)}', value: '${JSON.stringify(v)}'`);
    return undefined;
  };

  const decodeObject = (v: unknown, schema: ConfigSchema, path: string): Raw | undefined => {
    if (!isObject(v)) return mismatch(v, { api: "", t: "object", fields: schema }, path);
    const out: Raw = {};
    for (const [key, value] of Object.entries(v)) {
      const lower = key.toLowerCase();
      const name = Object.hasOwn(schema, lower) ? lower : KEY_ALIASES[lower];
      const field = name !== undefined && Object.hasOwn(schema, name) ? schema[name]! : undefined;
      const at = path === "" ? key : `${path}.${key}`;
      if (field === undefined) {
        unused.push(at);
        continue;
      }
      const decoded = decodeValue(value, field, at);
      if (decoded !== undefined) out[field.api] = decoded;
    }
    return out;
  };

  const top = decodeObject(doc, FILE, "") ?? {};
  if (typeErrors.length > 0) {
    throw new ServiceDefinitionError(`${typeErrors.length} error(s) decoding:\n\n${typeErrors.map((e) => `* ${e}`).join("\n")}`);
  }
  // Sorted: the order of a Go map (and of hcl2json's output) means nothing.
  if (unused.length > 0) throw new ServiceDefinitionError(multiError(unused.sort().map((k) => `invalid config key ${k}`)).trimEnd());
  const services = [...((top.Services as Raw[] | undefined) ?? []), ...(top.Service ? [top.Service as Raw] : [])];
  const checks = [...((top.Checks as Raw[] | undefined) ?? []), ...(top.Check ? [top.Check as Raw] : [])].map(nodeCheckBody);
  return { services, checks };
}

// A check outside a service is a CheckDefinition body: its ID is `ID`, not `CheckID`.
function nodeCheckBody(c: Raw): Raw {
  const { CheckID: id, ...rest } = c;
  return id === undefined ? rest : { ...rest, ID: id };
}
