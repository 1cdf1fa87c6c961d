// L7 intentions as pure functions (spec §12.3): which intention applies to a source, and what its
// Permissions decide for one HTTP request. No I/O; the authorizer feeds them its watched list.
import type { HttpHeaderMatch, HttpPermissionMatch, Intention, IntentionPermission } from "../agent/index.js";
import { linearRegExp } from "../net/index.js";

/** What an L7 check looks at in a request. Header names are lower case (Node's `req.headers`). */
export interface L7Request {
  method: string;
  /** The request target's path, without the query string. */
  path: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The source a request came from, as its certificate names it. */
export interface L7Source {
  namespace: string;
  service: string;
}

/**
 * The intention that decides for `src`: the first of `list` (the match answer, highest precedence
 * first: spec checklist 14) whose source matches, `*` matching any name. Undefined: none does, and
 * the default policy decides.
 */
export function intentionFor(list: readonly Intention[], src: L7Source): Intention | undefined {
  for (const i of list) {
    if (i.sourceName !== "*" && i.sourceName !== src.service) continue;
    const ns = i.sourceNs === "" ? "default" : i.sourceNs;
    if (ns !== "*" && ns !== src.namespace) continue;
    return i;
  }
  return undefined;
}

/**
 * The first permission matching `req` decides (spec §12.3, Consul's service-intentions docs:
 * "Consul applies the first matching request and stops evaluating"). Undefined when none matches:
 * the request falls to the default policy, which the caller applies.
 */
export function permissionVerdict(perms: readonly IntentionPermission[], req: L7Request): "allow" | "deny" | undefined {
  for (const p of perms) if (p.http === undefined || httpMatches(p.http, req, p.action)) return p.action;
  return undefined;
}

/**
 * Whether the permission's HTTP block matches. A regex this process cannot evaluate (see fullMatch)
 * counts as matching in a deny and as not matching in an allow: fail closed either way.
 */
function httpMatches(m: HttpPermissionMatch, req: L7Request, action: "allow" | "deny"): boolean {
  const unknown = action === "deny";
  if (m.pathExact !== undefined && req.path !== m.pathExact) return false;
  if (m.pathPrefix !== undefined && !req.path.startsWith(m.pathPrefix)) return false;
  if (m.pathRegex !== undefined && !(fullMatch(m.pathRegex, req.path) ?? unknown)) return false;
  if (m.methods.length > 0 && !m.methods.includes(req.method.toUpperCase())) return false;
  for (const h of m.headers) if (!(headerMatches(h, req.headers[h.name]) ?? unknown)) return false;
  return true;
}

/**
 * Envoy's HeaderMatcher, which Consul renders these into: several values of one header are
 * matched joined by ","; `invert` negates the whole match, presence included. Undefined: a regex
 * that cannot be evaluated.
 */
function headerMatches(h: HttpHeaderMatch, raw: string | string[] | undefined): boolean | undefined {
  const value = raw === undefined ? undefined : Array.isArray(raw) ? raw.join(",") : raw;
  let hit: boolean | undefined;
  if (value === undefined) hit = false;
  else {
    const m = h.match;
    switch (m.t) {
      case "present":
        hit = true;
        break;
      case "exact":
        hit = value === m.value;
        break;
      case "prefix":
        hit = value.startsWith(m.value);
        break;
      case "suffix":
        hit = value.endsWith(m.value);
        break;
      case "regex":
        hit = fullMatch(m.value, value);
        break;
    }
  }
  if (hit === undefined) return undefined;
  return h.invert ? !hit : hit;
}

const compiled = new Map<string, RegExp | null>();
/**
 * Envoy's safe_regex (RE2) matches the whole value in linear time; so does this, on V8's linear-time
 * engine (linearRegExp). Undefined: the pattern cannot run there (a syntax RE2 has and JavaScript
 * lacks, such as \p{..} classes, or no such engine in this V8); the caller fails closed.
 */
function fullMatch(pattern: string, value: string): boolean | undefined {
  let re = compiled.get(pattern);
  if (re === undefined) {
    re = linearRegExp(`^(?:${pattern})$`) ?? null;
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re === null ? undefined : re.test(value);
}
