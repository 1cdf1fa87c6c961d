// The ACL rule language (spec §11.4, Consul's acl/policy.go): an HCL subset or its JSON form,
// merged per (resource, exact|prefix, name) with deny > write > list > read, then looked up
// exact-first, longest-prefix-next, default policy last.

export type RuleLevel = "read" | "list" | "write" | "deny";
export type NamedKind = "service" | "node" | "agent" | "key" | "session" | "event" | "query";
export type ScalarKind = "acl" | "operator" | "keyring" | "mesh" | "peering";

export interface NamedRule {
  kind: NamedKind;
  prefix: boolean;
  name: string;
  policy: RuleLevel;
  /** Only services carry an explicit intentions level. */
  intentions: RuleLevel | undefined;
}

export interface PolicyRules {
  named: NamedRule[];
  scalars: Partial<Record<ScalarKind, RuleLevel>>;
}

const NAMED_KINDS: readonly NamedKind[] = ["service", "node", "agent", "key", "session", "event", "query"];
const SCALAR_KINDS: readonly ScalarKind[] = ["acl", "operator", "keyring", "mesh", "peering"];
const LEVELS: readonly RuleLevel[] = ["read", "list", "write", "deny"];
// Go's %#v type names, for `Invalid <res> policy: &acl.XRule{…}` (acl/policy.go).
const GO_RULE: Record<NamedKind, { type: string; nameField: string; enterprise: boolean }> = {
  service: { type: "ServiceRule", nameField: "Name", enterprise: true },
  node: { type: "NodeRule", nameField: "Name", enterprise: true },
  agent: { type: "AgentRule", nameField: "Node", enterprise: true },
  key: { type: "KeyRule", nameField: "Prefix", enterprise: true },
  session: { type: "SessionRule", nameField: "Node", enterprise: true },
  event: { type: "EventRule", nameField: "Event", enterprise: true },
  query: { type: "PreparedQueryRule", nameField: "Prefix", enterprise: false },
};

/** The rules of a policy that grants nothing. */
export function emptyRules(): PolicyRules {
  return { named: [], scalars: {} };
}

/**
 * Parses rule text (HCL subset or JSON) and validates the levels. Throws an Error whose message is
 * Consul's (`Failed to parse ACL rules: …`, `Invalid service policy: …`); callers answer 500 with it.
 */
export function parseRules(text: string): PolicyRules {
  const trimmed = text.trim();
  if (trimmed === "") return emptyRules();
  let tree: Entry[];
  try {
    tree = trimmed.startsWith("{") ? jsonEntries(JSON.parse(trimmed) as unknown) : new HclParser(trimmed).document();
  } catch (err) {
    throw new Error(`Failed to parse ACL rules: ${(err as Error).message}`);
  }
  const out = emptyRules();
  for (const e of tree) {
    const scalar = SCALAR_KINDS.find((k) => k === e.key);
    if (scalar) {
      if (typeof e.value !== "string") throw new Error(`Failed to parse ACL rules: ${scalar} must be a string`);
      if (!isLevel(e.value, false)) throw new Error(`Invalid ${scalar} policy: "${e.value}"`);
      out.scalars[scalar] = e.value;
      continue;
    }
    const prefix = e.key.endsWith("_prefix");
    const kindText = prefix ? e.key.slice(0, -"_prefix".length) : e.key;
    const kind = NAMED_KINDS.find((k) => k === kindText);
    if (!kind) continue; // Consul's HCL decode ignores blocks it does not know
    if (e.label === undefined || typeof e.value === "string") {
      throw new Error(`Failed to parse ACL rules: ${e.key} needs a name and a block`);
    }
    const policy = e.value.policy ?? "";
    const intentions = kind === "service" ? e.value.intentions : undefined;
    const listOk = kind === "key";
    if (!isLevel(policy, listOk) || (intentions !== undefined && !isLevel(intentions, false))) {
      throw new Error(`Invalid ${e.key} policy: ${goRuleDump(kind, e.label, policy, e.value.intentions)}`);
    }
    out.named.push({ kind, prefix, name: e.label, policy, intentions });
  }
  return out;
}

function isLevel(v: string, listOk: boolean): v is RuleLevel {
  return (LEVELS as readonly string[]).includes(v) && (listOk || v !== "list");
}

function goRuleDump(kind: NamedKind, name: string, policy: string, intentions: string | undefined): string {
  const g = GO_RULE[kind];
  const parts = [`${g.nameField}:${JSON.stringify(name)}`, `Policy:${JSON.stringify(policy)}`];
  if (kind === "service") parts.push(`Intentions:${JSON.stringify(intentions ?? "")}`);
  if (g.enterprise) parts.push("EnterpriseRule:acl.EnterpriseRule{}");
  return `&acl.${g.type}{${parts.join(", ")}}`;
}

// ---- the tree both syntaxes produce -------------------------------------------------------

interface Entry {
  key: string;
  label: string | undefined;
  value: string | Record<string, string>;
}

function jsonEntries(doc: unknown): Entry[] {
  if (!isRecord(doc)) throw new Error("rules must be a JSON object");
  const out: Entry[] = [];
  for (const [key, v] of Object.entries(doc)) {
    if (typeof v === "string") {
      out.push({ key, label: undefined, value: v });
      continue;
    }
    // `"service": {"web": {...}}` or `"service": [{"web": {...}}]`
    for (const group of Array.isArray(v) ? v : [v]) {
      if (!isRecord(group)) throw new Error(`${key}: expected an object`);
      for (const [label, body] of Object.entries(group)) {
        for (const b of Array.isArray(body) ? body : [body]) {
          if (!isRecord(b)) throw new Error(`${key} "${label}": expected an object`);
          const attrs: Record<string, string> = {};
          for (const [k, x] of Object.entries(b)) {
            if (typeof x !== "string") throw new Error(`${key} "${label}": ${k} must be a string`);
            attrs[k.toLowerCase()] = x;
          }
          out.push({ key, label, value: attrs });
        }
      }
    }
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

type Tok =
  | { t: "ident"; v: string; line: number; col: number }
  | { t: "string"; v: string; line: number; col: number }
  | { t: "punct"; v: "{" | "}" | "="; line: number; col: number }
  | { t: "eof"; v: ""; line: number; col: number };

/** Just enough HCL 1 for ACL rules: `a = "x"`, `a "label" { k = "v" … }`, `a = { label = { … } }`. */
class HclParser {
  private readonly toks: Tok[];
  private i = 0;
  constructor(src: string) {
    this.toks = tokenize(src);
  }

  document(): Entry[] {
    const out: Entry[] = [];
    const seenScalars = new Set<string>();
    while (this.peek().t !== "eof") {
      const key = this.take();
      if (key.t !== "ident" && key.t !== "string") throw this.unexpected(key);
      const next = this.take();
      if (next.t === "punct" && next.v === "=") {
        const v = this.take();
        if (v.t === "string") {
          if (seenScalars.has(key.v)) throw alreadySet(key);
          seenScalars.add(key.v);
          out.push({ key: key.v, label: undefined, value: v.v });
        } else if (v.t === "punct" && v.v === "{") {
          // object form: service = { "web" = { policy = "read" } }
          while (this.peek().v !== "}") {
            const label = this.take();
            if (label.t !== "ident" && label.t !== "string") throw this.unexpected(label);
            this.optional("=");
            this.expect("{");
            out.push({ key: key.v, label: label.v, value: this.body() });
          }
          this.take();
        } else throw this.unexpected(v);
      } else if (next.t === "string") {
        this.expect("{");
        out.push({ key: key.v, label: next.v, value: this.body() });
      } else throw this.unexpected(next);
    }
    return out;
  }

  /** Reads `k = "v"` pairs up to and including the closing brace. */
  private body(): Record<string, string> {
    const attrs: Record<string, string> = {};
    for (;;) {
      const k = this.take();
      if (k.t === "punct" && k.v === "}") return attrs;
      if (k.t !== "ident" && k.t !== "string") throw this.unexpected(k);
      this.expect("=");
      const v = this.take();
      if (v.t !== "string") throw this.unexpected(v);
      const name = k.v.toLowerCase();
      if (name in attrs) throw alreadySet(k);
      attrs[name] = v.v;
    }
  }

  private peek(): Tok {
    return this.toks[this.i]!;
  }
  private take(): Tok {
    const t = this.toks[this.i]!;
    if (t.t !== "eof") this.i++;
    return t;
  }
  private expect(p: "{" | "}" | "="): void {
    const t = this.take();
    if (t.t !== "punct" || t.v !== p) throw this.unexpected(t, p);
  }
  private optional(p: "=" | "{"): void {
    const t = this.peek();
    if (t.t === "punct" && t.v === p) this.i++;
  }
  private unexpected(t: Tok, want?: string): Error {
    const what = t.t === "eof" ? "end of input" : `token ${JSON.stringify(t.v)}`;
    return new Error(`At ${t.line}:${t.col}: unexpected ${what}${want ? `, expected "${want}"` : ""}`);
  }
}

function alreadySet(t: Tok): Error {
  return new Error(`At ${t.line}:${t.col}: The argument "${t.v}" was already set. Each argument can only be defined once`);
}

function tokenize(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const at = () => ({ line, col: i - lineStart + 1 });
  while (i < src.length) {
    const c = src[i]!;
    if (c === "\n") {
      i++;
      line++;
      lineStart = i;
    } else if (c === " " || c === "\t" || c === "\r" || c === ",") {
      i++;
    } else if (c === "#" || (c === "/" && src[i + 1] === "/")) {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) throw new Error(`At ${line}:${i - lineStart + 1}: unterminated comment`);
      for (let j = i; j < end; j++) if (src[j] === "\n") { line++; lineStart = j + 1; }
      i = end + 2;
    } else if (c === "{" || c === "}" || c === "=") {
      toks.push({ t: "punct", v: c, ...at() });
      i++;
    } else if (c === '"') {
      const pos = at();
      let j = i + 1;
      let raw = "";
      while (j < src.length && src[j] !== '"') {
        if (src[j] === "\n") throw new Error(`At ${pos.line}:${pos.col}: literal not terminated`);
        if (src[j] === "\\") { raw += src.slice(j, j + 2); j += 2; } else raw += src[j++];
      }
      if (j >= src.length) throw new Error(`At ${pos.line}:${pos.col}: literal not terminated`);
      toks.push({ t: "string", v: JSON.parse(`"${raw}"`) as string, ...pos });
      i = j + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const pos = at();
      let j = i;
      while (j < src.length && /[A-Za-z0-9_\-.]/.test(src[j]!)) j++;
      toks.push({ t: "ident", v: src.slice(i, j), ...pos });
      i = j;
    } else {
      throw new Error(`At ${line}:${i - lineStart + 1}: illegal char ${JSON.stringify(c)}`);
    }
  }
  toks.push({ t: "eof", v: "", line, col: i - lineStart + 1 });
  return toks;
}

// ---- merged rule set and evaluation ---------------------------------------------------------

interface Merged {
  policy: RuleLevel;
  intentions: RuleLevel | undefined;
}

interface KindTable {
  exact: Map<string, Merged>;
  prefix: Map<string, Merged>;
  /** Prefix names, longest first. */
  prefixOrder: string[];
}

const RANK: Record<RuleLevel, number> = { read: 1, list: 2, write: 3, deny: 4 };

/** Spec §11.4 step 1: the more restrictive level wins (deny > write > list > read). */
export function mergeLevel(a: RuleLevel | undefined, b: RuleLevel | undefined): RuleLevel | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return RANK[a] >= RANK[b] ? a : b;
}

/** Whether a rule level grants the wanted access (write ⊃ list ⊃ read; deny grants nothing). */
export function grants(have: RuleLevel, want: "read" | "list" | "write"): boolean {
  if (have === "deny") return false;
  if (want === "read") return true;
  if (want === "list") return have !== "read";
  return have === "write";
}

/** All of a token's rules merged into one lookup structure. */
export class RuleSet {
  private readonly kinds = new Map<NamedKind, KindTable>();
  private readonly scalars: Partial<Record<ScalarKind, RuleLevel>> = {};

  constructor(sources: readonly PolicyRules[]) {
    for (const src of sources) {
      for (const [k, v] of Object.entries(src.scalars) as Array<[ScalarKind, RuleLevel]>) {
        this.scalars[k] = mergeLevel(this.scalars[k], v);
      }
      for (const r of src.named) {
        let table = this.kinds.get(r.kind);
        if (!table) this.kinds.set(r.kind, (table = { exact: new Map(), prefix: new Map(), prefixOrder: [] }));
        const map = r.prefix ? table.prefix : table.exact;
        const prev = map.get(r.name);
        map.set(r.name, {
          policy: mergeLevel(prev?.policy, r.policy)!,
          intentions: mergeLevel(prev?.intentions, r.intentions),
        });
      }
    }
    for (const t of this.kinds.values()) t.prefixOrder = [...t.prefix.keys()].sort((a, b) => b.length - a.length);
  }

  scalar(kind: ScalarKind): RuleLevel | undefined {
    return this.scalars[kind];
  }

  /** Spec §11.4 step 2: the exact rule, else the longest matching prefix, else undefined. */
  lookup(kind: NamedKind, name: string): Merged | undefined {
    const t = this.kinds.get(kind);
    if (!t) return undefined;
    const exact = t.exact.get(name);
    if (exact) return exact;
    for (const p of t.prefixOrder) if (name.startsWith(p)) return t.prefix.get(p);
    return undefined;
  }

  /** Every service rule's effective intentions level (for the wildcard name `*`, step 5). */
  intentionLevels(): RuleLevel[] {
    const t = this.kinds.get("service");
    if (!t) return [];
    return [...t.exact.values(), ...t.prefix.values()].map(intentionLevel);
  }
}

/** Spec §11.4 step 4: explicit intentions, else read for read/write services, deny for deny. */
export function intentionLevel(m: Merged): RuleLevel {
  if (m.intentions !== undefined) return m.intentions;
  return m.policy === "deny" ? "deny" : m.policy === "list" ? "read" : m.policy === "write" ? "read" : m.policy;
}

/** Builtin `global-management` rules (Consul's ACLPolicyGlobalManagement). */
export const GLOBAL_MANAGEMENT_RULES = `acl = "write"
agent_prefix "" {
  policy = "write"
}
event_prefix "" {
  policy = "write"
}
key_prefix "" {
  policy = "write"
}
keyring = "write"
node_prefix "" {
  policy = "write"
}
operator = "write"
mesh = "write"
peering = "write"
query_prefix "" {
  policy = "write"
}
service_prefix "" {
  policy = "write"
  intentions = "write"
}
session_prefix "" {
  policy = "write"
}`;

/** Builtin `builtin/global-read-only` rules. */
export const GLOBAL_READ_ONLY_RULES = `acl = "read"
agent_prefix "" {
  policy = "read"
}
event_prefix "" {
  policy = "read"
}
key_prefix "" {
  policy = "read"
}
keyring = "read"
node_prefix "" {
  policy = "read"
}
operator = "read"
mesh = "read"
peering = "read"
query_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "read"
}
session_prefix "" {
  policy = "read"
}`;

/** Spec §11.3: what a service identity (or `builtin/service`) grants. */
export function serviceIdentityRules(name: string): PolicyRules {
  return {
    scalars: {},
    named: [
      { kind: "service", prefix: false, name, policy: "write", intentions: undefined },
      { kind: "service", prefix: false, name: `${name}-sidecar-proxy`, policy: "write", intentions: undefined },
      { kind: "service", prefix: true, name: "", policy: "read", intentions: undefined },
      { kind: "node", prefix: true, name: "", policy: "read", intentions: undefined },
    ],
  };
}

/** Spec §11.3: what a node identity (or `builtin/node`) grants. */
export function nodeIdentityRules(name: string): PolicyRules {
  return {
    scalars: {},
    named: [
      { kind: "node", prefix: false, name, policy: "write", intentions: undefined },
      { kind: "service", prefix: true, name: "", policy: "read", intentions: undefined },
    ],
  };
}

/** `builtin/dns`: read on every node, service and prepared query. */
export function dnsRules(): PolicyRules {
  return {
    scalars: {},
    named: (["node", "service", "query"] as const).map((kind) => ({ kind, prefix: true, name: "", policy: "read" as const, intentions: undefined })),
  };
}
