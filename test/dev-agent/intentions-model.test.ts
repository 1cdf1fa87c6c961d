import assert from "node:assert/strict";
import { test } from "node:test";
import {
  compareIntentions, decide, intentionMatches, intentionString, multiError, parseIntentionName, precedenceOf,
  validateIntention, type Intention,
} from "../../src/dev-agent/intentions-model.js";

function intention(src: string, dst: string, action: "allow" | "deny" | "" = "allow", extra: Partial<Intention> = {}): Intention {
  const [sns, sname] = src.includes("/") ? src.split("/") : ["default", src];
  const [dns, dname] = dst.includes("/") ? dst.split("/") : ["default", dst];
  const base = {
    sourcePartition: "default", sourceNS: sns!, sourceName: sname!,
    destinationPartition: "default", destinationNS: dns!, destinationName: dname!,
    action, createIndex: 1, modifyIndex: 1, ...extra,
  };
  return { ...base, precedence: precedenceOf(base) };
}

test("precedence follows the 9..1 table of exact and wildcard parts", () => {
  const table: Array<[string, string, number]> = [
    ["default/web", "default/db", 9], ["default/*", "default/db", 8], ["*/*", "default/db", 7],
    ["default/web", "default/*", 6], ["default/*", "default/*", 5], ["*/*", "default/*", 4],
    ["default/web", "*/*", 3], ["default/*", "*/*", 2], ["*/*", "*/*", 1],
  ];
  for (const [src, dst, want] of table) assert.equal(intention(src, dst).precedence, want, `${src} => ${dst}`);
});

test("validation refuses partial wildcards, exact names under a wildcard namespace and bad actions", () => {
  assert.deepEqual(validateIntention(intention("we*", "db")), ["SourceName: wildcard character '*' cannot be used with partial values"]);
  assert.deepEqual(validateIntention(intention("web", "d*b")), ["DestinationName: wildcard character '*' cannot be used with partial values"]);
  assert.deepEqual(validateIntention(intention("*/web", "db")), ["SourceName: exact value cannot follow wildcard namespace"]);
  assert.deepEqual(validateIntention(intention("web", "db", "")), ["Action must be set to 'allow' or 'deny'"]);
  assert.deepEqual(validateIntention(intention("web", "db", "", { permissions: [{}] })), []);
  assert.deepEqual(validateIntention(intention("*", "*")), []);
  assert.equal(multiError(["a", "b"]), "2 errors occurred:\n\t* a\n\t* b\n\n");
});

test("ordering is by precedence, then source and destination names lexicographically", () => {
  const list = [intention("*", "db"), intention("zed", "db"), intention("api", "db"), intention("web", "*"), intention("api", "*")];
  assert.deepEqual(
    list.sort(compareIntentions).map((i) => `${i.sourceName}>${i.destinationName}`),
    ["api>db", "zed>db", "*>db", "api>*", "web>*"],
  );
});

test("String() has the current format, with the ID part only for legacy intentions and Permissions for L7", () => {
  assert.equal(intentionString(intention("web", "db")), "default/web => default/db (Precedence: 9, Action: ALLOW)");
  assert.equal(intentionString(intention("web", "db", "deny", { id: "abc" })), "default/web => default/db (ID: abc, Precedence: 9, Action: DENY)");
  assert.equal(intentionString(intention("*", "db", "", { permissions: [{}, {}] })), "default/* => default/db (Precedence: 8, Permissions: 2)");
});

test("the first source-matching intention by precedence decides; L7 denies; no match falls to the default", () => {
  const all = [intention("*", "db", "deny"), intention("web", "db", "allow"), intention("api", "*", "allow"), intention("l7", "db", "", { permissions: [{}] })];
  const dst = { partition: "default", ns: "default", name: "db" };
  const src = (name: string) => ({ partition: "default", ns: "default", name });
  assert.deepEqual(decide(all, src("web"), dst, false), { authorized: true, reason: "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)" });
  assert.deepEqual(decide(all, src("api"), dst, true), { authorized: false, reason: "Matched L4 intention: default/* => default/db (Precedence: 8, Action: DENY)" });
  assert.deepEqual(decide(all, src("l7"), dst, true), { authorized: false, reason: "Matched L7 intention: default/l7 => default/db (Precedence: 9, Permissions: 1)" });
  assert.deepEqual(decide(all, src("api"), { ...dst, name: "cache" }, false), { authorized: true, reason: "Matched L4 intention: default/api => default/* (Precedence: 6, Action: ALLOW)" });
  assert.deepEqual(decide(all, src("web"), { ...dst, name: "cache" }, false), { authorized: false, reason: "Default behavior configured by ACLs" });
  assert.deepEqual(decide([], src("web"), dst, true), { authorized: true, reason: "Default behavior configured by ACLs" });
});

test("matching by source or destination accepts the exact name or a wildcard", () => {
  const i = intention("web", "*");
  assert.equal(intentionMatches(i, "destination", { partition: "default", ns: "default", name: "db" }), true);
  assert.equal(intentionMatches(i, "source", { partition: "default", ns: "default", name: "web" }), true);
  assert.equal(intentionMatches(i, "source", { partition: "default", ns: "default", name: "api" }), false);
});

test("intention names parse as name, ns/name, ap/ns/name and peer:p/name", () => {
  assert.deepEqual(parseIntentionName("web", false), { partition: "default", ns: "default", name: "web" });
  assert.deepEqual(parseIntentionName("team/web", false), { partition: "default", ns: "team", name: "web" });
  assert.deepEqual(parseIntentionName("ap1/team/web", false), { partition: "ap1", ns: "team", name: "web" });
  assert.deepEqual(parseIntentionName("peer:east/web", true), { partition: "default", ns: "default", name: "web", peer: "east" });
  assert.throws(() => parseIntentionName("a/b/c/d", false), { message: `name "a/b/c/d" is invalid: input can contain at most two '/'` });
});
