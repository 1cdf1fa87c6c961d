// `service-intentions` config entries as data (spec §12.3; Consul's
// agent/structs/config_entry_intentions.go): the body schema, normalization (source defaults,
// upper-case methods, precedence order) and Validate() with Consul's error texts, and the JSON.

import type { Schema } from "./decode.js";
import { HttpError } from "./http-error.js";
import { multiError, precedenceOf, WILDCARD, type Intention } from "./intentions-model.js";
import type { IntentionInput, IntentionsEntry } from "./intention-store.js";

const META_MAX_PAIRS = 64;
const META_KEY_MAX = 128;
const META_VALUE_MAX = 512;
// Go's net/http method names, which isValidHTTPMethod accepts.
const HTTP_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"]);

const HEADER_SCHEMA: Schema = {
  Name: {}, Present: {}, Exact: {}, Prefix: {}, Suffix: {}, Regex: {}, Invert: {},
};
const PERMISSION_SCHEMA: Schema = {
  Action: {},
  HTTP: {
    fields: {
      PathExact: { aliases: ["path_exact"] }, PathPrefix: { aliases: ["path_prefix"] }, PathRegex: { aliases: ["path_regex"] },
      Header: { items: { fields: HEADER_SCHEMA } }, Methods: { items: {} },
    },
  },
};
/** `SourceIntention` keys (CE: no Namespace/Partition; mapstructure reports those as unknown). */
const SOURCE_SCHEMA: Schema = {
  Name: {}, Action: {}, Permissions: { items: { fields: PERMISSION_SCHEMA } }, Precedence: {},
  LegacyID: { aliases: ["legacy_id"] }, Type: {}, Description: {}, LegacyMeta: { aliases: ["legacy_meta"] },
  LegacyCreateTime: { aliases: ["legacy_create_time"] }, LegacyUpdateTime: { aliases: ["legacy_update_time"] },
  Peer: {}, SamenessGroup: { aliases: ["sameness_group"] },
};
export const SERVICE_INTENTIONS_SCHEMA: Schema = {
  Kind: {}, Name: {}, Sources: { items: { fields: SOURCE_SCHEMA } }, Meta: {}, CreateIndex: {}, ModifyIndex: {},
};

const str = (v: unknown): string => (v === undefined || v === null ? "" : String(v));
const bool = (v: unknown): boolean => v === true || v === "true";

/** One L7 permission as Consul stores it: canonical keys, omitempty, methods upper-cased (normalize). */
export function normalizePermission(raw: unknown): Record<string, unknown> {
  const p = (raw ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { Action: str(p.Action) };
  if (p.HTTP && typeof p.HTTP === "object") {
    const h = p.HTTP as Record<string, unknown>;
    const http: Record<string, unknown> = {};
    for (const k of ["PathExact", "PathPrefix", "PathRegex"]) if (str(h[k]) !== "") http[k] = str(h[k]);
    const headers = Array.isArray(h.Header) ? (h.Header as Record<string, unknown>[]) : [];
    if (headers.length > 0) {
      http.Header = headers.map((x) => {
        const o: Record<string, unknown> = { Name: str(x.Name) };
        if (bool(x.Present)) o.Present = true;
        for (const k of ["Exact", "Prefix", "Suffix", "Regex"]) if (str(x[k]) !== "") o[k] = str(x[k]);
        if (bool(x.Invert)) o.Invert = true;
        return o;
      });
    }
    const methods = Array.isArray(h.Methods) ? (h.Methods as unknown[]).map((m) => str(m).toUpperCase()) : [];
    if (methods.length > 0) http.Methods = methods;
    out.HTTP = http;
  }
  return out;
}

/** Consul's validateConfigEntryMeta: the error lines (none when valid). */
export function metaErrors(meta: Record<string, string> | undefined): string[] {
  const errs: string[] = [];
  const m = meta ?? {};
  if (Object.keys(m).length > META_MAX_PAIRS) errs.push(`Meta exceeds maximum element count ${META_MAX_PAIRS}`);
  for (const [k, v] of Object.entries(m)) {
    if (k.length > META_KEY_MAX) errs.push(`Meta key ${JSON.stringify(k)} exceeds maximum length ${META_KEY_MAX}`);
    if (String(v).length > META_VALUE_MAX) errs.push(`Meta value for key ${JSON.stringify(k)} exceeds maximum length ${META_VALUE_MAX}`);
  }
  return errs;
}

function wildcardError(name: string): string | undefined {
  if (name !== WILDCARD && name.includes(WILDCARD)) return "Name: wildcard character '*' cannot be used with partial values";
  return undefined;
}

function permissionError(i: number, j: number, p: Record<string, unknown>): string | undefined {
  if (p.Action !== "allow" && p.Action !== "deny") return `Sources[${i}].Permissions[${j}].Action must be set to 'allow' or 'deny'`;
  const pre = `Sources[${i}].Permissions[${j}].HTTP`;
  const h = p.HTTP as Record<string, unknown> | undefined;
  if (!h) return `${pre} is required`;
  let pathParts = 0;
  for (const k of ["PathExact", "PathPrefix"] as const) {
    if (h[k] === undefined) continue;
    pathParts++;
    if (!String(h[k]).startsWith("/")) return `${pre}.${k} doesn't start with '/': ${JSON.stringify(h[k])}`;
  }
  if (h.PathRegex !== undefined) pathParts++;
  if (pathParts > 1) return `${pre} should only contain at most one of PathExact, PathPrefix, or PathRegex`;
  let parts = pathParts;
  const headers = (h.Header as Record<string, unknown>[] | undefined) ?? [];
  for (const [k, hdr] of headers.entries()) {
    if (hdr.Name === "") return `${pre}.Header[${k}] missing required Name field`;
    const n = ["Present", "Exact", "Regex", "Prefix", "Suffix"].filter((x) => hdr[x] !== undefined).length;
    if (n !== 1) return `${pre}.Header[${k}] should only contain one of Present, Exact, Prefix, Suffix, or Regex`;
    parts++;
  }
  const methods = (h.Methods as string[] | undefined) ?? [];
  if (methods.length > 0) {
    const seen = new Set<string>();
    for (const m of methods) {
      if (!HTTP_METHODS.has(m)) return `${pre}.Methods contains an invalid method ${JSON.stringify(m)}`;
      if (seen.has(m)) return `${pre}.Methods contains ${JSON.stringify(m)} more than once`;
      seen.add(m);
    }
    parts++;
  }
  if (parts === 0) return `${pre} should not be empty`;
  return undefined;
}

/**
 * ServiceIntentionsConfigEntry.validate over normalized sources (highest precedence first, as
 * Consul validates after normalize). `legacy` is the ID API's write. Throws a 500 with Consul's text.
 */
export function validateIntentionsEntry(destination: string, meta: Record<string, string> | undefined, sources: readonly IntentionInput[], legacy = false): void {
  const fail = (text: string): never => {
    throw new HttpError(500, text);
  };
  if (destination === "") fail("Name is required");
  const destErr = wildcardError(destination);
  if (destErr) fail(destErr);
  if (!legacy) {
    const m = metaErrors(meta);
    if (m.length > 0) fail(multiError(m));
  }
  if (sources.length === 0) fail("At least one source is required");
  const seen = new Set<string>();
  const ordered = sortByPrecedence(sources);
  for (const [i, s] of ordered.entries()) {
    if (s.sourceName === "") fail(`Sources[${i}].Name is required`);
    const e = wildcardError(s.sourceName);
    if (e) fail(`Sources[${i}].${e}`);
    if ((s.description ?? "").length > META_VALUE_MAX) fail(`Sources[${i}].Description exceeds maximum length ${META_VALUE_MAX}`);
    const perms = (s.permissions ?? []) as Record<string, unknown>[];
    if ((legacy || perms.length === 0) && s.action !== "allow" && s.action !== "deny") fail(`Sources[${i}].Action must be set to 'allow' or 'deny'`);
    if (perms.length > 0 && s.action !== "") fail(`Sources[${i}].Action must be omitted if Permissions are specified`);
    if (destination === WILDCARD && perms.length > 0) fail(`Sources[${i}].Permissions cannot be specified on intentions with wildcarded destinations`);
    for (const [j, p] of perms.entries()) {
      const pe = permissionError(i, j, p);
      if (pe) fail(pe);
    }
    const key = `${s.sourcePeer ?? ""}|${s.sourceName}`;
    if (seen.has(key)) fail(s.sourcePeer ? `Sources[${i}] defines peer(${JSON.stringify(s.sourcePeer)}) ${JSON.stringify(s.sourceName)} more than once` : `Sources[${i}] defines ${JSON.stringify(s.sourceName)} more than once`);
    seen.add(key);
  }
}

/** Sources highest precedence first, stable among equals (normalize's sort.SliceStable). */
export function sortByPrecedence<T extends Pick<Intention, "sourceNS" | "sourceName" | "destinationNS" | "destinationName">>(sources: readonly T[]): T[] {
  return sources.map((s, i) => ({ s, i, p: precedenceOf(s) })).sort((a, b) => b.p - a.p || a.i - b.i).map((x) => x.s);
}

/** The intentions a `service-intentions` body describes (decoded with SERVICE_INTENTIONS_SCHEMA). */
export function sourcesFromEntryBody(destination: string, body: Record<string, unknown>): IntentionInput[] {
  const raw = (body.Sources as Record<string, unknown>[] | undefined) ?? [];
  return raw.map((s) => {
    const perms = Array.isArray(s.Permissions) ? (s.Permissions as unknown[]).map(normalizePermission) : [];
    const type = str(s.Type) || "consul";
    if (type !== "consul") throw new HttpError(500, `Sources[${raw.indexOf(s)}].Type must be set to 'consul'`);
    // A write through /v1/config clears the legacy fields but refuses LegacyMeta (normalize, then validate).
    if (s.LegacyMeta && typeof s.LegacyMeta === "object" && Object.keys(s.LegacyMeta).length > 0) {
      throw new HttpError(500, `Sources[${raw.indexOf(s)}].LegacyMeta must be omitted`);
    }
    return {
      description: str(s.Description),
      sourcePartition: "default",
      sourceNS: "default",
      sourceName: str(s.Name),
      ...(str(s.Peer) ? { sourcePeer: str(s.Peer) } : {}),
      destinationPartition: "default",
      destinationNS: "default",
      destinationName: destination,
      action: str(s.Action) as Intention["action"],
      ...(perms.length > 0 ? { permissions: perms } : {}),
    };
  });
}

/** The entry's JSON (ServiceIntentionsConfigEntry; CE has no namespace or partition fields). */
export function renderIntentionsEntry(e: IntentionsEntry): Record<string, unknown> {
  const o: Record<string, unknown> = {
    Kind: "service-intentions",
    Name: e.destination.name,
    Sources: e.sources.map((s) => {
      const src: Record<string, unknown> = { Name: s.sourceName };
      if (s.action) src.Action = s.action;
      if (s.permissions && s.permissions.length > 0) src.Permissions = s.permissions;
      src.Precedence = s.precedence;
      if (s.id) src.LegacyID = s.id;
      src.Type = "consul";
      if (s.description) src.Description = s.description;
      if (s.id && s.meta && Object.keys(s.meta).length > 0) src.LegacyMeta = s.meta;
      if (s.id && s.createdAt) src.LegacyCreateTime = s.createdAt;
      if (s.id && s.updatedAt) src.LegacyUpdateTime = s.updatedAt;
      if (s.sourcePeer) src.Peer = s.sourcePeer;
      return src;
    }),
  };
  if (e.meta && Object.keys(e.meta).length > 0) o.Meta = e.meta;
  o.CreateIndex = e.createIndex;
  o.ModifyIndex = e.modifyIndex;
  return o;
}
