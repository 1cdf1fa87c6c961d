import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenAuthz } from "../../src/dev-agent/acl-authz.js";
import { parseRules, RuleSet, serviceIdentityRules } from "../../src/dev-agent/acl-rules.js";

const authz = (rules: string[], defaultAllow = false) => new TokenAuthz("acc", false, new RuleSet(rules.map(parseRules)), defaultAllow);

test("parser: HCL blocks, scalars, comments and the object and JSON forms agree", () => {
  const hcl = parseRules(`
    // comment
    service "web" { policy = "write" intentions = "deny" }
    /* block
       comment */
    node_prefix "" {
      policy = "read"
    }
    operator = "read"
    key_prefix "app/" { policy = "list" }
    unknown_thing "x" { policy = "read" }
  `);
  assert.deepEqual(hcl.scalars, { operator: "read" });
  assert.deepEqual(hcl.named, [
    { kind: "service", prefix: false, name: "web", policy: "write", intentions: "deny" },
    { kind: "node", prefix: true, name: "", policy: "read", intentions: undefined },
    { kind: "key", prefix: true, name: "app/", policy: "list", intentions: undefined },
  ]);
  const objectForm = parseRules(`service = { "web" = { policy = "write", intentions = "deny" } }`);
  const json = parseRules(`{"service": {"web": {"policy": "write", "intentions": "deny"}}}`);
  assert.deepEqual(objectForm.named, [hcl.named[0]]);
  assert.deepEqual(json.named, [hcl.named[0]]);
  assert.throws(() => parseRules(`service "web" { policy = "list" }`), /^Error: Invalid service policy: /);
  assert.throws(() => parseRules(`operator = "write"\noperator = "read"`), /was already set/);
});

test("evaluation: merge deny > write > read, exact before prefix, longest prefix, default", () => {
  const a = authz([`service_prefix "" { policy = "read" }`, `service "db" { policy = "deny" }`, `service "api" { policy = "write" }`, `service "api" { policy = "read" }`]);
  assert.equal(a.allowed("service", "read", "x"), true);
  assert.equal(a.allowed("service", "write", "x"), false);
  assert.equal(a.allowed("service", "read", "db"), false, "exact deny beats prefix read");
  assert.equal(a.allowed("service", "write", "api"), true, "write wins over read in a merge");
  assert.equal(a.allowed("node", "read", "n1"), false, "default deny");

  const b = authz([`service_prefix "web" { policy = "write" }`, `service_prefix "web-" { policy = "read" }`], true);
  assert.equal(b.allowed("service", "write", "web-api"), false, "the longest prefix decides");
  assert.equal(b.allowed("service", "write", "webx"), true);
  assert.equal(b.allowed("node", "write", "n1"), true, "default allow");
  assert.equal(b.allowed("acl", "read"), false, "acl needs an explicit grant under allow");
  assert.equal(b.allowed("mesh", "write"), true);
});

test("intentions derive from service rules; a service identity reads every intention and writes none", () => {
  const si = new TokenAuthz("acc", false, new RuleSet([serviceIdentityRules("web")]), false);
  assert.equal(si.allowed("service", "write", "web"), true);
  assert.equal(si.allowed("service", "write", "web-sidecar-proxy"), true);
  assert.equal(si.allowed("service", "write", "db"), false);
  assert.equal(si.allowed("service", "read", "db"), true);
  assert.equal(si.allowed("node", "read", "n1"), true);
  assert.equal(si.allowed("intentions", "read", "db"), true);
  assert.equal(si.allowed("intentions", "write", "web"), false);
  assert.equal(si.allowed("intentions", "read", "*"), true);
  assert.equal(si.allowed("intentions", "write", "*"), false);
  assert.equal(si.allowed("agent", "read", "n1"), false);
  assert.equal(si.allowed("operator", "read"), false);

  const w = authz([`service_prefix "" { policy = "read" intentions = "write" }`, `service "db" { policy = "deny" }`]);
  assert.equal(w.allowed("intentions", "write", "web"), true);
  assert.equal(w.allowed("intentions", "read", "db"), false, "deny service → deny intentions");
  assert.equal(w.allowed("intentions", "write", "*"), false, "wildcard write needs every rule to allow it");
});

test("require throws Consul's 403 texts", () => {
  const anon = new TokenAuthz("00000000-0000-0000-0000-000000000002", false, new RuleSet([]), false);
  assert.throws(() => anon.require("service", "read", "web"), {
    status: 403,
    message: `Permission denied: anonymous token lacks permission 'service:read' on "web". The anonymous token is used implicitly when a request does not specify a token.`,
  });
  const named = authz([]);
  assert.throws(() => named.require("operator", "write"), { message: "Permission denied: token with AccessorID 'acc' lacks permission 'operator:write'" });
});
