// Just enough of the ACL rule language (spec §11.4) to tell which rights a policy adds on top of
// a service identity (spec §11.3). Not an evaluator: it lists rules, it does not decide requests.

export interface Rule {
  /** `service`, `service_prefix`, `node`, `agent_prefix`, … or a scalar such as `acl`. */
  resource: string;
  /** The quoted name of a block rule; undefined for scalars (`acl = "write"`). */
  name: string | undefined;
  /** `policy` or `intentions` for blocks; `policy` for scalars. */
  field: string;
  level: string;
}

const BLOCK_RE = /([A-Za-z_]+)\s+"([^"]*)"\s*\{([^}]*)\}/g;
const ASSIGN_RE = /([A-Za-z_]+)\s*=\s*"([A-Za-z]+)"/g;

/** Lists the rules of a policy written in HCL or its JSON form; undefined when it cannot be read. */
export function parseRules(text: string): Rule[] | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  if (trimmed.startsWith("{")) return parseJsonRules(trimmed);
  const rules: Rule[] = [];
  const rest = trimmed.replace(BLOCK_RE, (_m, resource: string, name: string, body: string) => {
    for (const [, field, level] of body.matchAll(ASSIGN_RE)) rules.push({ resource, name, field: field!, level: level! });
    return "";
  });
  const scalars = rest.replace(/#[^\n]*|\/\/[^\n]*/g, "");
  for (const [, resource, level] of scalars.matchAll(ASSIGN_RE)) rules.push({ resource: resource!, name: undefined, field: "policy", level: level! });
  // Anything left that is not whitespace is a form this reader does not know: do not guess.
  if (scalars.replace(ASSIGN_RE, "").trim() !== "") return undefined;
  return rules;
}

function parseJsonRules(text: string): Rule[] | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const rules: Rule[] = [];
  for (const [resource, v] of Object.entries(doc as Record<string, unknown>)) {
    if (typeof v === "string") {
      rules.push({ resource, name: undefined, field: "policy", level: v });
      continue;
    }
    if (typeof v !== "object" || v === null) return undefined;
    for (const [name, body] of Object.entries(v as Record<string, unknown>)) {
      if (typeof body !== "object" || body === null) return undefined;
      for (const [field, level] of Object.entries(body as Record<string, unknown>)) {
        if (typeof level === "string") rules.push({ resource, name, field, level });
      }
    }
  }
  return rules;
}

/** A rule as a config line, e.g. `service "db" { policy = "write" }` or `acl = "write"`. */
export function formatRule(r: Rule): string {
  return r.name === undefined ? `${r.resource} = "${r.level}"` : `${r.resource} "${r.name}" { ${r.field} = "${r.level}" }`;
}

/**
 * The rules that grant more than the service identity of `service` does (spec §11.3: write on
 * `<service>` and `<service>-sidecar-proxy`, read on every service and node, intentions read).
 * A deny never adds a right.
 */
export function rightsBeyondIdentity(rules: Rule[], service: string): Rule[] {
  const own = new Set([service, `${service}-sidecar-proxy`]);
  return rules.filter((r) => {
    if (r.level === "deny") return false;
    const readOnly = r.level === "read" || r.level === "list";
    const serviceOrNode = ["service", "service_prefix", "node", "node_prefix"].includes(r.resource);
    if (serviceOrNode && r.field === "intentions") return !readOnly;
    if (serviceOrNode && readOnly) return false;
    if (r.resource === "service" && r.field === "policy" && r.level === "write" && own.has(r.name ?? "")) return false;
    return true;
  });
}

/** True when some rule grants service:write on exactly `service` (its own right). */
export function grantsServiceWrite(rules: Rule[], service: string): boolean {
  return rules.some(
    (r) =>
      r.field === "policy" &&
      r.level === "write" &&
      ((r.resource === "service" && r.name === service) || (r.resource === "service_prefix" && service.startsWith(r.name ?? "\0"))),
  );
}
