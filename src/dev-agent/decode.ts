import { decodeFailed } from "./http-error.js";

// Go's encoding/json with DisallowUnknownFields: keys match case-insensitively, explicit
// snake_case aliases are accepted, anything else is refused (spec §1.6).

export type FieldType = "string" | "int" | "bool" | "map" | "any" | "duration";
export interface FieldSpec {
  type?: FieldType; // default "any" when `fields`/`items` absent
  fields?: Schema; // nested object
  items?: FieldSpec; // array of
  aliases?: string[];
}
export type Schema = Record<string, FieldSpec>;

const goType: Record<FieldType, string> = {
  string: "string", int: "int", bool: "bool", map: "map[string]interface {}", any: "interface {}", duration: "string",
};

function jsonKind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v === "object" ? "object" : typeof v;
}

function mismatch(v: unknown, field: string, want: string, prefix?: string): Error {
  return decodeFailed(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${field} of type ${want}`, prefix);
}

/**
 * Decodes `value` against `schema`, returning an object keyed by the schema's canonical names.
 * Throws a 400 HttpError naming the unknown or mistyped field, as Consul does.
 */
export function decodeStrict(value: unknown, schema: Schema, path = "", prefix?: string): Record<string, unknown> {
  return decodeObject(value, schema, { path, prefix, unknown: (key) => { throw decodeFailed(`json: unknown field "${key}"`, prefix); } });
}

/**
 * Decodes like mapstructure does for config entries: keys match case-insensitively (plus aliases),
 * and unknown keys are collected as mapstructure names them (`Sources[0].Foo`) instead of refused.
 */
export function decodeCollectingUnknown(value: unknown, schema: Schema): { out: Record<string, unknown>; unknown: string[] } {
  const unknown: string[] = [];
  const out = decodeObject(value, schema, { path: "", unknown: (key, at) => void unknown.push(at ? `${at}.${key}` : key), mapstructurePaths: true });
  return { out, unknown };
}

interface DecodeOpts {
  path: string;
  prefix?: string;
  unknown: (key: string, at: string) => void;
  /** Name nested paths as mapstructure does (`A[0].B`) rather than as encoding/json does (`A.B`). */
  mapstructurePaths?: boolean;
}

function decodeObject(value: unknown, schema: Schema, o: DecodeOpts): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw mismatch(value, o.path || "body", "struct", o.prefix);
  const lookup = new Map<string, string>();
  for (const [name, spec] of Object.entries(schema)) {
    lookup.set(name.toLowerCase(), name);
    for (const a of spec.aliases ?? []) lookup.set(a.toLowerCase(), name);
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const name = lookup.get(key.toLowerCase());
    if (name === undefined) {
      o.unknown(key, o.path);
      continue;
    }
    out[name] = decodeField(v, schema[name]!, { ...o, path: o.path ? `${o.path}.${name}` : name });
  }
  return out;
}

function decodeField(v: unknown, spec: FieldSpec, o: DecodeOpts): unknown {
  if (v === null) return undefined;
  if (spec.fields) return decodeObject(v, spec.fields, o);
  if (spec.items) {
    if (!Array.isArray(v)) throw mismatch(v, o.path, "[]", o.prefix);
    return v.map((x, i) => decodeField(x, spec.items!, o.mapstructurePaths ? { ...o, path: `${o.path}[${i}]` } : o));
  }
  const field = o.path;
  const prefix = o.prefix;
  const t = spec.type ?? "any";
  switch (t) {
    case "string":
    case "duration":
      if (typeof v !== "string") throw mismatch(v, field, goType[t], prefix);
      return v;
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v)) throw mismatch(v, field, goType[t], prefix);
      return v;
    case "bool":
      if (typeof v !== "boolean") throw mismatch(v, field, goType[t], prefix);
      return v;
    case "map":
      if (typeof v !== "object" || Array.isArray(v)) throw mismatch(v, field, goType[t], prefix);
      return v;
    case "any":
      return v;
  }
}

/** Parses a request body as JSON, mapping a syntax error to Consul's 400 text. */
export function parseJsonBody(raw: string, prefix?: string): unknown {
  if (raw.trim() === "") return undefined;
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw decodeFailed((err as Error).message, prefix);
  }
}
