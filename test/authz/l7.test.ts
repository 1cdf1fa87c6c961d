import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIntentionMatch } from "../../src/agent/index.js";
import { intentionFor, permissionVerdict, type L7Request } from "../../src/authz/l7.js";

/** Intentions as the match endpoint returns them, through the real decoder. */
const list = (items: unknown[]) => parseIntentionMatch({ api: items }, "api");
const perms = (p: unknown[]) => list([{ SourceName: "web", DestinationName: "api", Permissions: p }])[0]!.permissions;
const req = (over: Partial<L7Request> = {}): L7Request => ({ method: "GET", path: "/", headers: {}, ...over });

test("the first intention whose source matches decides: exact name, then *; namespaces compare", () => {
  const l = list([
    { SourceName: "web", SourceNS: "default", DestinationName: "api", Action: "deny", Precedence: 9 },
    { SourceName: "*", SourceNS: "default", DestinationName: "api", Action: "allow", Precedence: 8 },
  ]);
  assert.equal(intentionFor(l, { namespace: "default", service: "web" })?.action, "deny");
  assert.equal(intentionFor(l, { namespace: "default", service: "db" })?.action, "allow");
  assert.equal(intentionFor(l, { namespace: "other", service: "db" }), undefined);
  assert.equal(intentionFor([], { namespace: "default", service: "web" }), undefined);
});

test("permissions: first match wins, none matching is undefined (the default decides)", () => {
  const p = perms([
    { Action: "deny", HTTP: { PathExact: "/public/secret" } },
    { Action: "allow", HTTP: { PathPrefix: "/public" } },
  ]);
  assert.equal(permissionVerdict(p, req({ path: "/public/secret" })), "deny");
  assert.equal(permissionVerdict(p, req({ path: "/public/x" })), "allow");
  assert.equal(permissionVerdict(p, req({ path: "/private" })), undefined);
  assert.equal(permissionVerdict(perms([{ Action: "allow" }]), req({ path: "/any" })), "allow", "no HTTP block matches every request");
});

test("path exact / prefix / regex (whole path), methods", () => {
  assert.equal(permissionVerdict(perms([{ Action: "allow", HTTP: { PathExact: "/a" } }]), req({ path: "/a/" })), undefined);
  assert.equal(permissionVerdict(perms([{ Action: "allow", HTTP: { PathRegex: "/v[0-9]+/.*" } }]), req({ path: "/v2/users" })), "allow");
  assert.equal(permissionVerdict(perms([{ Action: "allow", HTTP: { PathRegex: "/v[0-9]+" } }]), req({ path: "/v2/users" })), undefined, "the regex matches the whole path");
  assert.equal(permissionVerdict(perms([{ Action: "allow", HTTP: { PathRegex: "([" } }]), req({ path: "([" })), undefined, "a pattern JS cannot compile never matches");
  const m = perms([{ Action: "allow", HTTP: { PathPrefix: "/", Methods: ["get", "HEAD"] } }]);
  assert.equal(permissionVerdict(m, req({ method: "GET" })), "allow");
  assert.equal(permissionVerdict(m, req({ method: "POST" })), undefined);
});

test("headers: present, exact, prefix, suffix, regex, invert; names case-insensitive; all must match", () => {
  const one = (h: Record<string, unknown>, headers: L7Request["headers"]) =>
    permissionVerdict(perms([{ Action: "allow", HTTP: { Header: [h] } }]), req({ headers }));
  assert.equal(one({ Name: "X-A", Present: true }, { "x-a": "" }), "allow");
  assert.equal(one({ Name: "X-A", Present: true }, {}), undefined);
  assert.equal(one({ Name: "x-a", Exact: "v" }, { "x-a": "v" }), "allow");
  assert.equal(one({ Name: "x-a", Exact: "v" }, { "x-a": "vv" }), undefined);
  assert.equal(one({ Name: "x-a", Prefix: "be" }, { "x-a": "bearer" }), "allow");
  assert.equal(one({ Name: "x-a", Suffix: "er" }, { "x-a": "bearer" }), "allow");
  assert.equal(one({ Name: "x-a", Regex: "b.*r" }, { "x-a": "bearer" }), "allow");
  assert.equal(one({ Name: "x-a", Regex: "b.*r" }, { "x-a": "bearers" }), undefined);
  assert.equal(one({ Name: "x-a", Exact: "v", Invert: true }, { "x-a": "w" }), "allow");
  assert.equal(one({ Name: "x-a", Exact: "v", Invert: true }, {}), "allow", "inverted: an absent header does not match the value");
  assert.equal(one({ Name: "x-a", Present: true, Invert: true }, { "x-a": "v" }), undefined);
  assert.equal(one({ Name: "x-a", Exact: "a,b" }, { "x-a": ["a", "b"] }), "allow", "repeated values are joined with a comma");
  const both = perms([{ Action: "allow", HTTP: { Header: [{ Name: "a", Exact: "1" }, { Name: "b", Exact: "2" }] } }]);
  assert.equal(permissionVerdict(both, req({ headers: { a: "1", b: "2" } })), "allow");
  assert.equal(permissionVerdict(both, req({ headers: { a: "1" } })), undefined);
});

test("regexes run on a linear-time engine, as RE2 in Envoy: what it cannot run fails closed for allow and for deny", () => {
  const path = (action: string, regex: string, p: string) => permissionVerdict(perms([{ Action: action, HTTP: { PathRegex: regex } }]), req({ path: p }));
  // A nested quantifier, the shape of a catastrophic pattern, is accepted and matches as written.
  assert.equal(path("allow", "/(a+)+", "/aaa"), "allow");
  assert.equal(path("allow", "/(a+)+", "/aab"), undefined);
  // A backreference runs only on a backtracking engine (RE2 refuses it too): it cannot be evaluated.
  assert.equal(path("allow", "/(a)\\1", "/aa"), undefined, "an allow that cannot be evaluated never matches");
  assert.equal(path("deny", "/(a)\\1", "/zz"), "deny", "a deny that cannot be evaluated always matches");
  const header = (action: string, h: Record<string, unknown>) =>
    permissionVerdict(perms([{ Action: action, HTTP: { Header: [{ Name: "x-a", ...h }] } }]), req({ headers: { "x-a": "aa" } }));
  assert.equal(header("allow", { Regex: "(a)\\1" }), undefined);
  assert.equal(header("deny", { Regex: "(a)\\1" }), "deny");
  assert.equal(header("deny", { Regex: "(a)\\1", Invert: true }), "deny", "inverted or not, a deny fails closed");
});
