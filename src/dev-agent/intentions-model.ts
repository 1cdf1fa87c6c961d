// Intentions as data (spec §4, §5): precedence, validation, ordering, matching, the String()
// format and the allow/deny decision shared by authorize and `intentions/check`.

export const WILDCARD = "*";

export interface Intention {
  /** Only for intentions created through the legacy ID API (spec §5.1). */
  id?: string;
  description?: string;
  sourcePartition: string;
  sourceNS: string;
  sourceName: string;
  sourcePeer?: string;
  destinationPartition: string;
  destinationNS: string;
  destinationName: string;
  action: "" | "allow" | "deny";
  permissions?: unknown[];
  meta?: Record<string, string>;
  precedence: number;
  createdAt?: string;
  updatedAt?: string;
  createIndex: number;
  modifyIndex: number;
}

/** A (partition, namespace, name) triple as the intention endpoints take it. */
export interface IntentionName {
  partition: string;
  ns: string;
  name: string;
  peer?: string;
}

function exactCount(ns: string, name: string): number {
  if (ns === WILDCARD) return 0;
  return name === WILDCARD ? 1 : 2;
}

/** Spec §5.2: 9..1 from the exactness of destination and source. */
export function precedenceOf(i: Pick<Intention, "sourceNS" | "sourceName" | "destinationNS" | "destinationName">): number {
  const base = [3, 6, 9][exactCount(i.destinationNS, i.destinationName)]!;
  return base - (2 - exactCount(i.sourceNS, i.sourceName));
}

/** Spec §5.2 validation; returns the Go error lines (empty when valid). */
export function validateIntention(i: Intention): string[] {
  const errs: string[] = [];
  for (const [field, value] of [
    ["SourceName", i.sourceName],
    ["DestinationName", i.destinationName],
    ["SourceNS", i.sourceNS],
    ["DestinationNS", i.destinationNS],
  ] as const) {
    if (value === "") errs.push(`${field} must be set`);
    else if (value.includes(WILDCARD) && value !== WILDCARD) {
      errs.push(`${field}: wildcard character '*' cannot be used with partial values`);
    }
  }
  if (i.sourceNS === WILDCARD && i.sourceName !== WILDCARD) errs.push("SourceName: exact value cannot follow wildcard namespace");
  if (i.destinationNS === WILDCARD && i.destinationName !== WILDCARD) {
    errs.push("DestinationName: exact value cannot follow wildcard namespace");
  }
  const hasPerms = (i.permissions?.length ?? 0) > 0;
  if (hasPerms && i.action !== "") errs.push("Action must be empty when Permissions are present");
  if (!hasPerms && i.action !== "allow" && i.action !== "deny") errs.push("Action must be set to 'allow' or 'deny'");
  return errs;
}

/** Formats Go multierror text ("1 error occurred:\n\t* …\n\n"), as Consul prints validation errors. */
export function multiError(errs: readonly string[]): string {
  const head = errs.length === 1 ? "1 error occurred:" : `${errs.length} errors occurred:`;
  return `${head}\n${errs.map((e) => `\t* ${e}`).join("\n")}\n\n`;
}

function lex(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Spec §4/§5: precedence descending, then SourceNS, SourceName, DestinationNS, DestinationName ascending. */
export function compareIntentions(a: Intention, b: Intention): number {
  return (
    b.precedence - a.precedence ||
    lex(a.sourceNS, b.sourceNS) ||
    lex(a.sourceName, b.sourceName) ||
    lex(a.destinationNS, b.destinationNS) ||
    lex(a.destinationName, b.destinationName)
  );
}

function nameMatches(pattern: string, value: string): boolean {
  return pattern === WILDCARD || pattern === value;
}

/** True when the intention's `by` side selects `target` (exact name or `*`, namespace likewise). */
export function intentionMatches(i: Intention, by: "source" | "destination", target: IntentionName): boolean {
  if (by === "destination") {
    return (
      nameMatches(i.destinationNS, target.ns) &&
      nameMatches(i.destinationName, target.name) &&
      i.destinationPartition === target.partition
    );
  }
  return (
    nameMatches(i.sourceNS, target.ns) &&
    nameMatches(i.sourceName, target.name) &&
    i.sourcePartition === target.partition &&
    (i.sourcePeer ?? "") === (target.peer ?? "")
  );
}

function sideString(partition: string, ns: string, name: string, peer?: string): string {
  const prefix = peer ? `peer(${peer})/` : partition && partition !== "default" ? `${partition}/` : "";
  return `${prefix}${ns}/${name}`;
}

/** The current `Intention.String()` (spec §4). */
export function intentionString(i: Intention): string {
  const idPart = i.id ? `ID: ${i.id}, ` : "";
  const detail = (i.permissions?.length ?? 0) > 0 ? `Permissions: ${i.permissions!.length}` : `Action: ${i.action.toUpperCase()}`;
  return (
    `${sideString(i.sourcePartition, i.sourceNS, i.sourceName, i.sourcePeer)} => ` +
    `${sideString(i.destinationPartition, i.destinationNS, i.destinationName)} (${idPart}Precedence: ${i.precedence}, ${detail})`
  );
}

export interface Decision {
  authorized: boolean;
  reason: string;
}

/**
 * Spec §4 decision: among the intentions matching `destination` (sorted), the first whose source
 * matches decides; L7 intentions deny. Without a match, `defaultAllow` decides.
 */
export function decide(all: Iterable<Intention>, source: IntentionName, destination: IntentionName, defaultAllow: boolean): Decision {
  const candidates = [...all].filter((i) => intentionMatches(i, "destination", destination)).sort(compareIntentions);
  for (const i of candidates) {
    if (!intentionMatches(i, "source", source)) continue;
    if ((i.permissions?.length ?? 0) > 0) return { authorized: false, reason: `Matched L7 intention: ${intentionString(i)}` };
    return { authorized: i.action === "allow", reason: `Matched L4 intention: ${intentionString(i)}` };
  }
  return { authorized: defaultAllow, reason: "Default behavior configured by ACLs" };
}

/**
 * Parses `name`, `ns/name`, `ap/ns/name` (and, for sources, `peer:<p>/name`) as the intention
 * endpoints do. Throws an Error with Consul's text (the endpoints answer 500 with it).
 */
export function parseIntentionName(input: string, allowPeer: boolean): IntentionName {
  if (allowPeer && input.startsWith("peer:")) {
    const rest = input.slice("peer:".length);
    const parts = rest.split("/");
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`name "${input}" is invalid: peer name must be in the form peer:<peer>/<name>`);
    return { partition: "default", ns: "default", name: parts[1], peer: parts[0] };
  }
  const parts = input.split("/");
  if (parts.length > 3) throw new Error(`name "${input}" is invalid: input can contain at most two '/'`);
  if (parts.length === 3) return { partition: parts[0] || "default", ns: parts[1] || "default", name: parts[2]! };
  if (parts.length === 2) return { partition: "default", ns: parts[0] || "default", name: parts[1]! };
  return { partition: "default", ns: "default", name: input };
}

/** The intention's JSON object (spec §5.1). */
export function renderIntention(i: Intention): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (i.id) o.ID = i.id;
  if (i.description) o.Description = i.description;
  o.SourceNS = i.sourceNS;
  o.SourceName = i.sourceName;
  o.DestinationNS = i.destinationNS;
  o.DestinationName = i.destinationName;
  if (i.sourcePeer) o.SourcePeer = i.sourcePeer;
  o.SourceType = "consul";
  if (i.action) o.Action = i.action;
  if (i.permissions && i.permissions.length > 0) o.Permissions = i.permissions;
  if (i.meta && Object.keys(i.meta).length > 0) o.Meta = i.meta;
  o.Precedence = i.precedence;
  if (i.createdAt) o.CreatedAt = i.createdAt;
  if (i.updatedAt) o.UpdatedAt = i.updatedAt;
  o.CreateIndex = i.createIndex;
  o.ModifyIndex = i.modifyIndex;
  return o;
}
